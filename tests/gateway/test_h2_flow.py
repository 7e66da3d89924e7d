"""HTTP/2 flow control end to end, trailers and cancellation through the gateway.

Memory is measured as the bytes the gateway holds for a connection (per-stream queues,
upstream write buffers and the TLS write buffer), sampled on the gateway's own loop while
the transfer runs: a bound on buffering, not a timing.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mtlskit.demo.echo import EchoServer
from mtlskit.gateway.h2server import H2Connection
from tests.gateway.harness import (
    PKI,
    H2Client,
    Running,
    client_context,
    gateway_config,
    running_gateway,
)

MB = 1024 * 1024
# What one connection may hold: the stream window (256 KiB), the per-stream high-water
# mark (64 KiB), the TLS and socket write buffers (64 KiB each) and a read or two.
BOUND = 1 * MB


def _held(gw: Running) -> int:
    def measure() -> int:
        return sum(c.buffered() for c in gw.gateway.connections if isinstance(c, H2Connection))

    held: int = gw.call(measure)
    return held


def _curl_sampled(gw: Running, pki: PKI, *args: str) -> tuple[str, int]:
    """Run curl --http2 as alice; returns (stdout, the most the gateway held meanwhile)."""
    argv = ["curl", "-sS", "--http2", "--max-time", "120", "--cacert", str(pki["root.crt"])]
    argv += ["--cert", str(pki["alice.chain.pem"]), "--key", str(pki["alice.key"]), *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    most = 0
    try:
        while proc.poll() is None:
            most = max(most, _held(gw))
            try:
                proc.wait(0.02)
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return out, most


def test_a_100_mb_download_over_one_stream_holds_little(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url, access_log=True)) as gw:
        url = f"{gw.url}/bytes?n={100 * MB}"
        out, most = _curl_sampled(
            gw,
            pki,
            "--limit-rate",
            "50M",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_version}",
            url,
        )
        assert out == f"{100 * MB} 2"
        assert 0 < most < BOUND, most
        gw.wait_for_log(f'"GET /bytes?n={100 * MB}" 200 {100 * MB}B')


@contextmanager
def _slow_sink() -> Iterator[str]:
    """An HTTP/1.1 workload that reads request bodies slowly and answers with their digest."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536) or b"\r\n\r\n"
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                digest = hashlib.sha256(body)
                got = len(body)
                while got < length:
                    chunk = conn.recv(min(65536, length - got))
                    if not chunk:
                        return
                    digest.update(chunk)
                    got += len(chunk)
                    time.sleep(0.001)  # slower than the client: the gateway must push back
                answer = f"{got} {digest.hexdigest()}".encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer)
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(5)


def test_a_100_mb_upload_over_one_stream_holds_little(pki: PKI, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    with blob.open("wb") as f:
        for i in range(100):
            f.write(bytes([i]) * MB)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    with _slow_sink() as upstream, running_gateway(gateway_config(pki, upstream)) as gw:
        out, most = _curl_sampled(gw, pki, "--data-binary", f"@{blob}", f"{gw.url}/upload")
        assert out == f"{100 * MB} {digest}"
        assert 0 < most < BOUND, most


def test_a_slow_reader_on_one_stream_does_not_stall_another(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        client = H2Client(gw.port, client_context(pki))
        try:
            slow = client.request(f"/bytes?n={20 * MB}")
            client.held.add(slow)  # never acknowledged: its window shuts after 64 KiB
            client.pump(lambda: len(client.responses[slow].body) >= 65535)
            held_while_stalled = _held(gw)
            for i in range(5):  # meanwhile others are served on the same connection
                (quick,) = client.wait(client.request(f"/quick/{i}"))
                assert quick.status == 200 and json.loads(quick.body)["path"] == f"/quick/{i}"
            assert len(client.responses[slow].body) == 65535  # the window, no more
            assert held_while_stalled < BOUND
            client.release(slow)  # read on: the rest arrives
            (done,) = client.wait(slow, timeout=60)
            assert len(done.body) == 20 * MB
        finally:
            client.close()


@contextmanager
def _chunked_upstream(trailers: bytes) -> Iterator[str]:
    """An HTTP/1.1 workload answering every request chunked, with `trailers`."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n"
        b"trailer: x-checksum\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n" + trailers + b"\r\n"
    )

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if chunk:
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(5)


def test_trailers_of_a_chunked_http11_answer_reach_the_h2_client(pki: PKI) -> None:
    with _chunked_upstream(b"x-checksum: abc123\r\n") as upstream:
        with running_gateway(gateway_config(pki, upstream)) as gw:
            client = H2Client(gw.port, client_context(pki))
            try:
                (answer,) = client.wait(client.request("/t"))
            finally:
                client.close()
    assert answer.status == 200 and bytes(answer.body) == b"hello world"
    assert answer.trailers == {"x-checksum": "abc123"}
    # Hop-by-hop fields of the HTTP/1.1 answer are not HTTP/2 fields (RFC 9113 8.2.2).
    assert not {"connection", "keep-alive", "transfer-encoding"} & set(answer.headers)


def test_a_client_reset_cancels_the_upstream_request(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        client = H2Client(gw.port, client_context(pki))
        try:
            slow = client.request("/slow?s=3")
            gw.wait_until(lambda: _streams(gw) == 1)
            client.h2.reset_stream(slow, 8)  # CANCEL
            client.tls.sendall(client.h2.data_to_send())
            gw.wait_until(lambda: _streams(gw) == 0)
            (after,) = client.wait(client.request("/after"))
            assert after.status == 200
        finally:
            client.close()
        gw.wait_for_log("reset by the client")


def _streams(gw: Running) -> int:
    def count() -> int:
        return sum(len(c.streams) for c in gw.gateway.connections if isinstance(c, H2Connection))

    n: int = gw.call(count)
    return n
