"""POST /renew over mTLS with curl: same identity, the CSR's key, refusals with reasons."""

from __future__ import annotations

import socket
import ssl
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.pki import CertificateAuthority
from tests.caserver.conftest import OnlineCA, curl, openssl_csr, start
from tests.opensslpki import CLIENT_EXT, OpenSSLPKI

PKCS10 = ("-H", "Content-Type: application/pkcs10")


def _renew(online: OnlineCA, chain: Path, key: Path, csr: Path) -> tuple[int, bytes]:
    answer = curl(
        f"{online.url}/renew",
        "--cacert",
        online.root,
        "--cert",
        chain,
        "--key",
        key,
        "--data-binary",
        f"@{csr}",
        *PKCS10,
    )
    return answer.status, answer.body


def test_curl_renews_with_the_same_identity_and_the_csrs_key(online: OnlineCA) -> None:
    chain, key = online.client("alice", ["spiffe://example.org/alice", "alice.example.org"])
    old = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    csr, _ = openssl_csr(online.work, "alice", "/CN=alice", "URI:spiffe://example.org/alice")
    status, body = _renew(online, chain, key, csr)
    assert status == 200, body
    issued = x509.load_pem_x509_certificates(body)
    leaf = issued[0]
    assert issued[1] == online.ca.intermediate  # leaf then intermediate
    assert leaf.subject == old.subject
    assert leaf.serial_number != old.serial_number
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    old_san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san) == set(old_san)  # the SANs of the certificate, not only the CSR's
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]  # the same profile
    csr_key = x509.load_pem_x509_csr(csr.read_bytes()).public_key()
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(*spki) == csr_key.public_bytes(*spki)
    # Short-lived: 24h (plus the CA's 5 minutes of backdating), not the offline 90 days.
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(hours=24, minutes=5)
    (online.work / "leaf.pem").write_bytes(body)
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(online.root),
            "-untrusted",
            str(online.dir / "intermediate.crt"),
            "-purpose",
            "sslclient",
            str(online.work / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stderr
    events = [r.event for r in online.ca.store.audit_records()]
    assert "renewed" in events
    assert any("POST /renew 200" in line and "cert=CN=alice" in line for line in online.lines)


def test_revoked_certificate_is_refused_with_its_reason(online: OnlineCA) -> None:
    chain, key = online.client("mallory", ["mallory.example.org"])
    leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    online.ca.revoke(leaf.serial_number, "keyCompromise")
    csr, _ = openssl_csr(online.work, "mallory", "/CN=mallory")
    answer = curl(
        f"{online.url}/renew",
        "--cert",
        chain,
        "--key",
        key,
        "--cacert",
        online.root,
        "--data-binary",
        f"@{csr}",
        *PKCS10,
    )
    assert answer.status == 403
    error = answer.json()
    assert error["error"] == "revoked"
    assert "keyCompromise" in error["reason"] and f"{leaf.serial_number:X}" in error["reason"]
    assert "token" in error["hint"]


def test_expired_certificate_is_refused_as_expired(online: OnlineCA) -> None:
    # Issued 3 minutes ago for 1 minute (the CA itself is only minutes old).
    past = datetime.now(UTC) - timedelta(minutes=3)
    chain, key = online.client("old", ["old.example.org"], validity=timedelta(minutes=1), now=past)
    csr, _ = openssl_csr(online.work, "old", "/CN=old")
    status, body = _renew(online, chain, key, csr)
    assert status == 403
    assert b'"error": "expired"' in body


def test_certificate_of_another_ca_is_unknown(online: OnlineCA, tmp_path: Path) -> None:
    other = OpenSSLPKI(tmp_path / "other")
    root = other.root("Other Root")
    leaf = other.issue("alice", root, ext=CLIENT_EXT)
    csr, _ = openssl_csr(online.work, "alice", "/CN=alice")
    status, body = _renew(online, leaf.cert, leaf.key, csr)
    assert status == 403
    assert b'"error": "unknown_certificate"' in body
    assert b"CN=Other Root" in body  # says who did issue it


def test_csr_asking_for_more_names_is_refused(online: OnlineCA) -> None:
    chain, key = online.client("bob", ["bob.example.org"])
    for subject, sans in (("/CN=bob", ("DNS:admin.example.org",)), ("/CN=admin", ())):
        csr, _ = openssl_csr(online.work, "bob", subject, *sans)
        status, body = _renew(online, chain, key, csr)
        assert status == 403, body
        assert b'"error": "names_widened"' in body


def test_renew_needs_a_certificate_and_a_csr(online: OnlineCA) -> None:
    csr, _ = openssl_csr(online.work, "x", "/CN=x")
    answer = curl(f"{online.url}/renew", "--cacert", online.root, "--data-binary", f"@{csr}")
    assert answer.status == 401
    assert answer.json()["error"] == "client_certificate_required"
    chain, key = online.client("carol", ["carol.example.org"])
    garbage = online.work / "garbage.csr"
    garbage.write_text(
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    )
    status, body = _renew(online, chain, key, garbage)
    assert status == 400
    assert b'"error": "bad_csr"' in body


def test_a_server_certificate_renews_too(online: OnlineCA) -> None:
    """serverAuth-only leaves (the gateway's) present themselves as TLS clients here."""
    online.ca.issue_server("gw.example.org", ["gw.example.org"]).write(online.work, "gw")
    csr, _ = openssl_csr(online.work, "gw", "/CN=gw.example.org", "DNS:gw.example.org")
    status, body = _renew(online, online.work / "gw.chain.pem", online.work / "gw.key", csr)
    assert status == 200, body
    leaf = x509.load_pem_x509_certificates(body)[0]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]


def test_many_clients_renew_at_once(online: OnlineCA) -> None:
    pairs = [online.client(f"c{i}", [f"c{i}.example.org"]) for i in range(12)]
    csrs = [openssl_csr(online.work, f"c{i}", f"/CN=c{i}")[0] for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: _renew(online, *pairs[i], csrs[i]), range(12)))
    assert [status for status, _ in results] == [200] * 12
    serials = {x509.load_pem_x509_certificates(body)[0].serial_number for _, body in results}
    assert len(serials) == 12


def test_trust_files_and_a_crl_that_follows_revocations(online: OnlineCA) -> None:
    roots = curl(f"{online.url}/roots", "--cacert", online.root)
    assert x509.load_pem_x509_certificates(roots.body) == [online.ca.root]
    inter = curl(f"{online.url}/intermediates", "--cacert", online.root)
    assert x509.load_pem_x509_certificates(inter.body)[0] == online.ca.intermediate
    first = curl(f"{online.url}/crl", "--cacert", online.root)
    crl = x509.load_der_x509_crl(first.body)
    assert crl.is_signature_valid(online.ca.intermediate.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=1)
    chain, _ = online.client("eve", ["eve.example.org"])
    serial = x509.load_pem_x509_certificates(chain.read_bytes())[0].serial_number
    online.ca.revoke(serial, "superseded")
    pem = curl(f"{online.url}/crl.pem", "--cacert", online.root)
    (online.work / "crl.pem").write_bytes(pem.body)
    text = subprocess.run(
        ["openssl", "crl", "-in", str(online.work / "crl.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{serial:X}" in text.replace(":", "").upper()
    assert "Superseded" in text
    assert "crl_published" in [r.event for r in online.ca.store.audit_records()]


def test_unknown_paths_big_bodies_and_silent_clients(tmp_path: Path, online: OnlineCA) -> None:
    assert curl(f"{online.url}/nope", "--cacert", online.root).status == 404
    assert curl(f"{online.url}/renew", "--cacert", online.root).status == 405
    ctx = ssl.create_default_context(cafile=str(online.root))
    host, port = online.server.address
    with (
        socket.create_connection((host, port)) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(b"POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        head = tls.recv(100)
    assert head.startswith(b"HTTP/1.1 413")


def test_a_silent_client_is_cut_off(ca: CertificateAuthority, ca_dir: Path, tmp_path: Path) -> None:
    online = start(ca, ca_dir, tmp_path, timeout=0.5)
    with online.server, socket.create_connection(online.server.address) as raw:
        raw.settimeout(10)
        assert raw.recv(100) == b""  # closed by the server, not by our 10 s
    assert any("timed out" in line for line in online.lines), online.lines
