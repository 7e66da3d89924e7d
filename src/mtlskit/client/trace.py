"""Recorded TLS events -> the seed's nine mTLS steps and one outcome code (pure, no I/O).

The values read here (Event, Observation) live in client.observed and are re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mtlskit.client.codes import FAILURES, server_failure_code
from mtlskit.client.observed import Event, Observation, Seen, Sender
from mtlskit.client.tlswire import ALERTS

__all__ = ["TLS13_NOTE", "Event", "Observation", "Sender", "Step", "Trace", "walk"]

Status = Literal["ok", "failed", "skipped", "not_reached"]

TLS13_NOTE = (
    "TLS 1.3: the seed's 'signed random number' is the CertificateVerify signature over "
    "the handshake transcript, which holds both hellos and their randoms (RFC 8446 §4.4.3)"
)
TITLES = (
    "client hello",
    "server signs the client's random",
    "server hello, certificate and certificate request",
    "client signs the server's random",
    "client validates the server",
    "client presents its certificate",
    "server validates the client",
    "server finishes the handshake",
    "mTLS connection established",
)
# Alerts from the server after the client's certificate went out (seed step 7).
_CLIENT_ALERTS = {
    116: "client_cert_required",
    48: "client_cert_unknown_ca",
    42: "client_cert_bad",
    46: "client_cert_bad",
    43: "client_cert_unsupported",
    45: "client_cert_expired",
    44: "client_cert_revoked",
}
# A server's refusal that the client's own certificate does not explain (the preflight
# found it valid now, sent with its intermediate, under a CA the server names): what in
# the server's own state makes OpenSSL send that alert (ssl_verify_alarm_type), and the
# fix there. The client's certificate is then fine and reissuing it would change nothing.
_SERVER_SIDE = {
    "client_cert_expired": (
        "a CRL the server checks is past its nextUpdate (OpenSSL answers CRL_HAS_EXPIRED "
        "with this alert), or the server's clock is ahead",
        "on the server: publish a fresh CRL from the client's CA and reload the server (for "
        "mtlskit: 'mtlskit ca crl' then SIGHUP the gateway), and check its clock (NTP); the "
        "client certificate is fine",
    ),
    "client_cert_unknown_ca": (
        "it names the CA but cannot build the path to a root it trusts (its CA file lacks "
        "the root or an intermediate, or its CA names and trust store differ), or it "
        "checks CRLs and holds none for a CA of the chain (UNABLE_TO_GET_CRL)",
        "on the server: put the client's root CA (and intermediates it does not receive) in "
        "its client CA file, and a current CRL for each CA if it checks revocation; the "
        "client certificate is fine",
    ),
    "client_cert_bad": (
        "a CRL the server checks is not valid yet or the server's clock is behind "
        "(CRL_NOT_YET_VALID, CERT_NOT_YET_VALID), or its CRL is unreadable",
        "on the server: check its clock (NTP) and the CRL it loads (thisUpdate in the past, "
        "signed by the client's CA); the client certificate is fine",
    ),
}
# OpenSSL reasons meaning "these bytes are not TLS records".
_NOT_TLS = {
    "WRONG_VERSION_NUMBER",
    "HTTP_REQUEST",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
}
_VERSION = {"UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION"}


@dataclass(frozen=True, slots=True)
class Step:
    """One of the seed's nine steps, with what was seen."""

    number: int
    title: str
    status: Status
    detail: str

    def to_json(self) -> dict[str, Any]:
        """Plain dict for --json."""
        return {
            "number": self.number,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Trace:
    """The walk-through and its verdict.

    Attributes:
        steps: the nine steps in order.
        code: the outcome code (see codes.FAILURES).
        explanation: what happened, in one line.
        fix: what to do.
        failed_step: the seed step the failure breaks (0 when ok or before step 1).
        notes: lines that apply (the TLS 1.3 wording note).
    """

    steps: tuple[Step, ...]
    code: str
    explanation: str
    fix: str
    failed_step: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def outcome_json(self) -> dict[str, Any]:
        """The verdict fields shared by probe's and request's --json objects."""
        return {
            "code": self.code,
            "explanation": self.explanation,
            "fix": self.fix,
            "failed_step": self.failed_step,
            "steps": [s.to_json() for s in self.steps],
        }


def _alert_text(e: Event) -> str:
    return f"alert {e.code} {ALERTS.get(e.code, e.name)}"


def outcome(events: Sequence[Event], obs: Observation) -> tuple[str, str]:
    """The outcome code and the specific detail behind it."""
    seen = Seen(events)
    if obs.connect == "refused":
        return "connection_refused", "TCP connection refused"
    if obs.connect in {"timeout", "unreachable"} or obs.handshake_timeout:
        what = "the TLS handshake" if obs.connect == "ok" else "the TCP connect"
        return "timeout", f"{what} did not finish in time"
    sent, got = seen.alert("client"), seen.alert("server")
    if (got and got.code == 70) or (sent and sent.code == 70) or obs.handshake_error in _VERSION:
        return "protocol_version_mismatch", obs.handshake_error or "alert 70 protocol_version"
    if not seen.server_spoke() and (
        obs.handshake_error in _NOT_TLS or obs.handshake_error == "EOF"
    ):
        why = "closed without answering" if obs.handshake_error == "EOF" else "answered"
        return "not_tls", f"the server {why} the ClientHello ({obs.handshake_error})"
    if obs.server_reason and obs.server_reason != "ok":
        code = server_failure_code(obs.server_reason, chain_complete=obs.chain_complete)
        return code, obs.server_explanation or obs.server_reason
    if got is not None:
        alert_code = _CLIENT_ALERTS.get(got.code)
        no_cert = seen.client_cert_count() == 0
        if got.code == 40 and no_cert and seen.has("server", "CertificateRequest"):
            alert_code = "client_cert_required"  # TLS 1.2 servers say handshake_failure
        if alert_code == "client_cert_required" and not no_cert:
            alert_code = "client_cert_bad"
        if alert_code is not None:
            return alert_code, f"the server sent {_alert_text(got)}"
        return "handshake_failed", f"the server sent {_alert_text(got)}"
    if sent is not None:
        return "handshake_failed", f"the client sent {_alert_text(sent)}"
    if obs.handshake_error:
        return "handshake_failed", obs.handshake_error
    if obs.http_status == 403:
        return "access_denied", obs.http_reason or "HTTP 403 Forbidden"
    return "ok", ""


def _tls13(seen: Seen, obs: Observation) -> bool:
    if obs.tls_version:
        return obs.tls_version == "TLSv1.3"
    hello = seen.first("server", "ServerHello")
    return hello is not None and hello.version == "TLSv1.3"


def _steps(seen: Seen, obs: Observation, code: str, detail: str) -> list[Step]:
    tls13 = _tls13(seen, obs)
    failed_at = FAILURES[code].step if code != "ok" else 0
    hello = seen.has("client", "ClientHello")
    sh = seen.first("server", "ServerHello")
    cert = seen.first("server", "Certificate")
    cr = seen.first("server", "CertificateRequest")
    n_client = seen.client_cert_count()
    rows: list[tuple[Status, str]] = []

    name = f", SNI {obs.servername}" if obs.servername else ""
    if hello:
        rows.append(("ok", f"ClientHello sent: TLS 1.2-1.3, AEAD suites, client random{name}"))
    else:
        rows.append(("failed" if failed_at <= 1 and code != "ok" else "not_reached", detail))

    if tls13 and seen.has("server", "CertificateVerify"):
        rows.append(("ok", "server CertificateVerify received: signature over the transcript"))
    elif seen.has("server", "ServerKeyExchange"):
        rows.append(
            ("ok", "ServerKeyExchange received: signature over both randoms and the ECDHE key")
        )
    elif seen.server_spoke() and code in {"handshake_failed", "protocol_version_mismatch"}:
        rows.append(("failed", detail))
    else:
        rows.append(("not_reached", "no server signature seen"))

    if sh is None:
        status: Status = "failed" if failed_at == 1 else "not_reached"
        rows.append((status, detail if failed_at == 1 else "no ServerHello"))
    else:
        parts = [
            f"ServerHello: {obs.tls_version or sh.version}"
            + (f", {obs.cipher}" if obs.cipher else "")
        ]
        if cert is not None:
            chain = " -> ".join(obs.server_chain) if obs.server_chain else ""
            parts.append(f"Certificate: {cert.count or 0} certificate(s) {chain}".rstrip())
        parts.append(
            f"CertificateRequest: {cr.count or 0} acceptable CA name(s)"
            if cr is not None
            else "no CertificateRequest (no client certificate asked)"
        )
        rows.append(("ok", "; ".join(parts)))

    if seen.has("client", "CertificateVerify"):
        rows.append(("ok", "client CertificateVerify sent, signed with the client's key"))
    else:
        why = "no client certificate, so nothing to sign" if cr is not None else "not asked"
        rows.append(("skipped" if sh is not None else "not_reached", why))

    if obs.server_reason == "ok":
        rows.append(
            (
                "ok",
                "the chain verifies for "
                + (obs.servername or "the server")
                + "; OpenSSL checked the server's signature with the leaf's key",
            )
        )
    elif obs.server_reason:
        rows.append(("failed", obs.server_explanation or obs.server_reason))
    else:
        rows.append(("not_reached", "no server certificate to check"))

    if seen.has("client", "Certificate"):
        if n_client:
            chain = " -> ".join(obs.client_chain)
            rows.append(("ok", f"Certificate sent: {n_client} certificate(s) {chain}".rstrip()))
        else:
            status = "failed" if code == "client_cert_required" else "skipped"
            rows.append((status, "an empty Certificate was sent (no client identity given)"))
    else:
        status = "skipped" if sh is not None and cr is None else "not_reached"
        rows.append((status, "not asked" if status == "skipped" else "not reached"))

    rows.append(_step7(seen, obs, code, detail, cr is not None, tls13))
    rows.append(_step8(seen, obs, code, tls13))
    if obs.established and failed_at in {0, 5, 9}:
        nine = "application data can flow"
        if obs.http_status:
            nine = f"HTTP {obs.http_status}" + (f": {obs.http_reason}" if obs.http_reason else "")
        rows.append(("ok", nine))
    else:
        rows.append(("not_reached", "the connection was not established"))
    return [Step(i + 1, TITLES[i], s, d) for i, (s, d) in enumerate(rows)]


def _step7(
    seen: Seen, obs: Observation, code: str, detail: str, asked: bool, tls13: bool
) -> tuple[Status, str]:
    when = " (TLS 1.3: the verdict comes after the client's Finished, on the first read)"
    if FAILURES[code].step in {6, 7} and code.startswith("client_cert"):
        cause = f"; likely cause: {obs.preflight_cause}" if obs.preflight_cause else ""
        return "failed", detail + cause + (when if tls13 else "")
    if not asked:
        return (
            ("skipped", "the server did not ask for a client certificate")
            if obs.established
            else ("not_reached", "not reached")
        )
    if obs.established and obs.after in {"accepted", "quiet", "not_read"}:
        sent = seen.client_cert_count() > 0
        what = "accepted the client certificate" if sent else "let the client in without one"
        proof = {
            "accepted": "session ticket or data received",
            "quiet": "no alert came",
            "not_read": "its Finished followed",
        }[obs.after]
        return "ok", f"the server {what} ({proof})"
    return "not_reached", "not reached"


def _step8(seen: Seen, obs: Observation, code: str, tls13: bool) -> tuple[Status, str]:
    if code.startswith("client_cert") or not obs.established:
        return "not_reached", "the server did not finish"
    if tls13:
        ticket = seen.has("server", "NewSessionTicket")
        return "ok", "server Finished received" + (
            "; NewSessionTicket after the client's Finished" if ticket else ""
        )
    if seen.index("server", "Finished") > seen.index("client", "Finished") >= 0:
        return "ok", "server Finished received after the client's"
    return "ok", "handshake complete"


def walk(events: Sequence[Event], obs: Observation) -> Trace:
    """Map recorded events and observations onto the nine steps and an outcome code.

    Args:
        events: handshake messages and alerts in the order the library reported them.
        obs: what the network code saw besides (errors, verdicts, HTTP status).

    Returns:
        The nine steps, the outcome code, its explanation and fix.
    """
    code, detail = outcome(events, obs)
    failure = FAILURES[code]
    seen = Seen(events)
    steps = _steps(seen, obs, code, detail)
    explanation = failure.meaning + (f": {detail}" if detail else "")
    fix = failure.fix
    if failure.step == 5 and obs.server_reason not in ("", "ok") and obs.server_fix:
        fix = obs.server_fix  # the trust module's fix names the server certificate at fault
    # A certificate was offered but none went out (TLS found no signature scheme for its
    # key) or the server refused it: the preflight's finding is the likely cause.
    offered = code == "client_cert_required" and bool(obs.client_chain)
    refused = offered or (code.startswith("client_cert") and code != "client_cert_required")
    if refused and obs.preflight_cause:
        explanation += f"; most likely: {obs.preflight_cause}"
        fix = obs.preflight_fix or fix  # names the certificate at fault, a CA's too
    elif code in _SERVER_SIDE and obs.client_fine:
        causes, fix = _SERVER_SIDE[code]
        explanation += f"; yet {obs.client_fine}, so the cause is likely on the server: {causes}"
    tls13 = _tls13(seen, obs)
    return Trace(
        steps=tuple(steps),
        code=code,
        explanation=explanation,
        fix=fix,
        failed_step=failure.step,
        notes=(TLS13_NOTE,) if tls13 else (),
    )
