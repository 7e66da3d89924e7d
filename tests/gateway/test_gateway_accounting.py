"""What the gateway counts (issue 13): body bytes in the access log, sockets by state.

The access log's size is the body bytes sent, as nginx's $body_bytes_sent, for the
gateway's own replies and for relayed responses (after de-chunking, as curl counts
them). /metrics shows handshakes in progress and every socket by state, also summed
over several workers (prometheus multiprocess mode).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from mtlskit.demo.echo import EchoServer
from mtlskit.gateway.status import StatusServer
from tests.gateway.harness import PKI, Running, running_gateway
from tests.gateway.outside import OutsidePKI, make_outside_pki, outside_config
from tests.gateway.recorder import Request, recording_upstream
from tests.gateway.test_gateway_process import GatewayProcess, gateway_args
from tests.integration.peers import curl, free_port

HALF_HELLO = b"\x16\x03\x01\x00\xff\x01"  # the start of a ClientHello, then silence


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> OutsidePKI:
    return make_outside_pki(Path(tmp_path_factory.mktemp("outside")))


def _curl(outside: OutsidePKI, url: str) -> tuple[int, int]:
    """(status, body bytes received) as curl reports them."""
    client = ["--cert", str(outside.client_chain), "--key", str(outside.client_key)]
    r = curl("--cacert", outside.root, *client, "-o", "/dev/null", "-w", "%{json}", url)
    assert r.returncode == 0, r.stderr
    status = int(re.search(r'"http_code":(\d+)', r.stdout).group(1))  # type: ignore[union-attr]
    size = int(re.search(r'"size_download":(\d+)', r.stdout).group(1))  # type: ignore[union-attr]
    return status, size


def _logged(gw: Running, target: str) -> tuple[int, int]:
    """(status, bytes) of the access line for `target`."""
    line = gw.wait_for_log(f' {target}" ')
    found = re.search(rf'{re.escape(target)}" (\d+) (\d+)B ', line)
    assert found, line
    return int(found.group(1)), int(found.group(2))


def test_a_policy_refusal_logs_the_403_body_it_sent(outside: OutsidePKI, echo: EchoServer) -> None:
    config = outside_config(outside, echo.url, policy={"allow_ou": ["payments"]})
    with running_gateway(config) as gw:
        status, size = _curl(outside, gw.url + "/refused")
        assert status == 403 and size > 50
        assert _logged(gw, "/refused") == (403, size)  # it said "403 0B" before


def test_an_unreachable_upstream_logs_the_502_body_it_sent(outside: OutsidePKI) -> None:
    with running_gateway(outside_config(outside, f"http://127.0.0.1:{free_port()}")) as gw:
        status, size = _curl(outside, gw.url + "/down")
        assert status == 502 and size > 0
        assert _logged(gw, "/down") == (502, size)


def test_a_relayed_response_logs_its_body_bytes(outside: OutsidePKI, echo: EchoServer) -> None:
    with running_gateway(outside_config(outside, echo.url)) as gw:
        status, size = _curl(outside, gw.url + "/bytes?n=12345")
        assert (status, size) == (200, 12345)
        assert _logged(gw, "/bytes?n=12345") == (200, 12345)


def _chunked(req: Request) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"hello", b" chunked", b" world"))
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def test_a_chunked_response_logs_the_body_as_curl_counts_it(outside: OutsidePKI) -> None:
    with recording_upstream(_chunked) as upstream:
        with running_gateway(outside_config(outside, upstream.url)) as gw:
            status, size = _curl(outside, gw.url + "/chunks")
            assert (status, size) == (200, len(b"hello chunked world"))
            assert _logged(gw, "/chunks") == (200, size)


# -- sockets by state ----------------------------------------------------------------------
@contextmanager
def _status(gw: Running) -> Iterator[str]:
    """The status listener (/metrics) on the gateway's own loop, as `mtlskit gateway` runs it."""
    server = StatusServer(lambda: gw.gateway.ready, gw.gateway.metrics.render)
    host, port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), gw.loop).result(5)
    try:
        yield f"http://{host}:{port}/metrics"
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), gw.loop).result(5)


def _gauges(url: str) -> dict[str, float]:
    text = httpx.get(url).text
    wanted = ("mtlskit_handshakes_in_progress", "mtlskit_connections_by_state")
    return {
        name: float(value)
        for name, value in re.findall(r"^(\S+) (\S+)$", text, re.MULTILINE)
        if name.startswith(wanted) or name == "mtlskit_connections_open"
    }


def _state(n_handshake: float, n_open: float, n_lingering: float) -> dict[str, float]:
    return {
        "mtlskit_handshakes_in_progress": n_handshake,
        'mtlskit_connections_by_state{state="handshake"}': n_handshake,
        'mtlskit_connections_by_state{state="open"}': n_open,
        'mtlskit_connections_by_state{state="lingering"}': n_lingering,
        "mtlskit_connections_open": n_open,
    }


def _stalled(port: int, count: int, stack: ExitStack) -> None:
    """`count` TCP connections stuck in the handshake: half send a partial hello."""
    for i in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        if i % 2:
            sock.sendall(HALF_HELLO)


def _verified(outside: OutsidePKI, port: int, stack: ExitStack) -> None:
    """One client through the handshake, its connection kept open (keep-alive)."""
    ctx = ssl.create_default_context(cafile=str(outside.root))
    ctx.load_cert_chain(outside.client_chain, outside.client_key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls = stack.enter_context(ctx.wrap_socket(raw, server_hostname="localhost"))
    tls.sendall(b"GET /keep HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert tls.recv(65536).startswith(b"HTTP/1.1 200")


def test_stalled_handshakes_and_open_connections_are_gauged(
    outside: OutsidePKI, echo: EchoServer
) -> None:
    config = outside_config(outside, echo.url, limits={"handshake_timeout": "60s"})
    with running_gateway(config) as gw, _status(gw) as url:
        assert _gauges(url) == _state(0, 0, 0)
        with ExitStack() as stack:
            _stalled(gw.port, 7, stack)
            _verified(outside, gw.port, stack)
            gw.wait_until(lambda: _gauges(url) == _state(7, 1, 0))
        # closed by the clients: nothing is left in any state
        gw.wait_until(lambda: _gauges(url) == _state(0, 0, 0))


def test_a_refused_client_that_stays_is_lingering(outside: OutsidePKI, echo: EchoServer) -> None:
    with running_gateway(outside_config(outside, echo.url)) as gw, _status(gw) as url:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain text, not TLS
            sock.recv(100)  # the gateway shuts its side (no alert for plain text)...
            # ...and reads what we may still send, for up to LINGER_SECONDS: we stay.
            gw.wait_until(lambda: _gauges(url) == _state(0, 0, 1))
        gw.wait_until(lambda: _gauges(url) == _state(0, 0, 0))
        assert "code=not_tls" in gw.wait_for_log("handshake_failed")


def test_two_workers_sum_their_handshakes_in_progress(pki: PKI, echo: EchoServer) -> None:
    args = gateway_args(pki, echo, "--workers", "2", "--status", "127.0.0.1:0")
    with GatewayProcess(*args, "--handshake-timeout", "60s") as gw:
        port = int(gw.wait_line(r"2 workers on 127\.0\.0\.1:(\d+)").group(1))
        url = gw.wait_line(r"status on (http://[\d.:]+)/").group(1) + "/metrics"
        assert gw.wait_listening(2) == port
        with ExitStack() as stack:
            # SO_REUSEPORT spreads them over both workers; the supervisor adds them up.
            _stalled(port, 12, stack)
            _wait(lambda: _gauges(url).get("mtlskit_handshakes_in_progress") == 12)
            assert _gauges(url)['mtlskit_connections_by_state{state="handshake"}'] == 12
        _wait(lambda: _gauges(url).get("mtlskit_handshakes_in_progress") == 0)


def _wait(ready: object, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the gauge never got there"
        time.sleep(0.05)
