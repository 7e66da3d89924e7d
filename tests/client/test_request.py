"""`mtlskit request` against s_server and the real gateway: ok, fail closed, access_denied."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mtlskit.demo.echo import EchoServer
from tests.client.servers import s_server
from tests.gateway.harness import PKI, gateway_config, make_pki, running_gateway


def _request(mtlskit: Any, *argv: str | Path) -> tuple[int, dict[str, Any]]:
    r = mtlskit("request", *argv, "--json")
    assert "Traceback" not in r.err
    return r.code, json.loads(r.out)


def _server(certs: dict[str, Path], **kw: Any) -> Any:
    return s_server(
        cert=certs["server.crt"],
        key=certs["server.key"],
        chain=certs["intermediate.crt"],
        ca=certs["root.crt"],
        **kw,
    )


def test_request_with_a_client_certificate(certs: dict[str, Path], mtlskit: Any) -> None:
    with _server(certs) as port:
        code, data = _request(
            mtlskit,
            f"https://localhost:{port}/",
            "--ca",
            certs["root.crt"],
            "--cert",
            certs["alice.chain.pem"],
            "--key",
            certs["alice.key"],
        )
    assert code == 0 and data["code"] == "ok", data
    assert data["status"] == 200 and "s_server" in data["body"]
    assert [s["status"] for s in data["steps"]] == ["ok"] * 9


def test_trace_prints_the_steps_and_stdout_is_the_body(
    certs: dict[str, Path], mtlskit: Any
) -> None:
    with _server(certs) as port:
        r = mtlskit(
            "request",
            f"https://localhost:{port}/",
            "--ca",
            certs["root.crt"],
            "--cert",
            certs["alice.chain.pem"],
            "--key",
            certs["alice.key"],
            "--trace",
        )
    assert r.code == 0, r.err
    assert "s_server" in r.out and "9. mTLS connection established" in r.err


def test_pkcs12_identity(certs: dict[str, Path], mtlskit: Any) -> None:
    with _server(certs) as port:
        code, data = _request(
            mtlskit,
            f"https://localhost:{port}/",
            "--ca",
            certs["root.crt"],
            "--cert",
            certs["alice.p12"],
            "--cert-type",
            "p12",
            "--password-file",
            certs["p12pass"],
        )
    assert code == 0 and data["status"] == 200, data


def test_tls13_rejection_arrives_on_the_read(certs: dict[str, Path], mtlskit: Any) -> None:
    with _server(certs, extra=["-tls1_3"]) as port:
        code, data = _request(mtlskit, f"https://localhost:{port}/", "--ca", certs["root.crt"])
    assert code == 1 and data["code"] == "client_cert_required", data
    assert data["status"] is None


@contextmanager
def _listening_tls_server(certs: dict[str, Path]) -> Iterator[tuple[int, list[bytes]]]:
    """A TLS server that records every byte of application data it receives."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["server.chain.pem"], certs["server.key"])
    received: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def serve() -> None:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.settimeout(5)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                while chunk := tls.recv(4096):
                    received.append(chunk)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1]), received
    finally:
        sock.close()
        thread.join(10)


def test_untrusted_server_gets_no_request(certs: dict[str, Path], mtlskit: Any) -> None:
    with _listening_tls_server(certs) as (port, received):
        code, data = _request(
            mtlskit,
            f"https://localhost:{port}/secret",
            "--ca",
            certs["other_root.crt"],
            "--cert",
            certs["alice.chain.pem"],
            "--key",
            certs["alice.key"],
        )
    assert code == 1 and data["code"] == "server_cert_untrusted", data
    assert data["status"] is None and received == []


def test_wrong_name_gets_no_request(certs: dict[str, Path], mtlskit: Any) -> None:
    with _listening_tls_server(certs) as (port, received):
        code, data = _request(
            mtlskit,
            f"https://127.0.0.1:{port}/",
            "--ca",
            certs["root.crt"],
            "--servername",
            "other.example.org",
        )
    assert code == 1 and data["code"] == "server_name_mismatch", data
    assert received == []


def test_bad_header_is_a_usage_error(mtlskit: Any) -> None:
    r = mtlskit("request", "https://localhost:1/", "-H", "no-colon")
    assert r.code == 2 and r.err.startswith("error: -H")
    r = mtlskit("request", "http://localhost:1/")
    assert r.code == 2 and "https://" in r.err


@pytest.fixture(scope="module")
def gw_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(Path(tmp_path_factory.mktemp("gwpki")))


def test_gateway_403_is_access_denied_with_its_reason(gw_pki: PKI, mtlskit: Any) -> None:
    with EchoServer() as echo, running_gateway(gateway_config(gw_pki, echo.url)) as gw:
        common: list[str | Path] = ["--ca", gw_pki["root.crt"]]
        code, ok = _request(
            mtlskit,
            f"{gw.url}/hello",
            *common,
            "--cert",
            gw_pki["alice.chain.pem"],
            "--key",
            gw_pki["alice.key"],
        )
        code2, denied = _request(
            mtlskit,
            f"{gw.url}/hello",
            *common,
            "--cert",
            gw_pki["carol.chain.pem"],
            "--key",
            gw_pki["carol.key"],
        )
    assert code == 0 and ok["code"] == "ok" and ok["status"] == 200, ok
    assert code2 == 1 and denied["code"] == "access_denied", denied
    assert denied["status"] == 403 and denied["failed_step"] == 9
    reason = json.loads(denied["body"])["reason"]  # the gateway's refusal page (JSON)
    assert reason and reason in denied["explanation"]
