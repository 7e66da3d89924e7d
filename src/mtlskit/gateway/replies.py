"""Every answer the gateway gives itself: one table of status, reason phrase and metric label.

As h11 gives each protocol error a status hint, each refusal here has a code; the status
line's phrase comes from `http.HTTPStatus`, and the code is the label of
`mtlskit_refused_total` and the access log's note prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

__all__ = ["REFUSALS", "Reply", "reply_body", "reply_bytes"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One kind of answer the gateway writes itself.

    Attributes:
        code: the metric label and log code.
        status: the HTTP status.
        meaning: what it says when no more specific message is given.
    """

    code: str
    status: HTTPStatus
    meaning: str


def _table(*replies: Reply) -> dict[str, Reply]:
    return {r.code: r for r in replies}


REFUSALS: Final = _table(
    Reply("denied", HTTPStatus.FORBIDDEN, "the client certificate is not allowed here"),
    Reply("unauthenticated", HTTPStatus.UNAUTHORIZED, "a client certificate is needed here"),
    Reply("bad_path", HTTPStatus.BAD_REQUEST, "the request target is not a valid path"),
    Reply("no_route", HTTPStatus.NOT_FOUND, "no route for this path"),
    Reply("method_not_allowed", HTTPStatus.METHOD_NOT_ALLOWED, "this path takes other methods"),
    Reply("misdirected", HTTPStatus.MISDIRECTED_REQUEST, "this connection is for another site"),
    Reply("malformed_request", HTTPStatus.BAD_REQUEST, "the request is not valid HTTP/1.1"),
    Reply("bad_host", HTTPStatus.BAD_REQUEST, "a request needs exactly one Host header"),
    Reply("bad_framing", HTTPStatus.BAD_REQUEST, "the request's framing is ambiguous"),
    Reply("upgrade_body", HTTPStatus.BAD_REQUEST, "an Upgrade request cannot carry a body"),
    Reply("coding", HTTPStatus.NOT_IMPLEMENTED, "the only transfer coding accepted is chunked"),
    Reply("connect", HTTPStatus.METHOD_NOT_ALLOWED, "CONNECT is not supported"),
    Reply("head_timeout", HTTPStatus.REQUEST_TIMEOUT, "the request head did not arrive in time"),
    Reply("body_timeout", HTTPStatus.REQUEST_TIMEOUT, "the request body stopped arriving"),
    Reply("head_too_large", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the head is too large"),
    Reply("upstream_unreachable", HTTPStatus.BAD_GATEWAY, "the upstream is not reachable"),
    Reply("upstream_reset", HTTPStatus.BAD_GATEWAY, "the upstream closed without a response"),
    Reply("upstream_connect_timeout", HTTPStatus.GATEWAY_TIMEOUT, "the upstream did not accept"),
    Reply("upstream_timeout", HTTPStatus.GATEWAY_TIMEOUT, "the upstream did not answer in time"),
)


def reply_body(reply: Reply, message: str = "") -> bytes:
    """The plain-text body of a reply (its length is what the access log counts)."""
    status = reply.status
    return f"{status.value} {status.phrase}: {message or reply.meaning}\n".encode()


def reply_bytes(reply: Reply, message: str = "", body: bytes | None = None) -> bytes:
    """A short plain-text HTTP/1.1 response that closes the connection.

    Args:
        reply: the kind of answer.
        message: what the body says (the reply's meaning when empty).
        body: the body already made by `reply_body` (made here when None).
    """
    status = reply.status
    if body is None:
        body = reply_body(reply, message)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n"
        % (status.value, status.phrase.encode(), len(body))
    ) + body
