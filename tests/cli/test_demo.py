"""`mtlskit demo`: the three outcomes, reuse of its files, the gateway it leaves running; and
its echo workload run on its own (`python -m mtlskit.demo.echo`, `mtlskit echo`)."""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mtlskit.cli import echo as cli_echo
from mtlskit.demo import echo
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


def _start_echo(*flags: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtlskit.demo.echo", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


def _stop_echo(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (0, "stopped\n")
    assert err == ""  # in particular no RuntimeWarning about loading the module twice


def test_echo_workload_runs_on_its_own_until_ctrl_c() -> None:
    proc, line = _start_echo()
    try:
        found = re.fullmatch(
            r"echo workload on (http://127\.0\.0\.1:\d+) \(Ctrl-C stops it\)\n", line
        )
        assert found, line
        seen = httpx.post(f"{found.group(1)}/hello?x=1", content=b"ping", timeout=10).json()
        assert (seen["method"], seen["path"], seen["body_bytes"]) == ("POST", "/hello?x=1", 4)
        assert seen["identity"] is None  # no gateway in front: nobody vouched for a client
        _stop_echo(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_echo_workload_over_raw_tcp() -> None:
    proc, line = _start_echo("--tcp")
    try:
        found = re.fullmatch(r"TCP echo workload on tcp://127\.0\.0\.1:(\d+) \(Ctrl-C.*\n", line)
        assert found, line
        with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=10) as sock:
            sock.sendall(b"ping")
            assert sock.recv(100) == b"echo:ping"
        _stop_echo(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_echo_on_a_port_in_use_is_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = echo.main(["--port", str(port)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith(f"error: cannot listen on 127.0.0.1:{port} for the echo workload")
    assert err[1] == "hint: pass another --port (0: any free port) or a local --host"


def test_mtlskit_echo_takes_the_same_flags() -> None:
    parser = argparse.ArgumentParser()
    cli_echo.register(parser.add_subparsers())
    args = parser.parse_args(["echo", "--port", "0", "--tcp"])
    assert args.handler is cli_echo.cmd_echo
    assert (args.host, args.port, args.tcp) == ("127.0.0.1", 0, True)
