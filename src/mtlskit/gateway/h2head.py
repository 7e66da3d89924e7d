"""HTTP/2 requests and responses through the one field filter of gateway.head (pure).

The pseudo-header fields are checked here (RFC 9113 8.3); every other field goes through
`filter_fields`, the same filter HTTP/1.1 heads go through, so no client-sent identity
name, hop-by-hop or connection-specific field reaches the workload on any stream.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from mtlskit.gateway.head import (
    HOP_BY_HOP,
    Fields,
    HeadContext,
    Refusal,
    field_tokens,
    filter_fields,
)

__all__ = ["H2Request", "identity_fields", "response_fields", "rewrite_h2_request"]

_PSEUDO: Final = frozenset({b":method", b":scheme", b":authority", b":path"})
_UNSAFE: Final = re.compile(rb"[\x00-\x20\x7f]")


class H2Request(NamedTuple):
    """An HTTP/2 request filtered for the workload, to send as HTTP/1.1 or as HTTP/2.

    Attributes:
        method, scheme, authority, path: from the pseudo-header fields.
        fields: the client's other fields after `filter_fields`.
        added: the gateway's own fields (lowercase): TE, X-Forwarded-*, identity.
    """

    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes
    fields: Fields
    added: list[tuple[bytes, bytes]]

    def http1_head(self, *, chunked: bool) -> bytes:
        """The HTTP/1.1 request head (RFC 9113 8.3.1: :authority becomes Host)."""
        out = [self.method, b" ", self.path, b" HTTP/1.1\r\nhost: ", self.authority, b"\r\n"]
        cookies: list[bytes] = []
        for raw, value in self.fields.kept:
            if raw == b"host":
                continue
            if raw == b"cookie":  # HTTP/2 may split it; HTTP/1.1 wants one (RFC 9113 8.2.3)
                cookies.append(value)
                continue
            out += (raw, b": ", value, b"\r\n")
        if cookies:
            out += (b"cookie: ", b"; ".join(cookies), b"\r\n")
        if chunked:
            out.append(b"transfer-encoding: chunked\r\n")
        for raw, value in self.added:
            out += (raw, b": ", value, b"\r\n")
        out.append(b"\r\n")
        return b"".join(out)

    def h2_fields(self) -> list[tuple[bytes, bytes]]:
        """The HTTP/2 fields, pseudo-header fields first (RFC 9113 8.3)."""
        pseudo = [(b":method", self.method), (b":scheme", self.scheme)]
        pseudo += [(b":authority", self.authority), (b":path", self.path)]
        return pseudo + [f for f in self.fields.kept if f[0] != b"host"] + self.added


def identity_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """The identity header block (`Name: value\\r\\n` lines) as lowercase HTTP/2 fields."""
    pairs = []
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b": ")
        if sep:
            pairs.append((name.lower(), value))
    return pairs


def rewrite_h2_request(
    headers: list[tuple[bytes, bytes]], ctx: HeadContext, identity: list[tuple[bytes, bytes]]
) -> H2Request | Refusal:
    """Check an HTTP/2 request's pseudo-header fields and filter it as HTTP/1.1 heads are.

    Args:
        headers: the stream's fields as h2 decoded them, pseudo-header fields first.
        ctx: the connection's fixed parts.
        identity: `identity_fields(ctx.identity_block)`, made once per connection.

    Returns:
        The request, or a Refusal: connect (405), bad_host (400), malformed_request (a
        malformed request, RFC 9113 8.1.1: the stream is reset with PROTOCOL_ERROR).
    """
    pseudo: dict[bytes, bytes] = {}
    n = 0
    for name, value in headers:
        if not name.startswith(b":"):
            break
        if name in pseudo or name not in _PSEUDO:
            return Refusal("malformed_request", f"{name.decode()} is repeated or unknown")
        pseudo[name] = value
        n += 1
    if any(name.startswith(b":") for name, _ in headers[n:]):
        return Refusal("malformed_request", "a pseudo-header field after a regular field")
    # These become an HTTP/1.1 request line and Host: a space or control byte in them
    # would let a client write a second request line for the workload.
    if any(_UNSAFE.search(pseudo.get(k, b"")) for k in (b":method", b":path", b":authority")):
        return Refusal("malformed_request", "whitespace or a control byte in a pseudo-header")
    method = pseudo.get(b":method", b"")
    if method == b"CONNECT":
        return Refusal("connect", "CONNECT is not supported: this is a reverse proxy")
    path = pseudo.get(b":path", b"")
    scheme = pseudo.get(b":scheme", b"")
    if (
        not method
        or not scheme
        or not (path[:1] == b"/" or (path == b"*" and method == b"OPTIONS"))
    ):
        return Refusal("malformed_request", "a request needs :method, :scheme and a :path")
    f = filter_fields(headers[n:], ctx.stripped)
    if f.connection_specific:  # RFC 9113 8.2.2
        field = f.connection_specific.decode("latin-1")
        return Refusal("malformed_request", f"{field} is connection-specific: not in HTTP/2")
    authority = pseudo.get(b":authority", b"")
    if f.hosts > 1 or (f.hosts and authority and f.host != authority):
        return Refusal("bad_host", "Host differs from :authority (RFC 9113 8.3.1)")
    authority = authority or f.host
    if not authority:
        return Refusal("bad_host", "a request needs :authority or Host (RFC 9113 8.3.1)")
    added = [(b"te", b"trailers")] if f.te_trailers else []
    added += [(b"x-forwarded-for", f.xff + ctx.client_ip), (b"x-forwarded-proto", b"https")]
    added += [(b"x-forwarded-host", authority), *identity]
    return H2Request(method, scheme, authority, path, f, added)


def response_fields(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An HTTP/1.1 response's fields as HTTP/2 sends them: lowercase, no hop-by-hop field."""
    named: set[bytes] = set()
    for raw, value in headers:
        if raw.lower() == b"connection":
            named.update(field_tokens(value))
    drop = HOP_BY_HOP | named
    return [(raw.lower(), value) for raw, value in headers if raw.lower() not in drop]
