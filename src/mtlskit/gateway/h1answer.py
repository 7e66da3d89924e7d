"""The HTTP/1.1 answers the gateway writes itself, then closes: refusals, limits, faults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit.gateway.answers import CODES, http1_bytes
from mtlskit.gateway.replies import REFUSALS, reply_body, reply_bytes
from mtlskit.gateway.routed import refusal
from mtlskit.gateway.routing import Verdict

if TYPE_CHECKING:
    from mtlskit.gateway.http import HTTPConnection

__all__ = ["write_refusal", "write_reply"]


def write_reply(conn: HTTPConnection, code: str, message: str) -> None:
    """Answer the oldest request with a plain-text reply (gateway.replies) and close.

    The size logged is the body's, as nginx's $body_bytes_sent; a denial is counted and
    logged with the rule that refused.
    """
    if conn.closing or conn.transport is None:
        return
    reply = REFUSALS[code]
    conn.ctx.metrics.refused.labels(code).inc()
    body = reply_body(reply, message)
    method, target, verdict = b"-", b"-", None
    if conn.requests:
        method, target, _, verdict = conn.requests.popleft()
    if code == "denied":
        conn.deny(method, target, len(body), verdict=verdict)
    else:
        status = reply.status.value
        conn.ctx.access(conn, method, target, status, len(body), 0.0, message, verdict=verdict)
    conn.transport.write(reply_bytes(reply, body=body))
    conn.close()


def write_refusal(
    conn: HTTPConnection, verdict: Verdict, fields: list[tuple[bytes, bytes]]
) -> None:
    """Answer a request its route refused (401/403 page, 400/404/405/421 text) and close."""
    if conn.closing or conn.transport is None:
        return
    status, head, body = refusal(conn, verdict, fields, grpc_ok=False)
    code = CODES[verdict.status]
    conn.ctx.metrics.refused.labels(code).inc()
    method, target = b"-", b"-"
    if conn.requests:
        method, target = conn.requests.popleft()[:2]
    if status in (401, 403):
        conn.deny(method, target, len(body), status=status, verdict=verdict)
    else:
        note = verdict.decision.reason
        conn.ctx.access(conn, method, target, status, len(body), 0.0, note, verdict=verdict)
    phrase = REFUSALS[code].status.phrase
    conn.transport.write(http1_bytes(status, phrase, head, body))
    conn.close()
