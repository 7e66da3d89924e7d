"""`mtlskit renew`: once (due or --force), keeping the old files on failure, and --daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.pki import CertificateAuthority
from tests.caserver.conftest import OnlineCA, start


def _leaf(chain: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain.read_bytes())[0]


def _key_matches(key: Path, leaf: x509.Certificate) -> bool:
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return private.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)


def test_one_shot_says_not_due_then_renews_with_force(online: OnlineCA, run_cli) -> None:
    chain, key = online.client("alice", ["spiffe://example.org/alice"])
    before = _leaf(chain)
    common = ("--cert", chain, "--key", key, "--ca-url", online.url, "--ca", online.root)
    result = run_cli("renew", *common)
    assert result.code == 0
    assert "not due yet: renewal due" in result.out and "--force" in result.out
    assert _leaf(chain) == before

    marker = online.work / "reloaded"
    result = run_cli("renew", *common, "--force", "--exec", f"touch {marker}")
    assert result.code == 0, result.err
    after = _leaf(chain)
    assert after.serial_number != before.serial_number
    assert after.subject == before.subject
    assert _key_matches(key, after)
    assert not _key_matches(key, before)
    assert (key.stat().st_mode & 0o777) == 0o600
    assert marker.exists()  # --exec ran after the files were in place
    assert "renewed CN=alice" in result.out
    assert "next renewal due" in result.out
    # The chain file holds the leaf and the intermediate, as a peer must send them.
    assert x509.load_pem_x509_certificates(chain.read_bytes())[1] == online.ca.intermediate


def test_a_refused_renewal_keeps_the_old_files(online: OnlineCA, run_cli) -> None:
    chain, key = online.client("bob", ["bob.example.org"])
    online.ca.revoke(_leaf(chain).serial_number, "keyCompromise")
    old_chain, old_key = chain.read_bytes(), key.read_bytes()
    marker = online.work / "ran"
    result = run_cli(
        "renew",
        "--cert",
        chain,
        "--key",
        key,
        "--ca-url",
        online.url,
        "--ca",
        online.root,
        "--force",
        "--exec",
        f"touch {marker}",
    )
    assert result.code == 1
    assert "error: the CA refused /renew (revoked)" in result.err
    assert "keyCompromise" in result.err
    assert "hint: " in result.err
    assert (chain.read_bytes(), key.read_bytes()) == (old_chain, old_key)
    assert not marker.exists()
    # Nothing listening: the same, with the transport's reason.
    result = run_cli(
        "renew",
        "--cert",
        chain,
        "--key",
        key,
        "--ca-url",
        "https://127.0.0.1:1",
        "--ca",
        online.root,
        "--force",
    )
    assert result.code == 1 and "cannot reach the CA" in result.err
    assert (chain.read_bytes(), key.read_bytes()) == (old_chain, old_key)


def test_daemon_renews_at_two_thirds_and_runs_exec(
    ca: CertificateAuthority, ca_dir: Path, tmp_path: Path
) -> None:
    """Certificates of 6 seconds: the daemon renews each after about 4."""
    online = start(ca, ca_dir, tmp_path, ttls={"client": timedelta(seconds=6)})
    with online.server:
        chain, key = online.client("d", ["d.example.org"], validity=timedelta(seconds=6))
        log = tmp_path / "exec.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mtlskit",
                "renew",
                "--daemon",
                "--cert",
                str(chain),
                "--key",
                str(key),
                "--ca-url",
                online.url,
                "--ca",
                str(online.root),
                "--exec",
                f"sh -c 'echo renewed >> {log}'",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if log.exists() and log.read_text().count("renewed") >= 2:
                    break
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
    assert log.read_text().count("renewed") >= 2, (out, err)
    assert out.count("renewed CN=d") >= 2
    assert "next renewal due" in out
    leaf = _leaf(chain)
    assert _key_matches(key, leaf)
    renewals = [r for r in ca.store.audit_records() if r.event == "renewed"]
    assert len(renewals) >= 2
