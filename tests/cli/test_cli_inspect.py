"""`mtlskit cert inspect`: PEM bundles, DER, PKCS#12, as a tree and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mtlskit.pki import CertificateAuthority


@pytest.fixture
def files(ca: CertificateAuthority, out_dir: Path) -> Path:
    ca.issue_client("alice", ["spiffe://td/ns/a", "alice@example.com"]).write(
        out_dir, "alice", p12_password=b"pw"
    )
    (out_dir / "alice.der").write_bytes(
        ca.issue_server("api", ["api.example.com"]).certificate.public_bytes(
            serialization.Encoding.DER
        )
    )
    (out_dir / "pw").write_text("pw\n")
    return out_dir


def test_chain_as_a_tree(files: Path, run_cli) -> None:
    r = run_cli("cert", "inspect", files / "alice.chain.pem")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "(PEM, 2 certificate(s))" in lines[0]
    assert lines[1].startswith("CN=Test Intermediate CA  [intermediate]")
    leaf = next(i for i, line in enumerate(lines) if "CN=alice" in line and "[client]" in line)
    assert lines[leaf].startswith("└─ ")
    body = "\n".join(lines[leaf:])
    for needle in (
        "URI:spiffe://td/ns/a",
        "email:alice@example.com",
        "EC P-256",
        "CA:FALSE",
        "digitalSignature",
        "clientAuth",
        "89d",
        "left",
        "sha256",
    ):
        assert needle in body
    assert "issued by CN=Test Root CA: not in this file" in r.out


def test_json_der_and_pkcs12(files: Path, run_cli) -> None:
    r = run_cli(
        "cert",
        "inspect",
        files / "alice.der",
        files / "alice.p12",
        "--password-file",
        files / "pw",
        "--json",
    )
    assert r.code == 0, r.err
    der, p12 = json.loads(r.out)
    assert der["kind"] == "DER"
    assert der["certificates"][0]["role"] == "server"
    assert der["certificates"][0]["extended_key_usage"] == ["serverAuth"]
    assert p12["kind"] == "PKCS#12" and p12["has_private_key"]
    roles = [(c["role"], c["depth"]) for c in p12["certificates"]]
    assert roles == [("intermediate", 0), ("client", 1)]
    assert p12["certificates"][0]["path_length"] == 0
    assert len(p12["certificates"][1]["fingerprint_sha256"]) == 95


def test_pkcs12_password_problems(files: Path, run_cli) -> None:
    missing = run_cli("cert", "inspect", files / "alice.p12")
    assert missing.code == 2
    assert "password-protected" in missing.err and "--password-file" in missing.err
    (files / "bad").write_text("wrong")
    wrong = run_cli("cert", "inspect", files / "alice.p12", "--password-file", files / "bad")
    assert wrong.code == 2
    assert "wrong password" in wrong.err


def test_not_a_certificate(tmp_path: Path, run_cli) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    r = run_cli("cert", "inspect", junk)
    assert r.code == 2
    assert r.err.startswith(f"error: {junk}: not a certificate")
    assert "hint: expected a PEM certificate bundle" in r.err
    r = run_cli("cert", "inspect", tmp_path / "missing.pem")
    assert r.code == 2 and "no such file" in r.err


def test_root_is_self_signed(ca_dir: Path, ca: CertificateAuthority, run_cli) -> None:
    r = run_cli("cert", "inspect", ca_dir / "root.crt", "--json")
    (info,) = json.loads(r.out)
    assert info["certificates"][0]["role"] == "root"
    assert info["certificates"][0]["self_signed"] is True
    assert info["certificates"][0]["is_ca"] is True
