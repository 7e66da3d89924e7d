"""`mtlskit cert verify` in-process: exit codes, printed reasons, --json, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlskit.pki import CertificateAuthority


@pytest.fixture
def issued(ca: CertificateAuthority, ca_dir: Path, out_dir: Path, run_cli) -> Path:
    """alice (client) and api.example.com (server) issued through the CLI into out_dir."""
    assert run_cli("ca", "issue", "client", "alice", "--dir", ca_dir, "--out", out_dir).code == 0
    assert (
        run_cli("ca", "issue", "server", "api.example.com", "--dir", ca_dir, "--out", out_dir).code
        == 0
    )
    return out_dir


def _usage_error(result, needle: str) -> None:
    assert result.code == 2, result.err
    assert result.err.startswith("error: ") and needle in result.err
    assert "Traceback" not in result.err


def test_valid_client_chain_prints_the_path(issued: Path, ca_dir: Path, run_cli) -> None:
    r = run_cli(
        "cert",
        "verify",
        issued / "alice.chain.pem",
        "--ca",
        ca_dir / "root.crt",
        "--purpose",
        "client",
    )
    assert r.code == 0, r.out + r.err
    assert "CN=alice -> CN=Test Intermediate CA -> CN=Test Root CA" in r.out
    assert "step 7" in r.out


def test_leaf_without_chain_and_ca_dir_is_missing_intermediate(
    issued: Path, ca_dir: Path, run_cli
) -> None:
    r = run_cli("cert", "verify", issued / "alice.crt", "--ca", ca_dir, "--purpose", "client")
    assert r.code == 1
    assert r.out.startswith("invalid: missing_intermediate")
    assert "CN=alice" in r.out and "step 7: the server validates the client's certificate" in r.out
    assert "chain.pem" in r.out
    # --chain supplies what the peer should send
    ok = run_cli(
        "cert",
        "verify",
        issued / "alice.crt",
        "--chain",
        ca_dir / "intermediate.crt",
        "--ca",
        ca_dir,
        "--purpose",
        "client",
    )
    assert ok.code == 0, ok.out


def test_ca_bundle_treats_intermediates_as_hints(
    issued: Path, ca_dir: Path, tmp_path: Path, run_cli
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        (ca_dir / "root.crt").read_bytes() + (ca_dir / "intermediate.crt").read_bytes()
    )
    r = run_cli("cert", "verify", issued / "alice.crt", "--ca", bundle, "--purpose", "client")
    assert r.code == 1 and "missing_intermediate" in r.out


def test_json_for_name_mismatch(issued: Path, ca_dir: Path, run_cli) -> None:
    r = run_cli(
        "cert",
        "verify",
        issued / "api.example.com.chain.pem",
        "--ca",
        ca_dir,
        "--purpose",
        "server",
        "--host",
        "www.example.com",
        "--json",
    )
    assert r.code == 1
    data = json.loads(r.out)
    assert data["valid"] is False
    assert data["code"] == "name_mismatch"
    assert data["subject"] == "CN=api.example.com"
    assert data["path"][0] == "CN=api.example.com"
    assert "step 5" in data["explanation"] and data["fix"]


def test_json_for_valid_server(issued: Path, ca_dir: Path, run_cli) -> None:
    r = run_cli(
        "cert",
        "verify",
        issued / "api.example.com.chain.pem",
        "--ca",
        ca_dir,
        "--purpose",
        "server",
        "--host",
        "api.example.com",
        "--json",
    )
    assert r.code == 0
    data = json.loads(r.out)
    assert data["valid"] is True and data["code"] == "ok"
    assert data["path"] == ["CN=api.example.com", "CN=Test Intermediate CA", "CN=Test Root CA"]


def test_expired_at_a_given_time(issued: Path, ca_dir: Path, run_cli) -> None:
    r = run_cli(
        "cert",
        "verify",
        issued / "alice.chain.pem",
        "--ca",
        ca_dir,
        "--purpose",
        "client",
        "--at",
        "2099-01-01T00:00:00Z",
    )
    assert r.code == 1 and r.out.startswith("invalid: expired")


def test_revoked_with_a_crl_file(issued: Path, ca_dir: Path, tmp_path: Path, run_cli) -> None:
    cert = issued / "alice.crt"
    assert (
        run_cli("ca", "revoke", "--cert", cert, "--dir", ca_dir, "--reason", "superseded").code == 0
    )
    crl = tmp_path / "crl.pem"
    assert run_cli("ca", "crl", "--dir", ca_dir, "--out", crl).code == 0
    r = run_cli(
        "cert",
        "verify",
        issued / "alice.chain.pem",
        "--ca",
        ca_dir,
        "--purpose",
        "client",
        "--crl",
        crl,
        "--json",
    )
    assert r.code == 1
    data = json.loads(r.out)
    assert data["code"] == "revoked" and data["subject"] == "CN=alice"
    assert data["details"]["revocation_reason"] == "superseded"
    api = run_cli(
        "cert",
        "verify",
        issued / "api.example.com.chain.pem",
        "--ca",
        ca_dir,
        "--purpose",
        "server",
        "--crl",
        crl,
    )
    assert api.code == 0, api.out


def test_max_depth(issued: Path, ca_dir: Path, run_cli) -> None:
    r = run_cli(
        "cert",
        "verify",
        issued / "alice.chain.pem",
        "--ca",
        ca_dir,
        "--purpose",
        "client",
        "--max-depth",
        "0",
    )
    assert r.code == 1 and "path_too_long" in r.out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--at", "next tuesday"], "--at"),
        (["--purpose", "both"], "--purpose"),
        (["--host", "x.example.com"], "--host"),
        (["--max-depth", "-1"], "--max-depth"),
        (["--crl", "missing.pem"], "missing.pem"),
    ],
)
def test_usage_errors_exit_2(issued: Path, ca_dir: Path, run_cli, extra, needle) -> None:
    args = ["cert", "verify", issued / "alice.chain.pem", "--ca", ca_dir]
    if "--purpose" not in extra:
        args += ["--purpose", "client"]
    _usage_error(run_cli(*args, *extra), needle)


def test_missing_files_and_rootless_bundle(issued: Path, ca_dir: Path, run_cli) -> None:
    _usage_error(
        run_cli("cert", "verify", issued / "nope.pem", "--ca", ca_dir, "--purpose", "client"),
        "nope.pem",
    )
    _usage_error(
        run_cli(
            "cert",
            "verify",
            issued / "alice.crt",
            "--ca",
            ca_dir / "intermediate.crt",
            "--purpose",
            "client",
        ),
        "self-signed",
    )


@pytest.mark.parametrize(
    ("kind", "code", "subject", "fix"),
    [
        ("sha1-leaf", "signature_too_weak", "CN=alice", "signed with SHA-256"),
        ("rsa1024-leaf", "key_too_weak", "CN=alice", "ec-p256"),
        ("no-digitalSignature", "wrong_purpose", "CN=alice", "issue a client certificate"),
        ("serverAuth-only-ca", "wrong_purpose", "CN=Sub", "reissue the CA CN=Sub"),
    ],
)
def test_openssl_made_chains_cryptography_accepts_or_misnames(
    tmp_path: Path, run_cli, kind: str, code: str, subject: str, fix: str
) -> None:
    from tests.opensslpki import CA_EXT, CLIENT_EXT, KeySpec, OpenSSLPKI

    pki = OpenSSLPKI(tmp_path / "pki")
    root = pki.root("Root")
    sub_ext = CA_EXT + "authorityKeyIdentifier=keyid\n"
    if kind == "serverAuth-only-ca":
        sub_ext += "extendedKeyUsage=serverAuth\n"
    sub = pki.issue("Sub", root, ext=sub_ext)
    ext = CLIENT_EXT
    if kind == "no-digitalSignature":
        ext = CLIENT_EXT.replace("digitalSignature", "keyEncipherment")
    specs: dict[str, KeySpec] = {"sha1-leaf": {"md": "sha1"}, "rsa1024-leaf": {"key": "rsa:1024"}}
    extra = specs.get(kind, KeySpec())
    leaf = pki.issue("alice", sub, ext=ext, **extra)
    chain = pki.bundle("alice-chain", leaf, sub)
    r = run_cli("cert", "verify", chain, "--ca", root.cert, "--purpose", "client", "--json")
    assert r.code == 1, r.out + r.err
    data = json.loads(r.out)
    assert data["code"] == code and data["subject"] == subject
    assert subject in data["explanation"] and fix in data["fix"]
    assert "does not match" not in data["explanation"]
