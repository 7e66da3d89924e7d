"""The request-head filter (gateway.head): what a client may send on to the workload."""

from __future__ import annotations

from typing import Any

import httptools
from hypothesis import given
from hypothesis import strategies as st

from mtlskit.gateway.head import (
    HOP_BY_HOP,
    HeadContext,
    Refusal,
    Rewritten,
    filter_trailers,
    rewrite_request_head,
)
from mtlskit.gateway.replies import REFUSALS

OURS = b"X-Forwarded-Client-Cert: Hash=ours\r\nX-Client: alice\r\n"
CTX = HeadContext(
    stripped=frozenset({b"x-forwarded-client-cert", b"client-cert", b"x-client"}),
    client_ip=b"10.0.0.7",
    identity_block=OURS,
)


class _Head:
    def __init__(self, data: bytes) -> None:
        self.headers: list[tuple[str, str]] = []
        parser: Any = httptools.HttpRequestParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode()))

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]


def _rewrite(headers: list[tuple[bytes, bytes]], **kw: Any) -> Rewritten:
    out = rewrite_request_head(
        b"GET",
        b"/",
        kw.pop("version", "1.1"),
        headers,
        keep_alive=kw.pop("keep_alive", True),
        wants_upgrade=kw.pop("wants_upgrade", False),
        ctx=CTX,
    )
    assert isinstance(out, Rewritten), out
    return out


def test_connection_named_fields_go_but_framing_and_ours_stay() -> None:
    out = _rewrite(
        [
            (b"Host", b"a"),
            (b"Connection", b"X-Client, x_a, Host, Content_Length"),
            (b"Connection", b"X-B"),
            (b"X-A", b"1"),
            (b"x-b", b"2"),
            (b"Content-Length", b"0"),
            (b"X-Kept", b"3"),
        ]
    )
    head = _Head(out.head)
    assert head.values("host") == ["a"] and head.values("content-length") == ["0"]
    assert head.values("x-kept") == ["3"]
    assert not head.values("x-a") and not head.values("x-b") and not head.values("connection")
    assert head.values("x-client") == ["alice"]  # ours, though the client named it
    assert out.named == frozenset({b"x-a", b"x-b", b"x-client"})


def test_the_upstream_connection_is_kept_whatever_the_client_says() -> None:
    # the client's "close" is the gateway's to honour; the pooled upstream link stays
    closing = _rewrite([(b"Host", b"a"), (b"Connection", b"close")], keep_alive=False)
    assert b"connection" not in closing.head.lower() and not closing.keep_alive
    head = _rewrite([(b"Host", b"a")], version="1.0", keep_alive=False).head
    assert b"connection: keep-alive\r\n" in head
    assert b"connection" not in _rewrite([(b"Host", b"a")]).head.lower()


def test_te_keeps_only_trailers() -> None:
    head = _Head(_rewrite([(b"Host", b"a"), (b"TE", b"deflate, trailers;q=1, gzip")]).head)
    assert head.values("te") == []  # "trailers;q=1" is not the bare token
    head = _Head(_rewrite([(b"Host", b"a"), (b"TE", b"deflate, Trailers")]).head)
    assert head.values("te") == ["trailers"]


def test_upgrade_is_forwarded_only_when_asked_and_never_h2c() -> None:
    ws = _rewrite([(b"Host", b"a"), (b"Upgrade", b"websocket")], wants_upgrade=True)
    assert ws.upgrade == b"websocket"
    assert _Head(ws.head).values("connection") == ["upgrade"]
    h2c = _rewrite([(b"Host", b"a"), (b"Upgrade", b"h2c")], wants_upgrade=True)
    assert h2c.upgrade == b"" and b"upgrade" not in h2c.head.lower()
    plain = _rewrite([(b"Host", b"a"), (b"Upgrade", b"websocket")])
    assert plain.upgrade == b"" and b"upgrade" not in plain.head.lower()


def test_refusals() -> None:
    def refused(version: str, headers: list[tuple[bytes, bytes]], **kw: Any) -> int:
        out = rewrite_request_head(b"POST", b"/", version, headers, keep_alive=True, ctx=CTX, **kw)
        assert isinstance(out, Refusal)
        return REFUSALS[out.code].status.value  # every refusal is in the reply table

    assert refused("1.1", [], wants_upgrade=False) == 400
    assert refused("1.1", [(b"Host", b"a"), (b"host", b"b")], wants_upgrade=False) == 400
    te = (b"Transfer-Encoding", b"chunked")
    assert refused("1.0", [(b"Host", b"a"), te], wants_upgrade=False) == 400
    gzip = (b"Transfer-Encoding", b"gzip, chunked")
    assert refused("1.1", [(b"Host", b"a"), gzip], wants_upgrade=False) == 501
    body = [(b"Host", b"a"), (b"Upgrade", b"websocket"), (b"Content-Length", b"3")]
    assert refused("1.1", body, wants_upgrade=True) == 400


def test_trailers_lose_identity_routing_and_named_fields() -> None:
    fields = [
        (b"Host", b"evil"),
        (b"X_Forwarded_Client_Cert", b"spoof"),
        (b"Content-Length", b"9"),
        (b"X-A", b"named"),
        (b"X-Checksum", b"abc"),
    ]
    assert filter_trailers(fields, CTX.stripped, frozenset({b"x-a"})) == b"X-Checksum: abc\r\n"


def _spelled(name: str) -> st.SearchStrategy[bytes]:
    """`name` in any mix of case, with any of its dashes written as underscores."""

    def spell(flips: list[tuple[bool, bool]]) -> bytes:
        out = []
        for ch, (upper, underscore) in zip(name, flips, strict=False):
            if ch == "-" and underscore:
                ch = "_"
            out.append(ch.upper() if upper else ch.lower())
        return "".join(out).encode()

    return st.lists(
        st.tuples(st.booleans(), st.booleans()), min_size=len(name), max_size=len(name)
    ).map(spell)


_NAMES = st.one_of(
    *(
        _spelled(n)
        for n in (
            "x-forwarded-client-cert",
            "client-cert",
            "client-cert-chain",
            "x-client",
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
            "http2-settings",
            "transfer-encoding",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
        )
    ),
    st.sampled_from([b"X-App", b"Accept", b"X-Other"]),
)
_VALUES = st.sampled_from(
    [
        b"1",
        b"x-app",
        b"X-Client, x-other",
        b"x_client",
        b"close",
        b"keep-alive",
        b"trailers",
        b"h2c",
    ]
)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=12), st.booleans(), st.booleans())
def test_no_client_identity_or_hop_field_survives(
    fields: list[tuple[bytes, bytes]], keep_alive: bool, upgrade: bool
) -> None:
    out = rewrite_request_head(
        b"GET",
        b"/",
        "1.1",
        [(b"Host", b"a"), *fields],
        keep_alive=keep_alive,
        wants_upgrade=upgrade,
        ctx=CTX,
    )
    if isinstance(out, Refusal):  # a Transfer-Encoding other than chunked, or a duplicate
        assert out.code == "coding"
        return
    head = _Head(out.head)
    # exactly our identity, once, at the end
    assert head.values("x-forwarded-client-cert") == ["Hash=ours"]
    assert head.values("x-client") == ["alice"] and not head.values("client-cert")
    assert out.head.endswith(OURS + b"\r\n")
    theirs = [v.decode() for n, v in fields if n.lower().replace(b"_", b"-") == b"x-forwarded-for"]
    if b"x-forwarded-for" in out.named:
        theirs = []
    assert head.values("x-forwarded-for") == [", ".join([*theirs, "10.0.0.7"])]
    for name, _value in head.headers:
        if name.encode() in HOP_BY_HOP:
            # only the gateway's own connection / upgrade / te lines
            assert name in ("connection", "upgrade", "te"), name
    # every other client field is kept, in order, unless the client's Connection named it
    kept = [
        n.decode().lower()
        for n, _ in fields
        if n.lower() in (b"x-app", b"accept", b"x-other") and n.lower() not in out.named
    ]
    assert [n for n, _ in head.headers if n in ("x-app", "accept", "x-other")] == kept
