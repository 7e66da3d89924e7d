"""`probe`: connect once (twice to tell required from optional), record, verify, explain."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mtlskit.client.connect import (
    Attempt,
    ClientIdentity,
    ServerTrust,
    ca_names,
    chain_complete,
    connect,
    identity_context,
    server_chain,
    verify_server,
)
from mtlskit.client.preflight import Preflight, preflight
from mtlskit.client.tlswire import name_text
from mtlskit.client.trace import Observation, Trace, walk
from mtlskit.pki.describe import describe_certificate
from mtlskit.trust import VerificationResult

__all__ = ["ProbeReport", "probe"]

_SETTLE = 2.0  # seconds of quiet after a TLS 1.3 handshake that count as "not rejected"


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """Everything `mtlskit probe` found; `to_json()` is the documented --json object."""

    target: str
    servername: str
    attempt: Attempt
    chain: tuple[x509.Certificate, ...]
    chain_source: str
    complete: bool | None
    verification: VerificationResult | None
    trust_source: str
    requested: str
    ca_names: tuple[str, ...]
    ca_names_source: str
    preflight: Preflight | None
    trace: Trace
    observation: Observation
    now: datetime
    notes: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        """The outcome code."""
        return self.trace.code

    def to_json(self) -> dict[str, Any]:
        """The stable JSON object (fields documented in docs/client.md)."""
        a, v = self.attempt, self.verification
        return {
            "target": self.target,
            "servername": self.servername,
            **self.trace.outcome_json(),
            "tls": {**a.tls_json(), "session_resumption": _resumption(a)},
            "server": {
                "chain": [_cert_json(c, self.now) for c in self.chain],
                "chain_source": self.chain_source,
                "complete": self.complete,
                "verified": v.valid if v else None,
                "reason": v.code.value if v else None,
                "explanation": v.explanation if v else None,
                "fix": v.fix if v and not v.valid else None,
                "trust": self.trust_source,
            },
            "client_auth": {
                "requested": self.requested,
                "ca_names": list(self.ca_names),
                "ca_names_source": self.ca_names_source,
            },
            "preflight": self.preflight.to_json() if self.preflight else None,
            "events": a.events_json(),
            "notes": [*self.trace.notes, *self.notes],
        }


def _resumption(a: Attempt) -> bool | None:
    if not a.facts.established:
        return None
    return any(e.sender == "server" and e.name == "NewSessionTicket" for e in a.recorder.events)


def _cert_json(cert: x509.Certificate, now: datetime) -> dict[str, Any]:
    info = describe_certificate(cert, now)
    return {
        "subject": info.subject,
        "issuer": info.issuer,
        "not_before": info.not_before,
        "not_after": info.not_after,
        "expired": info.expired,
        "eku": info.extended_key_usage,
        "is_ca": info.is_ca,
        "sans": info.sans,
    }


def _attempt(
    host: str, port: int, identity: ClientIdentity | None, servername: str, timeout: float
) -> Attempt:
    with identity_context(identity, check_hostname=False) as ctx:
        # Observation only: we must see (and then explain) an untrusted server chain, so
        # OpenSSL does not verify here; the trust module does, below. No data is sent.
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return connect(
            host, port, ctx, servername=servername, timeout=timeout, settle=min(_SETTLE, timeout)
        )


def _requested(a: Attempt, identity_sent: bool, host: str, port: int, sn: str, t: float) -> str:
    asked = any(e.sender == "server" and e.name == "CertificateRequest" for e in a.recorder.events)
    finished = any(e.sender == "server" and e.name == "Finished" for e in a.recorder.events)
    if not asked:
        return "none" if finished or a.facts.established else "unknown"
    if not identity_sent:
        rejected = a.facts.after in {"alert", "closed"} or any(
            e.sender == "server" and e.kind == "alert" for e in a.recorder.events
        )
        return "required" if rejected else "optional" if a.facts.established else "unknown"
    bare = _attempt(host, port, None, sn, t)
    bare.close()
    return (
        _requested(bare, False, host, port, sn, t)
        if bare.facts.established
        or any(e.sender == "server" and e.kind == "alert" for e in bare.recorder.events)
        else "unknown"
    )


def probe(
    host: str,
    port: int,
    *,
    trust: ServerTrust,
    identity: ClientIdentity | None = None,
    servername: str | None = None,
    timeout: float = 10.0,
    now: datetime | None = None,
) -> ProbeReport:
    """Connect to host:port, record the handshake and explain it in the seed's nine steps.

    Args:
        host: name or address to connect to.
        port: TCP port.
        trust: roots for the server chain (--ca, or the system store).
        identity: the client certificate to present, if any.
        servername: SNI and the name the server certificate must match (default: host).
        timeout: seconds for the TCP connect and for the handshake.
        now: validation time (default: now).
    """
    now = now or datetime.now(UTC)
    sn = servername or host
    a = _attempt(host, port, identity, sn, timeout)
    a.close()
    sent, source = server_chain(a)
    result = verify_server(sent, trust, host=sn, now=now) if sent else None
    complete = chain_complete(sent, trust.anchors) if sent else None
    names, names_source = ca_names(a)
    client_sent = any(
        e.sender == "client" and e.name == "Certificate" and (e.count or 0) > 0
        for e in a.recorder.events
    )
    requested = _requested(a, client_sent, host, port, sn, timeout)
    pre = preflight(identity.chain, names, now=now) if identity else None
    obs = Observation.of(
        a.facts,
        servername=sn,
        server_reason=result.code.value if result else "",
        server_explanation=result.explanation if result else "",
        server_fix=result.fix if result else "",
        chain_complete=complete,
        server_chain=tuple(c.subject.rfc4514_string() for c in sent),
        client_chain=tuple(c.subject.rfc4514_string() for c in identity.chain) if identity else (),
        preflight_cause=pre.likely_cause if pre else "",
        preflight_fix=pre.fix if pre else "",
        client_fine=pre.clean_bill if pre else "",
    )
    notes = list(a.errors) + list(a.recorder.errors)
    if source == "peer_leaf_only":
        notes.append("the chain as sent was not recorded: only the leaf is shown")
    if names_source == "unavailable":
        notes.append("acceptable CA names unavailable: no TLS message callback in this Python")
    return ProbeReport(
        target=f"{host}:{port}",
        servername=sn,
        attempt=a,
        chain=tuple(sent),
        chain_source=source,
        complete=complete,
        verification=result,
        trust_source=trust.source,
        requested=requested,
        ca_names=tuple(name_text(n) for n in names or ()),
        ca_names_source=names_source,
        preflight=pre,
        trace=walk(a.recorder.events, obs),
        observation=obs,
        now=now,
        notes=tuple(notes),
    )
