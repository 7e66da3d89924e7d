"""One request of a connection through its site: Host check, route, verdict, answer, headers.

Shared by HTTP/1.1 (gateway.http) and HTTP/2 (gateway.h2server): both give the method,
target and fields as received and get back the verdict, the refusal to answer, or the
identity header block for the route that takes the request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from mtlskit.gateway.answers import Answer, answer
from mtlskit.gateway.head import HeadContext
from mtlskit.gateway.routing import Route, Verdict
from mtlskit.identity import IdentityHeaderError
from mtlskit.policy import Decision

if TYPE_CHECKING:
    from mtlskit.gateway.connection import Connection
    from mtlskit.gateway.http import HTTPConnection

__all__ = ["field", "header_block", "refusal", "route_head", "route_request"]

Fields = Sequence[tuple[bytes, bytes]]
_HOST: Final = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def field(fields: Fields, name: bytes) -> str:
    """The first value of a field (lowercase name), or ""."""
    for key, value in fields:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def route_request(conn: Connection, method: bytes, target: bytes, host: str) -> Verdict:
    """The verdict for one request: 421, the site's per-connection verdict, or its route's."""
    state = conn.state
    site = state.site
    if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        # Absolute form (RFC 9112 3.2.2): its authority is the host, not the Host field.
        rest = target.partition(b"://")[2]
        end = min(
            (i for i in (rest.find(c) for c in (b"/", b"?", b"#")) if i >= 0), default=len(rest)
        )
        authority = rest[:end].rpartition(b"@")[2]  # userinfo is not part of the host
        host, target = authority.decode("latin-1"), b"/" + rest[end:].lstrip(b"/")
    if site.checks_host and host and not _HOST.fullmatch(host):
        # With several sites a Host that is not host[:port] (userinfo, a list, spaces)
        # could name one site here and another in the workload's URL parser.
        reason = f"the Host {host[:100]!r} is not a host name with an optional port"
        verdict = Verdict(400, "bad_host", None, Decision(False, "bad_host", reason))
    elif site.checks_host and host and site.misdirected(host):
        reason = (
            f"this connection was opened for server {state.name!r}, not for {host[:100]!r}: "
            "open a new connection with that name as SNI"
        )
        verdict = Verdict(421, "misdirected", None, Decision(False, "misdirected", reason))
    elif conn.fixed is not None:  # a site without routes, on a listener with several
        verdict = conn.fixed
    else:
        verdict = site.verdict(method.decode("latin-1"), target.decode("latin-1"), conn.caller)
    route = verdict.route.name if verdict.route is not None else "-"
    conn.ctx.metrics.route_request(state.name, route, verdict.result)
    return verdict


def header_block(conn: Connection, route: Route) -> bytes | None:
    """The identity header lines for this route (None: its values cannot travel)."""
    identity = conn.identity
    if identity is None or conn.caller.identity is None:
        return b""  # anonymous: no identity headers, ever
    if not route.own_headers:
        return conn.header_block
    try:
        return conn.state.identity_block(identity, route.identity)
    except IdentityHeaderError:
        return None


def route_head(conn: HTTPConnection, route: Route) -> HeadContext | None:
    """The head rewriting of a route with its own identity headers (made once per route).

    Returns:
        None when the client's values cannot travel in that route's headers.
    """
    cache = conn.route_ctx
    key = id(route)
    if key not in cache:
        block = header_block(conn, route)
        base = conn.head_ctx
        cache[key] = None if block is None else HeadContext(base.stripped, base.client_ip, block)
    return cache[key]


def refusal(conn: Connection, verdict: Verdict, fields: Fields, *, grpc_ok: bool) -> Answer:
    """The answer to a refused request, in the format its Accept/Content-Type ask for."""
    return answer(
        verdict,
        conn.caller,
        conn.caller.identity,
        accept=field(fields, b"accept"),
        content_type=field(fields, b"content-type"),
        ca_names=[ca.subject.rfc4514_string() for ca in conn.state.tls.client_cas],
        grpc_ok=grpc_ok,
    )
