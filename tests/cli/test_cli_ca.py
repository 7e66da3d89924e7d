"""`mtlskit ca ...` in-process: every command, and every bad input with its one-line error."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.profile_asserts import assert_is_intermediate, assert_is_leaf, assert_is_root


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _one_error(result) -> None:
    lines = result.err.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.err
    assert lines[0].startswith("error: ")
    if len(lines) == 2:
        assert lines[1].startswith("hint: ")
    assert "Traceback" not in result.err


@pytest.fixture
def made(tmp_path: Path, run_cli) -> Path:
    d = tmp_path / "ca"
    assert run_cli("ca", "init", "--dir", d, "--name", "Example Root CA").code == 0
    return d


# -- ca init --------------------------------------------------------------------------------
def test_init_writes_the_chain_of_trust(made: Path) -> None:
    assert sorted(p.name for p in made.iterdir()) == [
        "ca.db",
        "intermediate.crt",
        "intermediate.key",
        "root.crt",
        "root.key",
    ]
    root, intermediate = _cert(made / "root.crt"), _cert(made / "intermediate.crt")
    assert_is_root(root)
    assert_is_intermediate(intermediate, root)
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Example Root CA"
    assert _mode(made / "root.key") == 0o600
    assert _mode(made / "intermediate.key") == 0o600
    assert b"ENCRYPTED" not in (made / "root.key").read_bytes()


def test_init_refuses_to_overwrite_a_ca(made: Path, run_cli) -> None:
    before = (made / "root.key").read_bytes()
    result = run_cli("ca", "init", "--dir", made)
    assert result.code == 2
    _one_error(result)
    assert "already exists" in result.err and "--dir" in result.err
    assert (made / "root.key").read_bytes() == before


@pytest.mark.parametrize("key_type", ["rsa-1024", "dsa", "ec-p192"])
def test_init_rejects_weak_or_unknown_key_types(tmp_path: Path, run_cli, key_type: str) -> None:
    result = run_cli("ca", "init", "--dir", tmp_path / "ca", "--key-type", key_type)
    assert result.code == 2
    _one_error(result)
    assert "--key-type" in result.err and "ec-p256" in result.err
    assert not (tmp_path / "ca").exists()


def test_init_with_password_encrypts_keys_and_issue_needs_it(tmp_path: Path, run_cli) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    d = tmp_path / "ca"
    assert (
        run_cli("ca", "init", "--dir", d, "--password-file", pw, "--key-type", "rsa-2048").code == 0
    )
    assert b"ENCRYPTED PRIVATE KEY" in (d / "intermediate.key").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    missing = run_cli("ca", "issue", "server", "api", "--dir", d, "--out", out)
    assert missing.code == 2
    _one_error(missing)
    assert "--password-file" in missing.err
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    bad = run_cli(
        "ca", "issue", "server", "api", "--dir", d, "--out", out, "--password-file", wrong
    )
    assert bad.code == 2
    _one_error(bad)
    assert "wrong password" in bad.err and "intermediate.key" in bad.err
    assert list(out.iterdir()) == []
    ok = run_cli("ca", "issue", "server", "api", "--dir", d, "--out", out, "--password-file", pw)
    assert ok.code == 0, ok.err
    assert isinstance(_cert(d / "intermediate.crt").public_key(), rsa.RSAPublicKey)
    assert isinstance(
        _cert(out / "api.crt").public_key(), ec.EllipticCurvePublicKey
    )  # leaf default


# -- ca issue -------------------------------------------------------------------------------
def test_issue_server_and_client_write_key_leaf_and_chain(
    made: Path, out_dir: Path, run_cli
) -> None:
    r = run_cli(
        "ca",
        "issue",
        "server",
        "api",
        "--dir",
        made,
        "--san",
        "api.example.com",
        "--san",
        "10.0.0.1",
        "--out",
        out_dir,
    )
    assert r.code == 0, r.err
    r = run_cli(
        "ca",
        "issue",
        "client",
        "alice",
        "--dir",
        made,
        "--san",
        "spiffe://td/ns/x",
        "--san",
        "alice@example.com",
        "--org",
        "Example",
        "--ou",
        "Payments",
        "--validity",
        "30d",
        "--out",
        out_dir,
    )
    assert r.code == 0, r.err
    for name, purpose in (("api", "server"), ("alice", "client")):
        assert _mode(out_dir / f"{name}.key") == 0o600
        leaf = _cert(out_dir / f"{name}.crt")
        assert_is_leaf(leaf, purpose)
        chain = x509.load_pem_x509_certificates((out_dir / f"{name}.chain.pem").read_bytes())
        assert chain == [leaf, _cert(made / "intermediate.crt")]  # leaf + intermediate, no root
    alice = _cert(out_dir / "alice.crt")
    assert alice.subject.rfc4514_string() == "CN=alice,OU=Payments,O=Example"
    life = alice.not_valid_after_utc - alice.not_valid_before_utc
    assert life.days == 30


def test_issue_p12_without_a_password_file_generates_one_beside_it(
    made: Path, out_dir: Path, run_cli
) -> None:
    """No password given: a long random one, written 0600 as NAME.p12.pass (never printed)."""
    r = run_cli("ca", "issue", "client", "bob", "--dir", made, "--out", out_dir, "--p12")
    assert r.code == 0, r.err
    secret = out_dir / "bob.p12.pass"
    assert (out_dir / "bob.p12").exists() and secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_text().strip()) >= 32 and secret.read_text().strip() not in r.out


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--san", "exa mple.com"], "'exa mple.com'"),
        (["--validity", "0d"], "--validity"),
        (["--validity", "-5d"], "--validity"),
        (["--validity", "ninety"], "--validity"),
        (["--key-type", "rsa-1024"], "--key-type"),
    ],
)
def test_issue_bad_input(made: Path, out_dir: Path, run_cli, flags: list[str], needle: str) -> None:
    r = run_cli("ca", "issue", "server", "api", "--dir", made, "--out", out_dir, *flags)
    assert r.code == 2
    _one_error(r)
    assert needle in r.err
    assert list(out_dir.iterdir()) == []
    assert len(json.loads(run_cli("ca", "list", "--dir", made, "--json").out)) == 2


def test_issue_refuses_to_overwrite_without_force(made: Path, out_dir: Path, run_cli) -> None:
    assert run_cli("ca", "issue", "server", "api", "--dir", made, "--out", out_dir).code == 0
    key_before = (out_dir / "api.key").read_bytes()
    r = run_cli("ca", "issue", "server", "api", "--dir", made, "--out", out_dir)
    assert r.code == 2
    _one_error(r)
    assert "already exists" in r.err and "--force" in r.err
    assert (out_dir / "api.key").read_bytes() == key_before
    # the refused certificate was rolled back: the database lists only what was delivered
    servers = [
        x
        for x in json.loads(run_cli("ca", "list", "--dir", made, "--json").out)
        if x["profile"] == "server"
    ]
    assert len(servers) == 1
    assert (
        run_cli("ca", "issue", "server", "api", "--dir", made, "--out", out_dir, "--force").code
        == 0
    )
    assert (out_dir / "api.key").read_bytes() != key_before
    assert _mode(out_dir / "api.key") == 0o600


@pytest.mark.parametrize("umask", [None, 0o222], ids=["default-umask", "umask-222"])
def test_issue_creates_a_missing_out_directory_0700_and_says_so(
    made: Path, tmp_path: Path, run_cli, umask: int | None
) -> None:
    out = tmp_path / "new" / "certs"  # parents too, as `mkdir -p`
    old = os.umask(umask) if umask is not None else None
    try:  # a umask without the owner's write bit must not leave an unusable directory
        r = run_cli("ca", "issue", "client", "alice", "--dir", made, "--out", out)
    finally:
        if old is not None:
            os.umask(old)
    assert r.code == 0, r.err
    assert f"note: created directory {out} (mode 0700: it holds private keys)" in r.err
    assert _mode(out) == 0o700
    assert sorted(p.name for p in out.iterdir()) == ["alice.chain.pem", "alice.crt", "alice.key"]
    assert f"wrote    {out / 'alice.key'}" in r.out
    if umask is None:
        assert _mode(out / "alice.key") == 0o600
    again = run_cli("ca", "issue", "client", "bob", "--dir", made, "--out", out)
    assert again.code == 0 and "created directory" not in again.err  # there now: just used


def test_issue_refused_creates_no_out_directory(made: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "never"
    r = run_cli("ca", "issue", "server", "api", "--dir", made, "--out", out, "--san", "a b")
    assert r.code == 2
    _one_error(r)
    assert not out.exists()


def test_issue_out_that_is_a_file_is_an_error(made: Path, tmp_path: Path, run_cli) -> None:
    file = tmp_path / "certs"
    file.write_text("not a directory")
    for out, needle in ((file, "is not a directory"), (file / "sub", "cannot create")):
        r = run_cli("ca", "issue", "client", "alice", "--dir", made, "--out", out)
        assert r.code == 2, r.out
        _one_error(r)
        assert f"--out {out}" in r.err and needle in r.err
    assert file.read_text() == "not a directory"
    # nothing was delivered, so nothing was recorded (root and intermediate only)
    assert len(json.loads(run_cli("ca", "list", "--dir", made, "--json").out)) == 2


def test_issue_leaf_outliving_the_ca_is_capped_and_said(made: Path, out_dir: Path, run_cli) -> None:
    r = run_cli(
        "ca", "issue", "server", "api", "--dir", made, "--out", out_dir, "--validity", "20y"
    )
    assert r.code == 0
    assert "note: validity capped" in r.err
    assert (
        _cert(out_dir / "api.crt").not_valid_after_utc
        == _cert(made / "intermediate.crt").not_valid_after_utc
    )


@pytest.mark.parametrize("problem", ["missing", "file", "empty", "no-intermediate"])
def test_wrong_dir(tmp_path: Path, made: Path, out_dir: Path, run_cli, problem: str) -> None:
    target = {
        "missing": tmp_path / "nope",
        "file": tmp_path / "f",
        "empty": tmp_path / "empty",
        "no-intermediate": made,
    }[problem]
    if problem == "file":
        target.write_text("x")
    if problem == "empty":
        target.mkdir()
    if problem == "no-intermediate":
        (made / "intermediate.crt").unlink()
    r = run_cli("ca", "issue", "client", "a", "--dir", target, "--out", out_dir)
    assert r.code == 2
    _one_error(r)
    assert str(target) in r.err


def test_corrupt_and_truncated_pem(made: Path, out_dir: Path, run_cli) -> None:
    pem = (made / "intermediate.crt").read_bytes()
    (made / "intermediate.crt").write_bytes(pem[: len(pem) // 2])
    r = run_cli("ca", "issue", "client", "a", "--dir", made, "--out", out_dir)
    assert r.code == 2
    _one_error(r)
    assert "truncated" in r.err and "intermediate.crt" in r.err
    body = pem.replace(b"MII", b"XXX", 1)
    (made / "intermediate.crt").write_bytes(body)
    r = run_cli("ca", "issue", "client", "a", "--dir", made, "--out", out_dir)
    assert r.code == 2
    _one_error(r)
    assert "intermediate.crt" in r.err and "corrupt" in r.err


def test_key_that_does_not_match_its_certificate(made: Path, out_dir: Path, run_cli) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    (made / "intermediate.key").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    r = run_cli("ca", "issue", "client", "a", "--dir", made, "--out", out_dir)
    assert r.code == 2
    _one_error(r)
    assert "does not match" in r.err and "intermediate.key" in r.err


# -- ca sign --------------------------------------------------------------------------------
def _csr(tmp_path: Path, *, ca_true: bool = False, key_size: int | None = None) -> Path:
    key = (
        rsa.generate_private_key(65537, key_size)
        if key_size
        else ec.generate_private_key(ec.SECP256R1())
    )
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-7")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("device-7.example")]), critical=False
        )
    )
    if ca_true:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    csr = builder.sign(key, hashes.SHA256())
    path = tmp_path / "req.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_sign_csr_profile_decides_extensions(made: Path, tmp_path: Path, run_cli) -> None:
    csr = _csr(tmp_path, ca_true=True)
    out = tmp_path / "device.crt"
    r = run_cli("ca", "sign", csr, "--dir", made, "--profile", "client", "--out", out)
    assert r.code == 0, r.err
    assert "dropped from the CSR: basicConstraints CA:TRUE" in r.err
    assert "keyUsage" in r.err and "key_cert_sign" in r.err
    leaf = _cert(out)
    assert_is_leaf(leaf, "client")
    assert leaf.subject.rfc4514_string() == "CN=device-7"
    chain = x509.load_pem_x509_certificates((tmp_path / "device.chain.pem").read_bytes())
    assert chain[0] == leaf and len(chain) == 2


def test_sign_csr_with_bad_signature(made: Path, tmp_path: Path, run_cli) -> None:
    csr_path = _csr(tmp_path)
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # flip bits inside the signature
    csr_path.write_bytes(bytes(der))
    r = run_cli(
        "ca", "sign", csr_path, "--dir", made, "--profile", "client", "--out", tmp_path / "x.crt"
    )
    assert r.code == 2
    _one_error(r)
    assert "signature" in r.err
    assert not (tmp_path / "x.crt").exists()


def test_sign_csr_with_weak_rsa_key(made: Path, tmp_path: Path, run_cli) -> None:
    csr = _csr(tmp_path, key_size=1024)
    r = run_cli(
        "ca", "sign", csr, "--dir", made, "--profile", "server", "--out", tmp_path / "x.crt"
    )
    assert r.code == 2
    _one_error(r)
    assert "RSA 1024" in r.err


def test_sign_not_a_csr(made: Path, tmp_path: Path, run_cli) -> None:
    r = run_cli(
        "ca",
        "sign",
        made / "root.crt",
        "--dir",
        made,
        "--profile",
        "server",
        "--out",
        tmp_path / "x",
    )
    assert r.code == 2
    _one_error(r)
    assert "CERTIFICATE REQUEST" in r.err


# -- revoke, crl, list ----------------------------------------------------------------------
def test_revoke_crl_and_list(made: Path, out_dir: Path, tmp_path: Path, run_cli) -> None:
    assert run_cli("ca", "issue", "client", "alice", "--dir", made, "--out", out_dir).code == 0
    assert run_cli("ca", "issue", "client", "bob", "--dir", made, "--out", out_dir).code == 0
    alice, bob = _cert(out_dir / "alice.crt"), _cert(out_dir / "bob.crt")
    r = run_cli(
        "ca", "revoke", "--cert", out_dir / "alice.crt", "--dir", made, "--reason", "keyCompromise"
    )
    assert r.code == 0, r.err
    bob_serial = format(bob.serial_number, "x")
    colon = ":".join(bob_serial[i : i + 2] for i in range(0, len(bob_serial), 2))
    assert run_cli("ca", "revoke", colon, "--dir", made, "--reason", "superseded").code == 0
    again = run_cli("ca", "revoke", "--cert", out_dir / "alice.crt", "--dir", made)
    assert again.code == 1
    _one_error(again)
    assert "already revoked" in again.err
    crl_path = tmp_path / "crl.pem"
    assert run_cli("ca", "crl", "--dir", made, "--out", crl_path, "--next-update", "2d").code == 0
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.is_signature_valid(_cert(made / "intermediate.crt").public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(alice.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(bob.serial_number) is not None
    assert crl.next_update_utc is not None
    assert (crl.next_update_utc - crl.last_update_utc).days == 2
    first_number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert run_cli("ca", "crl", "--dir", made, "--out", crl_path).code == 0
    second = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert (
        second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        == first_number + 1
    )
    rows = json.loads(run_cli("ca", "list", "--dir", made, "--json").out)
    by_subject = {row["subject"]: row for row in rows}
    assert by_subject["CN=alice"]["status"] == "revoked"
    assert by_subject["CN=alice"]["revocation_reason"] == "keyCompromise"
    assert by_subject["CN=bob"]["revocation_reason"] == "superseded"
    text = run_cli("ca", "list", "--dir", made).out
    assert "revoked" in text and "CN=Test" not in text and "CN=Example Root CA" in text


@pytest.mark.parametrize(
    ("argv", "needle", "code"),
    [
        (["DEADBEEF"], "was not issued", 2),
        (["xyz"], "not a hex serial", 2),
        ([], "either SERIAL or --cert", 2),
        (["DEADBEEF", "--reason", "bored"], "--reason", 2),
    ],
)
def test_revoke_bad_input(made: Path, run_cli, argv: list[str], needle: str, code: int) -> None:
    r = run_cli("ca", "revoke", *argv, "--dir", made)
    assert r.code == code
    _one_error(r)
    assert needle in r.err


def test_revoke_a_certificate_from_another_ca(
    made: Path, tmp_path: Path, out_dir: Path, run_cli
) -> None:
    other = tmp_path / "other"
    assert run_cli("ca", "init", "--dir", other, "--name", "Other Root CA").code == 0
    assert run_cli("ca", "issue", "client", "eve", "--dir", other, "--out", out_dir).code == 0
    r = run_cli("ca", "revoke", "--cert", out_dir / "eve.crt", "--dir", made)
    assert r.code == 2
    _one_error(r)
    assert "not by this CA" in r.err


def test_list_expiring_within(made: Path, out_dir: Path, run_cli) -> None:
    assert (
        run_cli(
            "ca", "issue", "client", "short", "--dir", made, "--out", out_dir, "--validity", "10d"
        ).code
        == 0
    )
    assert run_cli("ca", "issue", "client", "long", "--dir", made, "--out", out_dir).code == 0
    rows = json.loads(
        run_cli("ca", "list", "--dir", made, "--expiring-within", "30d", "--json").out
    )
    assert [row["subject"] for row in rows] == ["CN=short"]
    assert (
        "no certificates expiring"
        in run_cli("ca", "list", "--dir", made, "--expiring-within", "1d").out
    )


# -- the database ---------------------------------------------------------------------------
def test_locked_database(made: Path, out_dir: Path, run_cli) -> None:
    holder = sqlite3.connect(made / "ca.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = run_cli(
            "ca", "issue", "client", "a", "--dir", made, "--out", out_dir, "--lock-timeout", "200ms"
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.code == 2
    _one_error(r)
    assert "locked" in r.err and "--lock-timeout" in r.err
    assert list(out_dir.iterdir()) == []


def test_read_only_database(made: Path, out_dir: Path, run_cli) -> None:
    os.chmod(made / "ca.db", 0o444)
    r = run_cli("ca", "issue", "client", "a", "--dir", made, "--out", out_dir)
    assert r.code == 2
    _one_error(r)
    assert "read-only" in r.err and "chmod" in r.err
    assert list(out_dir.iterdir()) == []
    assert run_cli("ca", "list", "--dir", made).code == 0  # reading still works


def test_python_dash_m_smoke(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mtlskit", "ca", "list", "--dir", tmp_path / "none"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: --dir")
    assert "hint: create one with 'mtlskit ca init" in r.stderr


def test_usage_errors_are_two_lines(run_cli) -> None:
    r = run_cli("ca", "issue", "server")
    assert r.code == 2
    _one_error(r)
    assert "hint: see 'mtlskit ca issue server --help'" in r.err


def test_crl_root_is_signed_by_the_root_and_satisfies_kyma_render(
    made: Path, tmp_path: Path, run_cli
) -> None:
    """`ca crl --root`: the root's CRL (openssl verifies it), which Envoy wants beside the
    intermediate's; with both in tls.crl, kyma render no longer warns about the root."""
    from tests.integration.peers import openssl

    root_crl, int_crl = tmp_path / "root-crl.pem", tmp_path / "crl.pem"
    r = run_cli("ca", "crl", "--dir", made, "--out", root_crl, "--root", "--next-update", "30d")
    assert r.code == 0, r.err
    assert "CN=Example Root CA" in r.out and "0 revoked" in r.out
    checked = openssl("crl", "-in", root_crl, "-CAfile", made / "root.crt", "-noout")
    assert "verify OK" in checked.stdout + checked.stderr
    assert run_cli("ca", "crl", "--dir", made, "--out", int_crl).code == 0
    certs = tmp_path / "certs"
    flags = ["--dir", made, "--san", "api.example.com", "--out", certs]
    assert run_cli("ca", "issue", "server", "api", *flags).code == 0
    bundle = tmp_path / "clients.pem"
    bundle.write_bytes((made / "root.crt").read_bytes() + (made / "intermediate.crt").read_bytes())
    config = tmp_path / "gw.toml"
    config.write_text(
        'listen = "0.0.0.0:8443"\nupstream = "http://orders.shop.svc:8080"\n[tls]\n'
        f'cert = "{certs / "api.chain.pem"}"\nkey = "{certs / "api.key"}"\n'
        f'client_ca = "{bundle}"\ncrl = ["{root_crl}", "{int_crl}"]\n'
        "[policy]\nallow_all = true\n"
    )
    out = tmp_path / "k.yaml"
    domain = ["--domain", "example.com", "--namespace", "shop"]
    r = run_cli("kyma", "render", "--config", config, *domain, "--out", out)
    assert r.code == 0, r.err
    assert "has no CRL in ca.crl" not in r.err, r.err
