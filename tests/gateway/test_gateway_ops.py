"""Operating the gateway: TCP mode, hot reload, slow clients, and config that fails at start."""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from mtlskit.demo.echo import EchoServer, TCPEchoServer
from tests.gateway.harness import (
    PKI,
    client_context,
    curl_as,
    gateway_argv,
    gateway_config,
    running_gateway,
)


def _served_cert(port: int, pki: PKI) -> bytes:
    ctx = client_context(pki, "alice")
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(
        path.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    )


def test_tcp_mode_pipes_bytes_both_ways(pki: PKI) -> None:
    with (
        TCPEchoServer() as upstream,
        running_gateway(gateway_config(pki, f"tcp://127.0.0.1:{upstream.port}")) as gw,
    ):
        ctx = client_context(pki, "alice")
        with (
            socket.create_connection(("127.0.0.1", gw.port)) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            for message in (b"ping", b"\x00\x01binary\xff" * 1000):
                tls.sendall(message)
                want = b"echo:" + message
                got = b""
                while len(got) < len(want):
                    got += tls.recv(65536)
                assert got.startswith(b"echo:") and got.replace(b"echo:", b"") == message
        assert "TCP" in gw.wait_for_log("allow(ou=demo)")
        # a client the policy refuses is closed right after the handshake
        ctx = client_context(pki, "carol")
        with (
            socket.create_connection(("127.0.0.1", gw.port)) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.settimeout(5)
            assert tls.recv(10) == b""
        assert "deny(" in gw.wait_for_log("CN=carol")


def test_reload_keeps_open_connections_and_refuses_broken_files(
    pki: PKI, echo: EchoServer, tmp_path: Path
) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki["server.chain.pem"], cert)
    shutil.copy(pki["server.key"], key)
    config = gateway_config(
        pki, echo.url, reload_interval="100ms", tls={"cert": str(cert), "key": str(key)}
    )
    with running_gateway(config) as gw:
        assert _served_cert(gw.port, pki) == _der(pki["server.crt"])
        handshakes = gw.gateway.metrics.handshakes.labels("ok")
        with httpx.Client(verify=client_context(pki, "alice"), base_url=gw.url) as client:
            assert client.get("/before").status_code == 200
            before = handshakes._value.get()
            # replace both files (key first: a reload in between fails and is retried)
            shutil.copy(pki["server2.key"], key)
            shutil.copy(pki["server2.chain.pem"], cert)
            gw.wait_for_log("reloaded")
            assert client.get("/during").status_code == 200  # same keep-alive connection
            assert handshakes._value.get() == before  # no new handshake: it was kept
        assert _served_cert(gw.port, pki) == _der(pki["server2.crt"])
        cert.write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")  # a broken file
        line = gw.wait_for_log("reload_failed")
        assert str(cert) in line and "previous certificates" in line
        assert _served_cert(gw.port, pki) == _der(pki["server2.crt"])  # old state kept
        assert gw.call(gw.gateway.reload, "test") is False


def test_slow_clients_do_not_block_others(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(pki, echo.url, limits={"handshake_timeout": "30s"})
    with running_gateway(config) as gw:
        idle = []
        try:
            for i in range(200):
                sock = socket.create_connection(("127.0.0.1", gw.port))
                if i % 2:
                    sock.sendall(b"\x16\x03\x01\x00\xff\x01")  # half a ClientHello, then silence
                idle.append(sock)
            # curl gives up after 10 s (peers.curl's --max-time), well inside the 30 s the
            # idle handshakes may hold: success means they did not block this client.
            r = curl_as(pki, "alice", gw.url + "/")
            assert r.returncode == 0, r.stderr
        finally:
            for sock in idle:
                sock.close()
        # every abandoned handshake is accounted for: none holds a connection slot
        deadline = time.monotonic() + 5
        while gw.call(lambda: len(gw.gateway.streams)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.call(lambda: len(gw.gateway.streams)) == 0
        assert gw.gateway.metrics.handshakes.labels("connection_reset")._value.get() == 200


def test_handshake_timeout_is_logged(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(pki, echo.url, limits={"handshake_timeout": "200ms"})
    with running_gateway(config) as gw, socket.create_connection(("127.0.0.1", gw.port)):
        assert "code=handshake_timeout" in gw.wait_for_log("handshake_failed")


# -- configuration that must fail at start -----------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "replace", "needle"),
    [
        ([], {"--cert": "/nonexistent/chain.pem"}, "no such file"),
        ([], {"--key": "alice.key"}, "does not match"),
        ([], {"--client-ca": "alice.crt"}, "is not a CA certificate"),
        ([], {"--allow-all": None}, "no allow rule"),
        ([], {"--cert": "alice.chain.pem", "--key": "alice.key"}, "not a server"),
        (["--allow-uri", "spiffe://td/***"], {}, "--allow-uri"),
        ([], {"--upstream": "ftp://x"}, "upstream"),
        (["--header", "X-A=%DOWNSTREAM_PEER_NOPE%"], {}, "DOWNSTREAM_PEER_NOPE"),
    ],
)
def test_bad_config_fails_at_start_with_one_line(
    run_cli, pki: PKI, extra: list[str], replace: dict[str, str | None], needle: str
) -> None:
    resolved = {k: (pki[v] if v in pki.files else v) for k, v in replace.items()}
    r = run_cli(*gateway_argv(pki, *extra, **resolved))
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) <= 2 and lines[0].startswith("error: ") and needle in r.err
    assert "Traceback" not in r.err


def test_unknown_toml_key_and_port_in_use(run_cli, pki: PKI, tmp_path: Path) -> None:
    toml = tmp_path / "gw.toml"
    toml.write_text(
        f'listen = "127.0.0.1:0"\nupstream = "http://127.0.0.1:9"\n[tls]\ncert_fle = "x"\n'
        f'cert = "{pki["server.chain.pem"]}"\n'
    )
    r = run_cli("gateway", "--config", toml)
    assert r.code == 2 and "unknown key 'tls.cert_fle'" in r.err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_cli(*gateway_argv(pki, listen=f"127.0.0.1:{port}"))
    assert r.code == 2
    assert "Address already in use" in r.err and "--listen" in r.err


def test_unix_socket_upstream(pki: PKI, tmp_path: Path) -> None:
    import socketserver
    import threading

    from mtlskit.demo.echo import _Handler

    class UnixHTTP(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True

        def get_request(self):
            sock, _ = super().get_request()
            return sock, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port)

    path = tmp_path / "app.sock"
    server = UnixHTTP(str(path), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with running_gateway(gateway_config(pki, f"unix:{path}")) as gw:
            r = curl_as(pki, "alice", gw.url + "/via-unix")
            assert r.returncode == 0, r.stderr
            assert '"path": "/via-unix"' in r.stdout
    finally:
        server.shutdown()
        server.server_close()


def _tls(pki: PKI, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port))
    return client_context(pki, "alice").wrap_socket(raw, server_hostname="localhost")


def test_slow_request_head_gets_408_and_idle_connections_are_closed(
    pki: PKI, echo: EchoServer
) -> None:
    limits = {"header_timeout": "1s", "idle_timeout": "1s"}
    with running_gateway(gateway_config(pki, echo.url, limits=limits)) as gw:
        with _tls(pki, gw.port) as tls:
            tls.settimeout(10)
            tls.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # the head never ends
            answer = tls.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408")
        with _tls(pki, gw.port) as tls:
            tls.settimeout(10)
            tls.sendall(b"GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
            assert tls.recv(4096).startswith(b"HTTP/1.1 200")
            deadline = time.monotonic() + 10
            closed = False
            while time.monotonic() < deadline and not closed:  # then nothing: idle
                closed = tls.recv(4096) == b""
            assert closed


def test_connection_limit_refuses_before_tls(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url, limits={"max_connections": 2})) as gw:
        held = [_tls(pki, gw.port), _tls(pki, gw.port)]
        try:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                _tls(pki, gw.port).close()
            assert gw.gateway.metrics.handshakes.labels("over_limit")._value.get() >= 1
        finally:
            for tls in held:
                tls.close()


def test_old_tls_versions_are_refused(pki: PKI, echo: EchoServer) -> None:
    from tests.integration.peers import openssl

    with running_gateway(gateway_config(pki, echo.url)) as gw:
        r = openssl(
            "s_client",
            "-connect",
            f"127.0.0.1:{gw.port}",
            "-tls1_1",
            "-cert",
            pki["alice.chain.pem"],
            "-key",
            pki["alice.key"],
            stdin="",
        )
        assert r.returncode != 0
        assert "code=tls_version" in gw.wait_for_log("handshake_failed")
