"""The HTTP/1.1 answers the gateway writes itself, then closes: refusals, limits, faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtlskit.gateway.answers import http1_bytes
from mtlskit.gateway.replies import REFUSALS, reply_body, reply_bytes
from mtlskit.gateway.routed import refusal
from mtlskit.gateway.routing import Verdict

if TYPE_CHECKING:
    from mtlskit.gateway.http import HTTPConnection

__all__ = ["answer_request", "refuse_request", "write_refusal", "write_reply"]


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


def answer_request(conn: HTTPConnection, send: Callable[[], None]) -> None:
    """Answer the request just parsed: now, or once the answers due for earlier ones are out.

    HTTP/1.1 answers go in request order (RFC 9112 9.3): behind pipelined requests still
    with the workload, our answer waits; nothing after the refused request is read.
    """
    conn.discard = True
    if conn.requests:
        conn.deferred = send
        if conn.transport is not None:
            conn.transport.pause_reading()
        return
    send()


@dataclass(frozen=True, slots=True)
class _Answer:
    """One answer of ours to the request just parsed: what it logs and what it writes."""

    method: bytes
    target: bytes
    verdict: Verdict | None
    code: str  # the mtlskit_refused_total label
    status: int
    size: int  # the body's, logged as nginx's $body_bytes_sent
    note: str
    response: bytes

    def send(self, conn: HTTPConnection) -> None:
        if conn.closing or conn.transport is None:
            return
        conn.ctx.metrics.refused.labels(self.code).inc()
        if self.status in (401, 403):  # counted and logged with the rule that refused
            conn.deny(self.method, self.target, self.size, status=self.status, verdict=self.verdict)
        else:
            conn.ctx.access(
                conn,
                self.method,
                self.target,
                self.status,
                self.size,
                0.0,
                self.note,
                verdict=self.verdict,
            )
        conn.transport.write(self.response)
        conn.close()


def refuse_request(
    conn: HTTPConnection,
    method: bytes,
    target: bytes,
    verdict: Verdict | None,
    code: str,
    message: str,
) -> None:
    """Answer the request just parsed with a plain-text reply, in order, and close."""
    reply = REFUSALS[code]
    body = reply_body(reply, message)
    status, response = reply.status.value, reply_bytes(reply, body=body)
    answer = _Answer(method, target, verdict, code, status, len(body), message, response)
    answer_request(conn, lambda: answer.send(conn))


def write_refusal(
    conn: HTTPConnection,
    method: bytes,
    target: bytes,
    verdict: Verdict,
    fields: list[tuple[bytes, bytes]],
) -> None:
    """Answer a request its route refused (401/403 page, 400/404/405/421 text), in order."""
    status, head, body = refusal(conn, verdict, fields, grpc_ok=False)
    code = verdict.result
    response = http1_bytes(status, REFUSALS[code].status.phrase, head, body)
    note = verdict.decision.reason
    answer = _Answer(method, target, verdict, code, status, len(body), note, response)
    answer_request(conn, lambda: answer.send(conn))
