"""Attacks by a client holding a valid certificate, asserted on the bytes the workload received.

Each test drives the real gateway with raw requests over real TLS and checks, on a raw
recording upstream (tests/gateway/recorder.py), that nothing reached the workload unparsed,
out of its request, or with identity headers the client made up.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httptools
import pytest

from tests.gateway.harness import PKI, Running, identity_config, running_gateway, tls_client
from tests.gateway.recorder import Reply, Request, ok, recording_upstream

SPOOF = b'X-Forwarded-Client-Cert: By=spiffe://evil;Hash=00;Subject="CN=admin"\r\n'
SPOOF += b"Client-Cert: :AAAA:\r\nX-Client-Subject: CN=admin\r\n"


@contextmanager
def _gateway(pki: PKI, upstream: str, **overrides: Any) -> Iterator[Running]:
    with running_gateway(identity_config(pki, upstream, **overrides)) as gw:
        yield gw


class Responses:
    """Reads the responses of one connection in order; bytes after a 101 are kept in `rest`."""

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.tls = tls
        self.parser: Any = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, bytes]] = []
        self.body = b""
        self.rest = b""
        self.upgraded = False

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self.body))
        self.body = b""

    def next(self) -> tuple[int, bytes]:
        """The next whole response (status, body)."""
        while not self.done:
            if self.upgraded:
                raise AssertionError("no more responses after a 101")
            data = self.tls.recv(65536)
            if not data:
                raise AssertionError("the gateway closed the connection")
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                self.rest = data[upgrade.args[0] :]
                self.upgraded = True
        return self.done.pop(0)


def _ours_only(req: Request) -> None:
    """Exactly one identity header of each kind, the gateway's, for alice."""
    (xfcc,) = req.values("x-forwarded-client-cert")
    assert "evil" not in xfcc and 'Subject="CN=alice,OU=demo,O=Example"' in xfcc
    (client_cert,) = req.values("client-cert")
    assert client_cert != ":AAAA:"
    assert req.values("x-client-subject") == ["CN=alice,OU=demo,O=Example"]


def _received_after_sent(rec: Any, needle: bytes) -> bool:
    """True when `needle` reached the workload only after it had sent its first answer."""
    (conn,) = rec.conns
    sent = False
    seen = b""
    for kind, data in conn.events:
        if kind == "sent":
            sent = True
        elif kind == "recv":
            seen += data
            if needle in seen:
                return sent
    raise AssertionError(f"{needle!r} never reached the workload")


# -- Upgrade -------------------------------------------------------------------------------
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_upgrade_refused_by_the_workload_keeps_parsing_and_stripping(pki: PKI) -> None:
    """Upgrade-then-spoof: a non-101 answer leaves HTTP mode, identity enforced after it."""
    with recording_upstream() as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        spoof = b"GET /spoof HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n"
        tls.sendall(UPGRADE + spoof)  # one write: the spoof rides right behind the upgrade
        responses = Responses(tls)
        assert responses.next()[0] == 404
        assert responses.next() == (200, b"ok")
        first, second = rec.wait_requests(2)
        assert first.upgrade and first.values("upgrade") == ["websocket"]
        assert second.target == "/spoof"
        _ours_only(second)
        # held back until the workload had answered the upgrade request
        assert _received_after_sent(rec, b"GET /spoof")
        gw.wait_for_log('"GET /spoof" 200')


def test_upgrade_becomes_a_tunnel_only_after_101(pki: PKI) -> None:
    def script(req: Request) -> Reply:
        if req.upgrade:
            return (
                "tunnel",
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n",
            )
        return ok()

    with (
        recording_upstream(script) as rec,
        _gateway(pki, rec.url) as gw,
        tls_client(pki, gw) as tls,
    ):
        tls.sendall(UPGRADE + b"early frame")
        responses = Responses(tls)
        assert responses.next()[0] == 101
        got = responses.rest
        while len(got) < len(b"EARLY FRAME"):
            got += tls.recv(4096)
        assert got == b"EARLY FRAME"
        assert _received_after_sent(rec, b"early frame")
        tls.sendall(b"later")
        assert tls.recv(4096) == b"LATER"
        gw.wait_for_log('"GET /chat" 101')


def test_a_refused_upgrade_with_connection_close_is_the_last_request(pki: PKI) -> None:
    with recording_upstream() as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        upgrade = UPGRADE.replace(b"Connection: Upgrade", b"Connection: Upgrade, close")
        tls.sendall(upgrade + b"GET /after HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n")
        responses = Responses(tls)
        assert responses.next()[0] == 404
        assert tls.recv(4096) == b""  # closed after the answer; nothing more was read
        assert [r.target for r in rec.requests()] == ["/chat"]
        assert b"/after" not in rec.raw()


def test_h2c_upgrade_is_not_a_tunnel(pki: PKI) -> None:
    with recording_upstream() as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        h2c = (
            b"GET /h2 HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        spoof = b"GET /spoof HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n"
        tls.sendall(h2c + spoof)
        responses = Responses(tls)
        assert responses.next() == (200, b"ok")
        assert responses.next() == (200, b"ok")
        first, second = rec.wait_requests(2)
        assert not first.upgrade
        for name in ("upgrade", "http2-settings", "connection"):
            assert name not in first.names()
        _ours_only(second)


# -- Chunked trailers ----------------------------------------------------------------------
def test_chunked_trailers_stay_with_their_request(pki: PKI) -> None:
    with recording_upstream() as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        tls.sendall(
            b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nHost: evil.example\r\n" + SPOOF + b"X-Checksum: abc\r\n\r\n"
            b"GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        responses = Responses(tls)
        assert responses.next() == (200, b"ok")
        assert responses.next() == (200, b"ok")
        first, second = rec.wait_requests(2)
        assert first.body == b"hello"
        assert first.trailers == [("X-Checksum", "abc")]
        assert second.target == "/next" and second.values("host") == ["localhost"]
        _ours_only(second)
        assert b"evil" not in rec.raw() and b"CN=admin" not in rec.raw()


# -- Hop-by-hop headers --------------------------------------------------------------------
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"


def test_connection_cannot_name_away_identity_or_framing_headers(pki: PKI) -> None:
    with recording_upstream() as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        a = (
            b"GET /a HTTP/1.1\r\nHost: localhost\r\n"
            b"Connection: X-Forwarded-Client-Cert, X-Secret, keep-alive\r\nX-Secret: s\r\n"
            b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\n"
            b"Upgrade: foo\r\n" + SPOOF + b"\r\n"
        )
        # naming the framing headers in Connection must not unframe the body
        b = b"POST /b HTTP/1.1\r\nHost: localhost\r\nConnection: content-length, host\r\n"
        b += b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED)
        c = b"GET /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        tls.sendall(a + b + c)
        responses = Responses(tls)
        for _ in range(3):
            assert responses.next() == (200, b"ok")
        first, second, last = rec.wait_requests(3)
        names = first.names()
        for hop in ("connection", "x-secret", "keep-alive", "proxy-connection", "upgrade"):
            assert hop not in names, hop
        assert first.values("te") == ["trailers"]
        _ours_only(first)
        assert second.values("host") == ["localhost"]
        assert second.values("content-length") == [str(len(SMUGGLED))]
        assert second.body == SMUGGLED
        assert "connection" not in second.names()
        # the client's close is the gateway's to honour: not forwarded, the connection ends
        assert last.target == "/c" and "connection" not in last.names()
        assert tls.recv(4096) == b""
        assert [r.target for r in rec.requests()] == ["/a", "/b", "/c"]


# -- Host, framing and upgrade bodies --------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            501,
        ),
        # llhttp treats an upgrade request as bodiless: its body would become a request
        (
            b"POST /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nContent-Length: 5\r\n\r\nGET /",
            400,
        ),
    ],
    ids=["no-host", "two-hosts", "http10-transfer-encoding", "gzip-coding", "upgrade-body"],
)
def test_ambiguous_heads_never_reach_the_workload(pki: PKI, head: bytes, status: int) -> None:
    with recording_upstream() as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        tls.sendall(head)
        assert Responses(tls).next()[0] == status
        assert rec.requests() == [] and rec.raw() == b""


# -- Timeouts and errors -------------------------------------------------------------------
def test_upstream_timeout_counts_from_the_end_of_the_body(pki: PKI) -> None:
    """A slow upload longer than upstream_timeout is not a 504."""
    with (
        recording_upstream() as rec,
        _gateway(pki, rec.url, limits={"upstream_timeout": "1s"}) as gw,
        tls_client(pki, gw) as tls,
    ):
        tls.sendall(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40\r\n\r\n")
        for _ in range(4):  # 2.4 s of upload, more than twice the upstream timeout
            time.sleep(0.6)
            tls.sendall(b"x" * 10)
        assert Responses(tls).next() == (200, b"ok")
        assert rec.wait_requests(1)[0].body == b"x" * 40


def test_a_stalled_upload_is_closed_after_the_idle_timeout(pki: PKI) -> None:
    with (
        recording_upstream() as rec,
        _gateway(pki, rec.url, limits={"idle_timeout": "1s"}) as gw,
        tls_client(pki, gw) as tls,
    ):
        tls.sendall(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40\r\n\r\nxx")
        tls.settimeout(10)
        assert Responses(tls).next()[0] == 408
        gw.wait_for_log("408")


def _upstream_errors(gw: Running) -> dict[str, float]:
    text = gw.call(gw.gateway.metrics.render).decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("mtlskit_upstream_errors_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            out[kind] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_client_hanging_up_is_not_an_upstream_error(pki: PKI) -> None:
    def slow(req: Request) -> Reply:
        time.sleep(1.0)
        return ok()

    with recording_upstream(slow) as rec, _gateway(pki, rec.url) as gw:
        with tls_client(pki, gw) as tls:
            tls.sendall(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
            rec.wait_requests(1)
        time.sleep(1.5)  # the workload answers into a closed connection meanwhile
        assert _upstream_errors(gw) == {}
        assert "upstream_error" not in gw.log.getvalue()


def test_an_upstream_dying_mid_response_is_counted_and_logged(pki: PKI) -> None:
    def die(req: Request) -> Reply:
        return ("close", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")

    with recording_upstream(die) as rec, _gateway(pki, rec.url) as gw, tls_client(pki, gw) as tls:
        tls.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = b""
        while chunk := tls.recv(4096):
            got += chunk
        assert got.endswith(b"0123456789")  # the client sees a short body and a close
        gw.wait_for_log("upstream_error")
        assert _upstream_errors(gw) == {"aborted": 1.0}
