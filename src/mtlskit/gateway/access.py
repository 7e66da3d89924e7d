"""One access record per request or connection, built from what the gateway knows (pure)."""

from __future__ import annotations

from typing import Any, Final

from mtlskit.identity import PeerIdentity
from mtlskit.policy import Decision

__all__ = ["H1", "H2", "TCP", "access_record"]

# How an access line names the protocol of what it records.
H1: Final = "HTTP/1.1"
H2: Final = "HTTP/2"
TCP: Final = "TCP"


def access_record(
    *,
    client: str,
    identity: PeerIdentity | None,
    decision: Decision | None,
    method: bytes,
    target: bytes,
    status: int,
    size: int,
    seconds: float,
    note: str = "",
    protocol: str = H1,
    route: str = "-",
) -> dict[str, Any]:
    """The fields of one access-log line (text or JSON alike).

    The client's own identity only: its subject, its SPIFFE ID (or first URI/DNS SAN) and
    the rule that decided; never a certificate body, never another client's identity.
    """
    if identity is None:
        subject, ident = "-", ""
    else:
        subject = identity.subject
        ident = identity.spiffe_id or (identity.uri_sans or identity.dns_sans or ("",))[0]
    if decision is None:
        verdict = "-"
    elif decision.allowed:
        verdict = f"allow({decision.rule})"
    else:
        verdict = f"deny({decision.rule or 'no_rule_matched'})"
    return {
        "client": client,
        "subject": subject,
        "id": ident,
        "decision": verdict,
        "method": method.decode("latin-1"),
        "target": target.decode("latin-1")[:200],
        "status": status,
        "bytes": size,
        "ms": round(seconds * 1000, 1),
        "protocol": protocol,
        "route": route,
        "note": note,
    }
