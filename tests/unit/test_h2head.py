"""HTTP/2 requests through the one field filter: pseudo-headers and smuggling attempts (pure)."""

from __future__ import annotations

import pytest

from mtlskit.gateway.h2head import H2Request, identity_fields, rewrite_h2_request
from mtlskit.gateway.head import HeadContext, Refusal

OURS = b"X-Forwarded-Client-Cert: By=x;Hash=abc\r\nX-Client-Subject: CN=alice\r\n"
CTX = HeadContext(
    frozenset({b"x-forwarded-client-cert", b"x-client-subject", b"client-cert"}),
    b"10.0.0.1",
    OURS,
)
BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"app"), (b":path", b"/")]


def _rewrite(*fields: tuple[bytes, bytes], base: list[tuple[bytes, bytes]] = BASE) -> object:
    return rewrite_h2_request([*base, *fields], CTX, identity_fields(OURS))


def test_client_identity_fields_are_dropped_and_ours_added() -> None:
    out = _rewrite(
        (b"x-forwarded-client-cert", b"By=evil"),
        (b"x_forwarded_client_cert", b"By=evil2"),
        (b"client-cert", b":Zm9v:"),
        (b"accept", b"*/*"),
    )
    assert isinstance(out, H2Request)
    fields = out.h2_fields()
    assert (b"x-forwarded-client-cert", b"By=x;Hash=abc") in fields
    assert not [v for k, v in fields if v.startswith(b"By=evil")]
    assert (b"client-cert", b":Zm9v:") not in fields
    assert (b"x-forwarded-for", b"10.0.0.1") in fields
    head = out.http1_head(chunked=False)
    assert b"evil" not in head and head.startswith(b"GET / HTTP/1.1\r\nhost: app\r\n")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([(b"connection", b"close")], "malformed_request"),
        ([(b"transfer-encoding", b"chunked")], "malformed_request"),
        ([(b"upgrade", b"websocket")], "malformed_request"),
        ([(b"te", b"gzip")], "malformed_request"),
        ([(b"x", b"y"), (b":path", b"/admin")], "malformed_request"),
        ([(b"host", b"other")], "bad_host"),
    ],
)
def test_refused_fields(fields: list[tuple[bytes, bytes]], code: str) -> None:
    out = _rewrite(*fields)
    assert isinstance(out, Refusal) and out.code == code


@pytest.mark.parametrize(
    "base",
    [
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/x y")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a b"), (b":path", b"/")],
        [(b":method", b"G T"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"x")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a")],
        [*BASE, (b":protocol", b"websocket")],
        [*BASE, (b":path", b"/again")],
    ],
)
def test_pseudo_headers_that_could_smuggle_a_request_are_malformed(
    base: list[tuple[bytes, bytes]],
) -> None:
    out = _rewrite(base=base)
    assert isinstance(out, Refusal) and out.code == "malformed_request"


def test_connect_is_refused_and_te_trailers_and_cookies_survive() -> None:
    connect = [(b":method", b"CONNECT"), (b":authority", b"a:443")]
    refused = _rewrite(base=connect)
    assert isinstance(refused, Refusal) and refused.code == "connect"
    out = _rewrite((b"te", b"trailers"), (b"cookie", b"a=1"), (b"cookie", b"b=2"))
    assert isinstance(out, H2Request)
    assert (b"te", b"trailers") in out.h2_fields()
    assert b"cookie: a=1; b=2\r\n" in out.http1_head(chunked=True)
    assert b"transfer-encoding: chunked\r\n" in out.http1_head(chunked=True)
