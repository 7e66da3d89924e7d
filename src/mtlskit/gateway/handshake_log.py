"""What the gateway logs and counts about a handshake it refused or let through unverified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509

from mtlskit.gateway.flight import after_flight
from mtlskit.gateway.handshake import (
    classify_handshake_failure,
    explain_verify_errors,
    unknown_server_name,
)
from mtlskit.gateway.routing import Caller

if TYPE_CHECKING:
    from mtlskit.gateway.connection import Connection
    from mtlskit.gateway.logs import EventLog
    from mtlskit.gateway.metrics import Metrics
    from mtlskit.gateway.tls import TLSStream

__all__ = ["client_address", "report_handshake_failure", "unverified_caller"]


def client_address(peer: Any) -> str:
    """host:port of a TCP peer, or the unix socket's name."""
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def report_handshake_failure(
    metrics: Metrics, log: EventLog, stream: TLSStream, exc: BaseException
) -> None:
    """One line and one count for a failed handshake: reason code, seed step, certificate, fix."""
    conn: Connection = stream.protocol
    ca_names = [ca.subject.rfc4514_string() for ca in conn.state.tls.client_cas]
    if conn.refused_name is not None:
        failure = unknown_server_name(conn.refused_name)
    else:
        failure = classify_handshake_failure(
            exc, stream.verify_errors, after_flight=after_flight(stream), ca_names=ca_names
        )
    metrics.handshakes.labels(failure.code).inc()
    fields: dict[str, Any] = {}
    if conn.state.servers or conn.state.site.names:
        fields["server"] = conn.state.name
    if failure.at_fault is not None:
        fields["certificate"] = failure.at_fault.subject.rfc4514_string()
        fields["serial"] = f"{failure.at_fault.serial_number:x}"
    if failure.code == "revoked" and failure.at_fault is not None:
        fields.update(conn.state.revocation_entry(failure.at_fault))
    if failure.code == "no_client_certificate":
        fields["ca_names"] = "; ".join(ca_names)
    if failure.level == "warning":  # a refusal, not a client that went away (status page)
        subject = fields.get("certificate")
        client = client_address(stream.peer)
        metrics.recent.refused(failure.code, failure.step, subject, failure.fix, client)
    log.event(
        "handshake_failed" if failure.level == "warning" else "handshake_abandoned",
        failure.explanation,
        level=failure.level,
        client=client_address(stream.peer),
        code=failure.code,
        step=failure.step,
        fix=failure.fix,
        **fields,
    )


def unverified_caller(
    metrics: Metrics, log: EventLog, stream: TLSStream, leaf: x509.Certificate | None
) -> Caller:
    """The caller of a connection without a verified certificate (client_auth = optional).

    No certificate: anonymous. One that did not verify (verify_optional = "explain"): why,
    logged once here and told on every request in a 403 page.
    """
    if leaf is None:
        return Caller(None)
    failure = explain_verify_errors(stream.verify_errors)
    metrics.handshakes.labels(failure.code).inc()
    log.event(
        "certificate_unverified",
        f"{failure.explanation}; its requests get a 403 page (verify_optional = explain)",
        level="warning",
        client=client_address(stream.peer),
        code=failure.code,
        step=failure.step,
        fix=failure.fix,
    )
    return Caller(None, presented=leaf.subject.rfc4514_string(), why=failure.explanation)
