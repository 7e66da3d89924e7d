"""`mtlskit ca serve` as a process: it says where it listens, serves, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from mtlskit.pki import CertificateAuthority
from tests.caserver.conftest import curl


def test_ca_serve_process_serves_and_stops(
    ca: CertificateAuthority, ca_dir: Path, tmp_path: Path
) -> None:
    ca.issue_server("ca.test", ["127.0.0.1"]).write(tmp_path, "srv")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mtlskit",
            "ca",
            "serve",
            "--dir",
            str(ca_dir),
            "--listen",
            "127.0.0.1:0",
            "--cert",
            str(tmp_path / "srv.chain.pem"),
            "--key",
            str(tmp_path / "srv.key"),
            "--client-ttl",
            "1h",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"serving the CA in {ca_dir} on https://127.0.0.1:"), first
        url = first.split(" on ")[1].strip()
        limits = proc.stdout.readline()
        assert "client 1h" in limits and "never past the intermediate's expiry" in limits
        roots = curl(f"{url}/roots", "--cacert", ca_dir / "root.crt")
        assert roots.status == 200 and roots.body == ca.root_pem()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert " GET /roots 200 " in err  # one log line per request


def test_ca_serve_refuses_a_key_that_does_not_match(
    ca: CertificateAuthority, ca_dir: Path, tmp_path: Path, run_cli
) -> None:
    ca.issue_server("a.test", ["127.0.0.1"]).write(tmp_path, "a")
    ca.issue_server("b.test", ["127.0.0.1"]).write(tmp_path, "b")
    result = run_cli(
        "ca",
        "serve",
        "--dir",
        ca_dir,
        "--listen",
        "127.0.0.1:0",
        "--cert",
        tmp_path / "a.chain.pem",
        "--key",
        tmp_path / "b.key",
    )
    assert result.code == 2
    assert "does not match" in result.err and "hint: " in result.err
