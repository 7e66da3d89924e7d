"""The gateway in HTTP mode against real clients (curl, httpx, openssl) and a real workload."""

from __future__ import annotations

import base64
import json
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.demo.echo import EchoServer
from tests.gateway.harness import PKI, client_context, curl_as, gateway_config, running_gateway
from tests.integration.peers import curl, openssl

# Each refusal the gateway writes itself, over both protocols curl speaks to it.
PROTO = {"1.1": "--http1.1", "2": "--http2"}
BOTH = pytest.mark.parametrize("v", list(PROTO))


def _headers(answer: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in answer["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def test_curl_gets_the_answer_and_the_workload_learns_who_called(
    pki: PKI, echo: EchoServer
) -> None:
    config = gateway_config(
        pki,
        echo.url,
        identity_headers="xfcc,client-cert",
        headers={
            "X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%",
            "X-Client-URI": "%DOWNSTREAM_PEER_URI_SAN%",
        },
    )
    with running_gateway(config) as gw:
        r = curl_as(
            pki,
            "alice",
            gw.url + "/hello?x=1",
            "-H",
            "X-Forwarded-Client-Cert: By=spiffe://evil;Hash=00",
            "-H",
            "Client-Cert: :AAAA:",
            "-H",
            "x-client-subject: CN=admin",
            "-H",
            "X_Forwarded_Client_Cert: sneaky",
        )
        assert r.returncode == 0, r.stderr
        answer = json.loads(r.stdout)
        headers = _headers(answer)
        assert answer["path"] == "/hello?x=1"
        alice = x509.load_pem_x509_certificate(pki["alice.crt"].read_bytes())
        der = alice.public_bytes(serialization.Encoding.DER)
        # exactly one XFCC: ours, with the right hash and SPIFFE URI; the client's is gone
        (xfcc,) = headers["x-forwarded-client-cert"]
        assert "evil" not in xfcc and "sneaky" not in json.dumps(answer)
        assert f"Hash={alice.fingerprint(hashes.SHA256()).hex()}" in xfcc
        assert "URI=spiffe://example.org/ns/shop/sa/alice" in xfcc
        assert 'Subject="CN=alice,OU=demo,O=Example"' in xfcc
        cert_pem = urllib.parse.unquote(xfcc.split('Cert="', 1)[1].split('"', 1)[0])
        assert x509.load_pem_x509_certificate(cert_pem.encode()) == alice
        # RFC 9440: the leaf as a structured-field byte sequence, the intermediate in -Chain
        assert headers["client-cert"] == [f":{base64.b64encode(der).decode()}:"]
        assert headers["x-client-subject"] == ["CN=alice,OU=demo,O=Example"]
        assert headers["x-client-uri"] == ["spiffe://example.org/ns/shop/sa/alice"]
        assert headers["x-forwarded-proto"] == ["https"]
        assert headers["x-forwarded-for"] == ["127.0.0.1"]
        assert headers["x-forwarded-host"] == [f"localhost:{gw.port}"]
        # the workload's helper reads the identity back from the headers
        assert answer["identity"]["spiffe_id"] == "spiffe://example.org/ns/shop/sa/alice"
        line = gw.wait_for_log('"GET /hello?x=1" 200')
        assert "CN=alice" in line and "allow(ou=demo)" in line


def test_httpx_keep_alive_uploads_and_downloads(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        with httpx.Client(verify=client_context(pki, "alice"), base_url=gw.url) as client:
            for i in range(5):
                r = client.get(f"/n/{i}")
                assert r.status_code == 200 and r.json()["path"] == f"/n/{i}"
            big = client.get("/bytes?n=5000000")
            assert big.status_code == 200 and len(big.content) == 5_000_000
            payload = bytes(range(256)) * 40_000  # ~10 MB, Content-Length
            up = client.post("/upload", content=payload)
            assert up.json()["body_bytes"] == len(payload)

            def chunks() -> Iterator[bytes]:
                for _ in range(50):
                    yield b"y" * 100_000

            chunked = client.post("/upload", content=chunks())  # Transfer-Encoding: chunked
            assert chunked.json()["body_bytes"] == 5_000_000
            head = client.head("/h")
            assert head.status_code == 200
            again = client.get("/after-head")
            assert again.json()["path"] == "/after-head"
        # one TLS connection served everything: one handshake, one upstream connection
        assert gw.gateway.metrics.handshakes.labels("ok")._value.get() == 1


def _handshake_code(gw, needle: str) -> str:
    return gw.wait_for_log(needle)


@pytest.mark.parametrize(
    ("name", "chain", "code"),
    [
        (None, True, "code=no_client_certificate"),
        ("intruder", True, "code=unknown_issuer"),
        ("expired", True, "code=expired"),
        ("serveronly", True, "code=wrong_purpose"),
        ("alice", False, "code=unknown_issuer"),  # intermediate not sent, and unknown
    ],
)
def test_rejected_handshakes_name_their_reason(
    pki: PKI, echo: EchoServer, name: str | None, chain: bool, code: str
) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        args: list[str | Path] = ["--cacert", pki["root.crt"]]
        if name is not None:
            leaf = pki[f"{name}.chain.pem"] if chain else pki[f"{name}.crt"]
            args += ["--cert", leaf, "--key", pki[f"{name}.key"]]
        r = curl(*args, gw.url + "/")
        assert r.returncode != 0
        assert "alert" in r.stderr  # the client is told, not just reset
        line = gw.wait_for_log("handshake_failed")
        assert code in line and "step=" in line and "fix=" in line


def test_revoked_certificate_is_refused(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(
        pki,
        echo.url,
        tls={"client_ca": str(pki["clients-ca.pem"]), "crl": [str(pki["crl.pem"])]},
    )
    with running_gateway(config) as gw:
        r = curl_as(pki, "revoked", gw.url + "/")
        # refused in the handshake, as Envoy does: alert 44 certificate_revoked
        assert r.returncode != 0 and "alert certificate revoked" in r.stderr
        line = gw.wait_for_log("handshake_failed")
        revoked = x509.load_pem_x509_certificate(pki["revoked.crt"].read_bytes())
        assert "code=revoked" in line and f"serial={revoked.serial_number:x}" in line
        assert "revocation_reason=keyCompromise" in line and "revocation_date=" in line
        assert "CN=mallory" in line
        ok = curl_as(pki, "alice", gw.url + "/")
        assert ok.returncode == 0 and json.loads(ok.stdout)["path"] == "/"


@BOTH
def test_no_matching_rule_gets_403_with_the_reason(pki: PKI, echo: EchoServer, v: str) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        r = curl_as(pki, "carol", gw.url + "/private", "-i", PROTO[v])
        assert r.stdout.startswith(f"HTTP/{v} 403")
        assert "no allow rule matched" in r.stdout
        assert "alice" not in r.stdout  # names nobody else
        assert "deny(" in gw.wait_for_log('"GET /private" 403')


def test_openssl_sees_the_full_chain_and_the_ca_names(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        r = openssl(
            "s_client",
            "-connect",
            f"127.0.0.1:{gw.port}",
            "-showcerts",
            "-servername",
            "localhost",
            "-cert",
            pki["alice.crt"],
            "-key",
            pki["alice.key"],
            "-cert_chain",
            pki["intermediate.crt"],
            "-CAfile",
            pki["root.crt"],
            stdin="",
        )
        out = r.stdout
        assert out.count("-----BEGIN CERTIFICATE-----") == 2  # leaf + intermediate, no root
        assert "Acceptable client certificate CA names\nCN = Gateway Test Root CA" in out
        assert "Verify return code: 0 (ok)" in out


def test_upgrade_is_tunnelled(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        ctx = client_context(pki, "alice")
        with (
            socket.create_connection(("127.0.0.1", gw.port)) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(4096)
            assert head.startswith(b"HTTP/1.1 101")
            tls.sendall(b"hello tunnel")
            got = b""
            while len(got) < 12:
                got += tls.recv(4096)
            assert got == b"HELLO TUNNEL"


@BOTH
def test_upstream_down_is_502_and_slow_is_504(pki: PKI, v: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with running_gateway(gateway_config(pki, f"http://127.0.0.1:{dead}")) as gw:
        r = curl_as(pki, "alice", gw.url + "/", "-i", PROTO[v])
        assert r.stdout.startswith(f"HTTP/{v} 502")
    with (
        EchoServer() as slow,
        running_gateway(gateway_config(pki, slow.url, limits={"upstream_timeout": "1s"})) as gw,
    ):
        r = curl_as(pki, "alice", gw.url + "/slow?s=3", "-i", PROTO[v])
        assert r.stdout.startswith(f"HTTP/{v} 504")


@BOTH
def test_oversized_head_gets_431(pki: PKI, echo: EchoServer, v: str) -> None:
    with running_gateway(gateway_config(pki, echo.url, limits={"max_header_bytes": 4096})) as gw:
        r = curl_as(pki, "alice", gw.url + "/", "-i", PROTO[v], "-H", "X-Big: " + "a" * 10_000)
        assert r.stdout.startswith(f"HTTP/{v} 431")


def test_status_endpoints(pki: PKI, echo: EchoServer) -> None:
    import asyncio

    from mtlskit.gateway.status import StatusServer

    with running_gateway(gateway_config(pki, echo.url)) as gw:
        curl_as(pki, "alice", gw.url + "/")
        curl_as(pki, None, gw.url + "/")
        status = StatusServer(lambda: gw.gateway.ready, gw.gateway.metrics.render)
        host, port = asyncio.run_coroutine_threadsafe(status.start("127.0.0.1", 0), gw.loop).result(
            5
        )
        base = f"http://{host}:{port}"
        assert httpx.get(base + "/healthz").text == "ok\n"
        assert httpx.get(base + "/readyz").status_code == 200
        metrics = httpx.get(base + "/metrics").text
        assert 'mtlskit_handshakes_total{result="ok"} 1.0' in metrics
        assert 'mtlskit_handshakes_total{result="no_client_certificate"} 1.0' in metrics
        assert 'mtlskit_requests_total{status="200"} 1.0' in metrics
        assert "mtlskit_certificate_expiry_timestamp_seconds{" in metrics
        asyncio.run_coroutine_threadsafe(status.close(), gw.loop).result(5)
