"""`mtlskit demo`: the three outcomes, reuse of its files, and the gateway it leaves running."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.peers import curl


def test_demo_once_shows_the_three_outcomes(tmp_path: Path, run_cli) -> None:
    first = run_cli("demo", "--once", "--port", "0", "--dir", tmp_path)
    assert first.code == 0, first.out + first.err
    out = first.out
    assert out.count("(as expected)") == 3
    assert "outcome: ok" in out and "workload saw subject CN=demo-client,OU=demo" in out
    assert "outcome: client_cert_required" in out and "alert 116" in out
    assert "outcome: client_cert_unknown_ca" in out and "fix:" in out
    assert "└─ CN=mtlskit Demo Intermediate CA" in out
    for step in range(1, 10):
        assert f"  {step}. " in out
    key = (tmp_path / "certs" / "demo-client.key").read_bytes()
    again = run_cli("demo", "--once", "--port", "0", "--dir", tmp_path)
    assert again.code == 0
    assert (tmp_path / "certs" / "demo-client.key").read_bytes() == key  # reused, not reissued


def test_demo_keeps_the_gateway_for_curl_until_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtlskit", "demo", "--port", "0", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        command = re.search(r"curl (--cacert .*?)\n\s+(--key .*?)\n", text)
        assert command, text
        args = (command.group(1).replace("\\", "") + " " + command.group(2)).split()
        r = curl(*args)
        assert r.returncode == 0, r.stderr
        assert '"subject": "CN=demo-client,OU=demo,O=mtlskit demo"' in r.stdout
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
