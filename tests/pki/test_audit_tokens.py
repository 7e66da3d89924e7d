"""Audit records, single-use tokens and CRL distribution points, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.errors import DatabaseError, PKIError
from mtlskit.pki import CertificateAuthority
from mtlskit.pki.keys import signing_hash
from mtlskit.pki.store import SCHEMA_VERSION

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# Two processes try every token in the same order, at the same time; each prints the
# hashes it won.
TOKEN_USER = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from mtlskit.pki import CertificateAuthority
ca_dir, go, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
with CertificateAuthority.load(ca_dir, lock_timeout=60, with_key=False) as ca:
    while not go.exists():
        time.sleep(0.005)
    for i in range(count):
        if ca.store.use_token(f"hash-{i}", datetime.now(UTC)) is not None:
            print(f"hash-{i}", flush=True)
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_token_raced_by_two_processes_is_used_once(
    backend_ca: CertificateAuthority, tmp_path: Path
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=10)
    for i in range(40):
        backend_ca.store.create_token(f"hash-{i}", f"client-{i}", (f"DNS:c{i}",), "client", expires)
    go = tmp_path / "go"
    argv = [sys.executable, "-c", TOKEN_USER, str(backend_ca.directory), str(go), "40"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        time.sleep(0.5)
        go.touch()
        won = [p.communicate(timeout=120)[0].split() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0]
    # every token was won exactly once, by one process or the other
    assert sorted(won[0] + won[1]) == sorted(f"hash-{i}" for i in range(40))
    assert not set(won[0]) & set(won[1])
    assert {backend_ca.store.token_state(f"hash-{i}") for i in range(40)} == {"used"}


def test_token_states_and_an_expired_token_is_refused(backend_ca: CertificateAuthority) -> None:
    store = backend_ca.store
    made = store.create_token(
        _hash("t1"),
        "alice",
        ("DNS:alice", "URI:spiffe://x/alice"),
        "client",
        T0 + timedelta(minutes=10),
        created_at=T0,
    )
    assert made.expires_at == T0 + timedelta(minutes=10)
    assert store.token_state(_hash("t1"), T0) == "valid"
    assert store.token_state(_hash("nope"), T0) == "unknown"
    # expired: refused, and stays unused
    assert store.use_token(_hash("t1"), T0 + timedelta(minutes=10)) is None
    assert store.token_state(_hash("t1"), T0 + timedelta(minutes=11)) == "expired"
    # before expiry: used once, with the names it was made for
    used = store.use_token(_hash("t1"), T0 + timedelta(minutes=9))
    assert used is not None
    assert (used.name, used.sans, used.profile) == (
        "alice",
        ("DNS:alice", "URI:spiffe://x/alice"),
        "client",
    )
    assert used.used_at == T0 + timedelta(minutes=9)
    assert store.use_token(_hash("t1"), T0 + timedelta(minutes=9)) is None
    assert store.token_state(_hash("t1"), T0) == "used"
    assert store.use_token(_hash("nope"), T0) is None
    with pytest.raises(DatabaseError):  # one hash, one token
        store.create_token(_hash("t1"), "bob", (), "client", T0 + timedelta(minutes=10))


def test_issue_revoke_and_crl_are_audited(backend_ca: CertificateAuthority) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    issued = backend_ca.issue_client("alice", ["spiffe://example.org/alice"], now=now)
    backend_ca.revoke(int(issued.serial, 16), "keyCompromise", now=now + timedelta(seconds=1))
    crl = backend_ca.crl(now=now + timedelta(seconds=2))
    events = [
        (a.event, a.serial, a.subject, a.detail, a.at)
        for a in backend_ca.store.audit_records()
        if a.serial == issued.serial or a.event == "crl_published"
    ]
    assert events == [
        ("issued", issued.serial, "CN=alice", "client", now),
        ("revoked", issued.serial, "CN=alice", "keyCompromise", now + timedelta(seconds=1)),
        (
            "crl_published",
            "",
            backend_ca.intermediate.subject.rfc4514_string(),
            "number 1",
            now + timedelta(seconds=2),
        ),
    ]
    assert crl.get_revoked_certificate_by_serial_number(int(issued.serial, 16)) is not None
    # a second revocation is refused and writes no audit row
    with pytest.raises(PKIError, match="already revoked"):
        backend_ca.revoke(int(issued.serial, 16))
    assert len(backend_ca.store.audit_records(event="revoked")) == 1
    # other helpers' events go through the same call, in or out of a transaction
    backend_ca.store.audit("token_created", subject="bob", detail="ttl 10m", at=now)
    assert backend_ca.store.audit_records(event="token_created")[0].subject == "bob"


def test_a_refused_delivery_leaves_no_record_and_no_audit_row(
    backend_ca: CertificateAuthority,
) -> None:
    def refuse(_: object) -> None:
        raise PKIError("output exists", "use --force")

    with pytest.raises(PKIError, match="output exists"):
        backend_ca.issue_client("carol", deliver=refuse)
    assert [r.subject for r in backend_ca.records() if r.profile == "client"] == []
    assert [a.subject for a in backend_ca.store.audit_records()] == [
        "CN=Test Root CA",
        "CN=Test Intermediate CA",
    ]


def test_sign_csr_takes_the_audit_event_for_renewals(backend_ca: CertificateAuthority) -> None:
    first = backend_ca.issue_client("dave")
    assert first.private_key is not None
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(first.certificate.subject)
        .add_extension(
            first.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            critical=False,
        )
        .sign(first.private_key, signing_hash(first.private_key))
    )
    renewed = backend_ca.sign_csr(csr, "client", event="renewed", detail=f"from {first.serial}")
    (row,) = backend_ca.store.audit_records(event="renewed")
    assert (row.serial, row.detail) == (renewed.serial, f"from {first.serial}")


def _cdp_uris(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return [str(n.value) for point in ext for n in point.full_name or []]


def test_init_crl_url_puts_a_distribution_point_in_every_leaf(
    tmp_path: Path, run_cli, out_dir: Path
) -> None:
    d = tmp_path / "ca"
    urls = ["http://ca.example.com/crl", "http://mirror.example.net/ca.crl"]
    r = run_cli("ca", "init", "--dir", d, "--crl-url", urls[0], "--crl-url", urls[1])
    assert r.code == 0, r.err
    assert f"CRL distribution point   {urls[0]}" in r.out
    for kind, name in (("server", "api"), ("client", "eve")):
        assert run_cli("ca", "issue", kind, name, "--dir", d, "--out", out_dir).code == 0
        text = subprocess.run(
            ["openssl", "x509", "-in", str(out_dir / f"{name}.crt"), "-noout", "-text"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "X509v3 CRL Distribution Points" in text
        assert f"URI:{urls[0]}" in text
        assert f"URI:{urls[1]}" in text
    for ca_file in ("root.crt", "intermediate.crt"):  # the CA certificates carry none
        text = subprocess.run(
            ["openssl", "x509", "-in", str(d / ca_file), "-noout", "-text"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "CRL Distribution Points" not in text
    with CertificateAuthority.load(d) as ca:
        assert ca.crl_urls == tuple(urls)
        assert _cdp_uris(ca.issue_server("web").certificate) == urls


def test_a_ca_without_crl_url_issues_no_distribution_point(
    backend_ca: CertificateAuthority,
) -> None:
    cert = backend_ca.issue_server("plain").certificate
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)


@pytest.mark.parametrize("url", ["ldap://ca.example.com/crl", "ca.example.com/crl", "http:///crl"])
def test_a_bad_crl_url_is_refused_before_anything_is_written(
    tmp_path: Path, run_cli, url: str
) -> None:
    r = run_cli("ca", "init", "--dir", tmp_path / "ca", "--crl-url", url)
    assert r.code == 2
    assert f"error: --crl-url {url!r} is not an http:// URL with a host" in r.err
    assert "hint: give the URL peers fetch the CRL from" in r.err
    assert not (tmp_path / "ca").exists()


def test_a_schema_1_database_is_upgraded_when_opened(
    ca: CertificateAuthority, ca_dir: Path
) -> None:
    ca.close()
    # What an mtlskit before the audit log wrote: no audit or tokens tables, schema 1.
    db = sqlite3.connect(ca_dir / "ca.db", isolation_level=None)
    db.executescript(
        "DROP TABLE audit; DROP TABLE tokens;"
        " UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    db.close()
    with CertificateAuthority.load(ca_dir) as upgraded:
        assert upgraded.store.meta("schema_version") == SCHEMA_VERSION
        issued = upgraded.issue_client("frank")
        assert [a.serial for a in upgraded.store.audit_records()] == [issued.serial]


def test_a_newer_schema_is_refused(ca: CertificateAuthority, ca_dir: Path) -> None:
    ca.store.set_meta("schema_version", "99")
    ca.close()
    with pytest.raises(DatabaseError, match="has schema 99") as caught:
        CertificateAuthority.load(ca_dir)
    assert "upgrade mtlskit" in caught.value.hint
