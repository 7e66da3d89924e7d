"""mtlskit's certificates against the real peers: openssl verify, s_server, curl, PKCS#12."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlskit.pki import CertificateAuthority
from tests.integration.peers import curl, openssl, openssl_server


@pytest.fixture
def issued(ca: CertificateAuthority, out_dir: Path) -> Path:
    pw = out_dir / "p12.pass"
    pw.write_text("p12-secret\n")
    ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out_dir, "server")
    ca.issue_client("alice", ["spiffe://example.org/ns/a/sa/alice"]).write(
        out_dir, "alice", p12_password=b"p12-secret"
    )
    return out_dir


def _verify(ca_dir: Path, leaf: Path, purpose: str) -> bool:
    result = openssl(
        "verify",
        "-CAfile",
        ca_dir / "root.crt",
        "-untrusted",
        ca_dir / "intermediate.crt",
        "-purpose",
        purpose,
        leaf,
    )
    return result.returncode == 0 and result.stdout.strip().endswith(": OK")


def test_openssl_verify_accepts_each_purpose_and_rejects_the_other(
    ca_dir: Path, issued: Path
) -> None:
    assert _verify(ca_dir, issued / "server.crt", "sslserver")
    assert _verify(ca_dir, issued / "alice.crt", "sslclient")
    assert not _verify(ca_dir, issued / "server.crt", "sslclient")
    assert not _verify(ca_dir, issued / "alice.crt", "sslserver")


def test_openssl_reads_the_pkcs12(issued: Path) -> None:
    result = openssl(
        "pkcs12", "-info", "-in", issued / "alice.p12", "-passin", "pass:p12-secret", "-nodes"
    )
    assert result.returncode == 0, result.stderr
    assert "subject=CN = alice" in result.stdout
    assert "subject=CN = Test Intermediate CA" in result.stdout
    assert "BEGIN PRIVATE KEY" in result.stdout
    wrong = openssl(
        "pkcs12", "-info", "-in", issued / "alice.p12", "-passin", "pass:nope", "-nokeys"
    )
    assert wrong.returncode != 0


def test_mtls_handshake_s_server_and_curl(ca_dir: Path, issued: Path) -> None:
    with openssl_server(
        cert=issued / "server.crt",
        key=issued / "server.key",
        chain=ca_dir / "intermediate.crt",
        ca=ca_dir / "root.crt",
    ) as port:
        url = f"https://localhost:{port}/"
        ok = curl(
            "--cacert",
            ca_dir / "root.crt",
            "--cert",
            issued / "alice.chain.pem",
            "--key",
            issued / "alice.key",
            url,
        )
        assert ok.returncode == 0, ok.stderr
        assert "s_server" in ok.stdout and "CN = alice" in ok.stdout.replace("CN=", "CN = ")

        p12 = curl(
            "--cacert",
            ca_dir / "root.crt",
            "--cert",
            f"{issued / 'alice.p12'}:p12-secret",
            "--cert-type",
            "P12",
            url,
        )
        assert p12.returncode == 0, p12.stderr

        nocert = curl("--cacert", ca_dir / "root.crt", url)
        assert nocert.returncode != 0
        assert "alert" in nocert.stderr

        # a server certificate is not a client certificate: the server refuses it
        wrong = curl(
            "--cacert",
            ca_dir / "root.crt",
            "--cert",
            issued / "server.chain.pem",
            "--key",
            issued / "server.key",
            url,
        )
        assert wrong.returncode != 0


def test_client_rejects_a_server_that_omits_its_intermediate(ca_dir: Path, issued: Path) -> None:
    # The seed: "If the server does not have the intermediate CAs installed, some clients
    # may not trust the server's certificate." Show it with a real server and client.
    with openssl_server(
        cert=issued / "server.crt",
        key=issued / "server.key",
        chain=None,
        ca=ca_dir / "root.crt",
    ) as port:
        r = curl(
            "--cacert",
            ca_dir / "root.crt",
            "--cert",
            issued / "alice.chain.pem",
            "--key",
            issued / "alice.key",
            f"https://localhost:{port}/",
        )
        assert r.returncode == 60
        assert "unable to get local issuer certificate" in r.stderr
