"""The gateway's TLS layer (pyOpenSSL over the socket) against real clients.

Resumption keeps the identity, the chain the client sent reaches the workload whole, a
revoked leaf gets alert 44 in the handshake, and a refusal names the certificate at fault.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.demo.echo import EchoServer
from mtlskit.pki import CertificateAuthority
from tests.gateway.harness import PKI, client_context, gateway_config, running_gateway
from tests.integration.peers import curl, openssl


def _get(ctx: ssl.SSLContext, port: int, session: ssl.SSLSession | None = None) -> Any:
    """GET / through the gateway on one new TLS connection: (answer, session, reused)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        body = data.split(b"\r\n\r\n", 1)[1]
        return json.loads(body), tls.session, tls.session_reused


def _headers(answer: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in answer["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def _identity_headers(answer: dict[str, Any]) -> dict[str, list[str]]:
    wanted = ("x-forwarded-client-cert", "client-cert", "client-cert-chain", "x-client-subject")
    return {k: v for k, v in _headers(answer).items() if k in wanted}


def test_a_resumed_tls13_session_keeps_the_identity(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(
        pki,
        echo.url,
        identity_headers="xfcc,client-cert",
        headers={"X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
    )
    with running_gateway(config) as gw:
        ctx = client_context(pki, "alice")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        first, session, reused = _get(ctx, gw.port)
        assert not reused and session is not None
        second, _, reused = _get(ctx, gw.port, session)
        assert reused  # no certificate was sent this time: the gateway resumed the session
        assert _identity_headers(second) == _identity_headers(first)
        assert _headers(second)["client-cert-chain"]  # the chain survived resumption too


def _pem_list(value: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(urllib.parse.unquote(value).encode())


def test_the_chain_as_sent_reaches_the_workload(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(pki, echo.url, identity_headers="xfcc,client-cert")
    leaf = x509.load_pem_x509_certificate(pki["alice.crt"].read_bytes())
    intermediate = x509.load_pem_x509_certificate(pki["intermediate.crt"].read_bytes())
    with running_gateway(config) as gw:
        answer, _, _ = _get(client_context(pki, "alice"), gw.port)
    headers = _headers(answer)
    (xfcc,) = headers["x-forwarded-client-cert"]
    chain = xfcc.split('Chain="', 1)[1].split('"', 1)[0]
    assert _pem_list(chain) == [leaf, intermediate]  # Envoy: the leaf, then what was sent
    (cert,) = headers["client-cert"]
    assert base64.b64decode(cert.strip(":")) == leaf.public_bytes(serialization.Encoding.DER)
    # RFC 9440 2.2: the chain without the end-entity certificate
    (sent,) = headers["client-cert-chain"]
    der = intermediate.public_bytes(serialization.Encoding.DER)
    assert [base64.b64decode(item.strip().strip(":")) for item in sent.split(",")] == [der]


def test_xfcc_by_carries_the_servers_uri_sans(pki: PKI, echo: EchoServer, tmp_path: Path) -> None:
    gateway_id = "spiffe://example.org/ns/edge/sa/gateway"
    with CertificateAuthority.load(pki.ca_dir) as ca:
        ca.issue_server("localhost", ["localhost", "127.0.0.1", gateway_id]).write(tmp_path, "gw")
    config = gateway_config(
        pki,
        echo.url,
        tls={"cert": str(tmp_path / "gw.chain.pem"), "key": str(tmp_path / "gw.key")},
    )
    with running_gateway(config) as gw:
        answer, _, _ = _get(client_context(pki, "alice"), gw.port)
    (xfcc,) = _headers(answer)["x-forwarded-client-cert"]
    assert xfcc.startswith(f"By={gateway_id};Hash=")


def test_openssl_sees_alert_44_for_a_revoked_certificate(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(
        pki,
        echo.url,
        tls={"client_ca": str(pki["clients-ca.pem"]), "crl": [str(pki["crl.pem"])]},
    )
    with running_gateway(config) as gw:
        r = openssl(
            "s_client",
            "-connect",
            f"127.0.0.1:{gw.port}",
            "-servername",
            "localhost",
            "-cert",
            pki["revoked.crt"],
            "-key",
            pki["revoked.key"],
            "-cert_chain",
            pki["intermediate.crt"],
            "-CAfile",
            pki["root.crt"],
            "-ign_eof",  # read on after the request: the TLS 1.3 alert follows the handshake
            stdin="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        out = r.stdout + r.stderr
        assert "alert certificate revoked" in out and "alert number 44" in out, out
        assert "code=revoked" in gw.wait_for_log("handshake_failed")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_cert(
    subject: str, key: Any, issuer: str, issuer_key: Any, start: datetime, end: datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def test_a_refusal_names_an_expired_intermediate(
    pki: PKI, echo: EchoServer, tmp_path: Path
) -> None:
    """Built by hand: our CA never issues a leaf that outlives its intermediate."""
    now = datetime.now(UTC)
    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _ca_cert(
        "Old Root",
        root_key,
        "Old Root",
        root_key,
        now - timedelta(days=400),
        now + timedelta(days=400),
    )
    inter = _ca_cert(
        "Lapsed Intermediate",
        int_key,
        "Old Root",
        root_key,
        now - timedelta(days=300),
        now - timedelta(days=1),
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "dave"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "demo"),
                ]
            )
        )
        .issuer_name(inter.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=10))
        .not_valid_after(now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("dave.example.org")]), critical=False
        )
        .sign(int_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "root.crt").write_bytes(root.public_bytes(pem))
    (tmp_path / "dave.chain.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    (tmp_path / "dave.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    config = gateway_config(pki, echo.url, tls={"client_ca": str(tmp_path / "root.crt")})
    with running_gateway(config) as gw:
        dave: list[str | Path] = ["--cert", tmp_path / "dave.chain.pem"]
        dave += ["--key", tmp_path / "dave.key"]
        r = curl("--cacert", pki["root.crt"], *dave, gw.url + "/")
        assert r.returncode != 0 and "certificate expired" in r.stderr
        line = gw.wait_for_log("handshake_failed")
    assert "code=expired" in line
    assert "the intermediate CA CN=Lapsed Intermediate (depth 1" in line
    assert 'certificate="CN=Lapsed Intermediate"' in line or "certificate=CN=Lapsed" in line
    assert "renew the CA certificate CN=Lapsed Intermediate" in line  # not "renew the leaf"


def test_session_tickets_0_turns_resumption_off(pki: PKI, echo: EchoServer) -> None:
    config = gateway_config(pki, echo.url, tls={"session_tickets": 0})
    with running_gateway(config) as gw:
        ctx = client_context(pki, "alice")
        _, session, _ = _get(ctx, gw.port)
        _, _, reused = _get(ctx, gw.port, session)
        assert not reused


def test_a_ticket_count_pyopenssl_cannot_set_is_refused_at_start(run_cli, pki: PKI) -> None:
    from tests.gateway.harness import gateway_argv

    r = run_cli(*gateway_argv(pki, session_tickets="3"))
    assert r.code == 2 and "session_tickets" in r.err and "hint: use 2" in r.err


def test_min_version_13_refuses_tls12(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url, tls={"min_version": "1.3"})) as gw:
        trust: list[str | Path] = ["--cacert", pki["root.crt"]]
        alice: list[str | Path] = ["--cert", pki["alice.chain.pem"], "--key", pki["alice.key"]]
        r = curl(*trust, *alice, "--tls-max", "1.2", gw.url + "/")
        assert r.returncode != 0
        assert "code=tls_version" in gw.wait_for_log("handshake_failed")
        ok = curl(*trust, *alice, gw.url + "/")
        assert ok.returncode == 0, ok.stderr
