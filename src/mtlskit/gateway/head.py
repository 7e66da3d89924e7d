"""Request heads and trailers on their way to the workload: what the client may send on (pure).

This is the one place that decides which client-sent fields reach the workload. It drops
the identity headers the gateway owns (the client's XFCC, Client-Cert, custom names), the
hop-by-hop fields of RFC 9110 7.6.1 (Connection and every field it names, Keep-Alive,
Proxy-Connection, TE but `trailers`, Transfer-Encoding, Upgrade unless upgrading), and
refuses heads that two parsers could read differently (RFC 9112 3.2 and 6.1). The fields
the gateway adds itself come last: its own Connection, X-Forwarded-*, and the identity
block, none of which a client can name away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "HOP_BY_HOP",
    "Fields",
    "HeadContext",
    "Refusal",
    "Rewritten",
    "field_tokens",
    "filter_fields",
    "filter_trailers",
    "rewrite_request_head",
    "trailer_fields",
]

# RFC 9110 7.6.1 (and HTTP2-Settings, RFC 9113 3.2's connection-specific field).
HOP_BY_HOP: Final = frozenset(
    b"connection keep-alive proxy-connection te transfer-encoding upgrade http2-settings".split()
)
# Framing and routing: a client naming these in Connection must not unframe the body or
# unroute the request (the workload would read the body as the next request).
_PROTECTED: Final = frozenset({b"host", b"content-length"})
# Connection options that are not field names (RFC 9112 9.6, RFC 9110 7.8).
_OPTIONS: Final = frozenset({b"close", b"upgrade"})
_EMPTY: Final[frozenset[bytes]] = frozenset()
_FORWARDED: Final = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
# Names a client's Connection may list without removing anything: handled on their own.
_NOT_NAMEABLE: Final = _PROTECTED | HOP_BY_HOP | _OPTIONS
# Every name the head loop treats apart from plain end-to-end fields.
_SPECIAL: Final = HOP_BY_HOP | _PROTECTED | _FORWARDED
# RFC 9110 6.5.1: fields that must not travel as trailers (framing, routing, request
# modifiers, authentication, content handling), and the ones the gateway sets itself.
_NOT_IN_TRAILERS: Final = (
    HOP_BY_HOP
    | _PROTECTED
    | _FORWARDED
    | frozenset(
        b"trailer forwarded expect max-forwards range if-match if-none-match if-modified-since "
        b"if-unmodified-since if-range cache-control pragma authorization proxy-authorization "
        b"cookie content-encoding content-type content-range".split()
    )
)


@dataclass(frozen=True, slots=True)
class HeadContext:
    """What is fixed for a whole client connection.

    Attributes:
        stripped: client-sent names always dropped (lowercase, `_` read as `-`).
        client_ip: appended to X-Forwarded-For.
        identity_block: the gateway's identity header lines (`Name: value\\r\\n` each).
    """

    stripped: frozenset[bytes]
    client_ip: bytes
    identity_block: bytes


class Rewritten(NamedTuple):
    """A head ready for the workload (a NamedTuple: built once per request, cheaply).

    Attributes:
        head: the bytes to send, blank line included.
        chunked: the body arrives chunked and is sent re-chunked.
        upgrade: the Upgrade value forwarded (empty: not an upgrade request).
        keep_alive: the client may send another request on this connection.
        named: field names the client's Connection header named (dropped from trailers).
        bodiless: the request has no body (no chunks, no or a zero Content-Length).
    """

    head: bytes
    chunked: bool
    upgrade: bytes
    keep_alive: bool
    named: frozenset[bytes]
    bodiless: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """A head the gateway answers itself: the code in gateway.replies.REFUSALS, and why."""

    code: str
    message: str


def field_tokens(value: bytes) -> list[bytes]:
    """A comma-separated field value as its lowercase tokens (Connection, TE, Upgrade)."""
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _name(raw: bytes) -> bytes:
    lname = raw.lower()
    # WSGI and CGI servers map `X_Forwarded_Client_Cert` and `X-Forwarded-Client-Cert` to
    # the same HTTP_* key: compare with `_` read as `-`.
    return lname.replace(b"_", b"-") if b"_" in lname else lname


class Fields(NamedTuple):
    """A client's fields after the one filter both HTTP versions use (`filter_fields`).

    Attributes:
        kept: the end-to-end fields that may reach the workload, in order, as sent.
        named: names the client's Connection header listed (dropped from kept already).
        hosts: how many Host fields there were; host: the last one's value.
        xff: the client's X-Forwarded-For values, each followed by ", " (empty if named).
        coding: the Transfer-Encoding value, lowercased, or None.
        length: the Content-Length value, stripped (empty: none).
        upgrade: the Upgrade tokens offered.
        te_trailers: TE listed `trailers` (RFC 9110 10.1.4).
        connection_specific: the first hop-by-hop field name seen (HTTP/2 forbids them).
    """

    kept: list[tuple[bytes, bytes]]
    named: frozenset[bytes]
    hosts: int
    host: bytes
    xff: bytes
    coding: bytes | None
    length: bytes
    upgrade: list[bytes]
    te_trailers: bool
    connection_specific: bytes


def filter_fields(headers: list[tuple[bytes, bytes]], stripped: frozenset[bytes]) -> Fields:
    """Drop identity names and hop-by-hop fields, and note what framing and routing need.

    The one place, for HTTP/1.1 and HTTP/2 alike, that decides which client fields pass.

    Args:
        headers: the client's fields, in order (pseudo-headers already taken out).
        stripped: client-sent names always dropped (lowercase, `_` read as `-`).
    """
    kept: list[tuple[bytes, bytes]] = []
    names: list[bytes] = []  # the name of each kept field, for the Connection pass below
    named = _EMPTY
    hosts = 0
    host = b""
    xff = b""
    coding: bytes | None = None
    length = b""
    upgrade: list[bytes] = []
    te_trailers = False
    banned = b""
    for raw, value in headers:
        name = raw.lower()
        if b"_" in name:  # see _name
            name = name.replace(b"_", b"-")
        if name in stripped:
            continue
        if name in _SPECIAL:
            if name == b"host":
                hosts += 1
                host = value
            elif name == b"content-length":
                length = value.strip()
            elif name == b"x-forwarded-for":
                xff += value + b", "
                continue
            else:
                if name == b"te":
                    tokens = field_tokens(value)
                    te_trailers = te_trailers or b"trailers" in tokens
                    if tokens != [b"trailers"] and not banned:
                        banned = name  # HTTP/2 allows TE: trailers only (RFC 9113 8.2.2)
                    continue
                if name in HOP_BY_HOP and not banned:
                    banned = name
                if name == b"connection":
                    if value.lower() not in _NOT_NAMEABLE:  # "keep-alive" alone is the usual
                        named = named.union(map(_name, field_tokens(value))) - _NOT_NAMEABLE
                elif name == b"transfer-encoding":
                    coding = value.strip().lower()
                elif name == b"upgrade":
                    upgrade += field_tokens(value)
                continue  # the rest of HOP_BY_HOP and _FORWARDED: the gateway's to say
        kept.append((raw, value))
        names.append(name)
    if named:
        # Rare: drop what the client's Connection named, wherever it stood in the head.
        kept = [field for field, name in zip(kept, names, strict=True) if name not in named]
        if b"x-forwarded-for" in named:
            xff = b""
    return Fields(kept, named, hosts, host, xff, coding, length, upgrade, te_trailers, banned)


def rewrite_request_head(
    method: bytes,
    target: bytes,
    version: str,
    headers: list[tuple[bytes, bytes]],
    *,
    keep_alive: bool,
    wants_upgrade: bool,
    ctx: HeadContext,
) -> Rewritten | Refusal:
    """Filter a parsed HTTP/1.1 request head and add the gateway's fields.

    Args:
        method, target, version: from the request line (version "1.1" or "1.0").
        headers: the client's fields, in order, as parsed.
        keep_alive: the parser's verdict (version and the client's Connection header).
        wants_upgrade: the parser saw `Connection: upgrade` with an Upgrade field.
        ctx: the connection's fixed parts.

    Returns:
        The head to forward, or a Refusal (bad_host, bad_framing, upgrade_body: 400;
        coding: 501).
    """
    f = filter_fields(headers, ctx.stripped)
    out = [method, b" ", target, b" HTTP/", version.encode(), b"\r\n"]
    for raw, value in f.kept:
        out += (raw, b": ", value, b"\r\n")
    if f.hosts > 1 or (f.hosts == 0 and version == "1.1"):
        return Refusal("bad_host", "a request needs exactly one Host header (RFC 9112 3.2)")
    coding, length = f.coding, f.length
    chunked = coding is not None
    if chunked:
        if version != "1.1":
            return Refusal("bad_framing", f"HTTP/{version} requests cannot use Transfer-Encoding")
        if coding != b"chunked":
            return Refusal("coding", "the only transfer coding accepted is chunked")
        out.append(b"transfer-encoding: chunked\r\n")
    # Upgrade: h2c is HTTP/2 over cleartext (RFC 9113 3.1): never a tunnel behind TLS.
    offered = [t for t in f.upgrade if t != b"h2c"] if wants_upgrade else []
    if offered:
        if chunked or length not in (b"", b"0"):
            return Refusal("upgrade_body", "an Upgrade request cannot carry a body")
        out += (b"connection: upgrade\r\nupgrade: ", b", ".join(offered), b"\r\n")
    elif version != "1.1":
        # The upstream connection outlives this client's (it is pooled): ask HTTP/1.0
        # workloads to keep it; a client's own "close" is the gateway's to honour.
        out.append(b"connection: keep-alive\r\n")
    if f.te_trailers:
        out.append(b"te: trailers\r\n")
    out += (b"x-forwarded-for: ", f.xff, ctx.client_ip, b"\r\nx-forwarded-proto: https\r\n")
    if f.host:
        out += (b"x-forwarded-host: ", f.host, b"\r\n")
    out += (ctx.identity_block, b"\r\n")
    bodiless = not chunked and length in (b"", b"0")
    return Rewritten(b"".join(out), chunked, b", ".join(offered), keep_alive, f.named, bodiless)


def trailer_fields(
    fields: list[tuple[bytes, bytes]], stripped: frozenset[bytes], named: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """The trailer fields of a request that may reach the workload (HTTP/1.1 and HTTP/2).

    Identity names, hop-by-hop fields, the names the head's Connection listed and the
    fields RFC 9110 6.5.1 keeps out of trailers are dropped.
    """
    return [
        (raw, value)
        for raw, value in fields
        if (name := _name(raw)) not in stripped
        and name not in named
        and name not in _NOT_IN_TRAILERS
        and not name.startswith(b":")
    ]


def filter_trailers(
    fields: list[tuple[bytes, bytes]], stripped: frozenset[bytes], named: frozenset[bytes]
) -> bytes:
    """The trailer lines of a chunked request that may reach the workload (`trailer_fields`)."""
    lines: list[bytes] = []
    for raw, value in trailer_fields(fields, stripped, named):
        lines += (raw, b": ", value, b"\r\n")
    return b"".join(lines)
