"""The gateway's own answer to a request a route refused: status, fields and body (pure).

401 and 403 get the refusal page (gateway.refusal_page: HTML for a browser, JSON for a
program, a gRPC status for gRPC); 400, 404, 405 (with Allow) and 421 a short text, as
every other answer of the gateway (gateway.replies).
"""

from __future__ import annotations

from collections.abc import Sequence

from mtlskit.gateway.refusal_page import Refusal, negotiate, render
from mtlskit.gateway.replies import REFUSALS, reply_body
from mtlskit.gateway.routing import Caller, Verdict
from mtlskit.identity import PeerIdentity

__all__ = ["Answer", "answer", "http1_bytes"]

Answer = tuple[int, list[tuple[str, str]], bytes]  # status, response fields, body


def answer(
    verdict: Verdict,
    caller: Caller,
    identity: PeerIdentity | None,
    *,
    accept: str,
    content_type: str,
    ca_names: Sequence[str],
    grpc_ok: bool = True,
) -> Answer:
    """What to answer a request the verdict refuses.

    Args:
        verdict: the route's verdict (status 400-421).
        caller: who sent it (a certificate that did not verify says why).
        identity: the verified client, if any.
        accept: the request's Accept field ("" when absent).
        content_type: its Content-Type (gRPC calls get a gRPC status).
        ca_names: the client CA names this server accepts.
        grpc_ok: a gRPC answer can be given (HTTP/2); over HTTP/1.1 JSON is sent instead.

    Returns:
        (status, fields, body): for gRPC the status is 200 and the fields a trailers-only
        answer.
    """
    status = verdict.status
    if status in (401, 403):
        presented = caller.presented or (identity.subject if identity is not None else "")
        why = caller.why or (verdict.decision.reason if identity is not None else "")
        refusal = Refusal(
            status=status,
            reason=verdict.decision.reason,
            ca_names=tuple(ca_names),
            presented=presented,
            why=why,
            route=verdict.route.name if verdict.route is not None else "",
        )
        kind = negotiate(accept, content_type)
        if kind == "grpc" and not grpc_ok:
            kind = "json"
        fields, body = render(refusal, kind)
        if kind == "grpc":
            return 200, [("content-type", "application/grpc"), *fields], body
        return status, fields, body
    reply = REFUSALS[verdict.result]
    body = reply_body(reply, verdict.decision.reason)
    fields = [("content-type", "text/plain; charset=utf-8")]
    if status == 405:
        fields.append(("allow", ", ".join(verdict.allow)))
    return status, fields, body


def http1_bytes(status: int, reason: str, fields: Sequence[tuple[str, str]], body: bytes) -> bytes:
    """An HTTP/1.1 response that closes the connection, with a Content-Length."""
    head = [f"HTTP/1.1 {status} {reason}"]
    head += [f"{name}: {value}" for name, value in fields]
    head += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + body
