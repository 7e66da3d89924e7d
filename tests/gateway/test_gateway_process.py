"""The gateway as users run it: `python -m mtlskit gateway`, workers, signals, JSON logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mtlskit.echo import EchoServer
from tests.gateway.harness import PKI, curl_as


def _read_until(lines: list[str], proc: subprocess.Popen[str], done: Callable[[], bool]) -> None:
    """Read the gateway's stderr line by line into `lines` until done() holds."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while not done():
        line = proc.stderr.readline()
        if not line or time.monotonic() > deadline:
            raise AssertionError("gateway exited or went quiet:\n" + "".join(lines))
        lines.append(line)


def _wait_line(lines: list[str], proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    found: list[re.Match[str]] = []

    def done() -> bool:
        found[:] = [m for m in (re.search(pattern, line) for line in lines) if m][:1]
        return bool(found)

    _read_until(lines, proc, done)
    return found[0]


def test_two_workers_share_the_port_and_obey_signals(pki: PKI, echo: EchoServer) -> None:
    argv = [
        sys.executable,
        "-m",
        "mtlskit",
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        echo.url,
        "--cert",
        str(pki["server.chain.pem"]),
        "--key",
        str(pki["server.key"]),
        "--client-ca",
        str(pki["root.crt"]),
        "--allow-ou",
        "demo",
        "--workers",
        "2",
        "--status",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        port = int(_wait_line(lines, proc, r"2 workers on 127\.0\.0\.1:(\d+)").group(1))
        status = _wait_line(lines, proc, r"status on (http://[\d.:]+)/").group(1)
        _read_until(lines, proc, lambda: sum('"listening"' in line for line in lines) == 2)
        for i in range(6):
            r = curl_as(pki, "alice", f"https://localhost:{port}/w{i}")
            assert r.returncode == 0, r.stderr
        metrics = httpx.get(status + "/metrics").text
        assert 'mtlskit_handshakes_total{result="ok"} 6.0' in metrics  # summed over workers
        assert httpx.get(status + "/readyz").status_code == 200
        access = _wait_line(lines, proc, r'^(\{"ts".*"event":"access".*"/w5".*\})$').group(1)
        record = json.loads(access)
        assert record["decision"] == "allow(ou=demo)" and record["status"] == 200
        os.kill(proc.pid, signal.SIGHUP)
        _wait_line(lines, proc, r'"event":"reloaded"')
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_single_process_drains_on_sigterm(pki: PKI, echo: EchoServer, tmp_path: Path) -> None:
    toml = tmp_path / "gw.toml"
    toml.write_text(
        f'listen = "127.0.0.1:0"\nupstream = "{echo.url}"\nworkers = 1\n'
        f'status = "127.0.0.1:0"\n[tls]\ncert = "{pki["server.chain.pem"]}"\n'
        f'key = "{pki["server.key"]}"\nclient_ca = "{pki["root.crt"]}"\n'
        '[policy]\nallow_cn = ["alice"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtlskit", "gateway", "--config", str(toml)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        port = int(_wait_line(lines, proc, r"mTLS gateway on 127\.0\.0\.1:(\d+)").group(1))
        r = curl_as(pki, "alice", f"https://localhost:{port}/")
        assert r.returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        _wait_line(lines, proc, r"gateway stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
