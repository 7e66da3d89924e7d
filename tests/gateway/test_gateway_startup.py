"""What `mtlskit gateway` checks and sets up before it serves: ports, key permissions, backlog."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from mtlskit.demo.echo import EchoServer
from tests.gateway.harness import PKI, curl_as
from tests.gateway.test_gateway_process import GatewayProcess, gateway_args

WORKERS = pytest.mark.parametrize("workers", [1, 2], ids=["single", "supervisor"])


@WORKERS
def test_a_busy_status_port_is_one_error_and_starts_nothing(
    pki: PKI, echo: EchoServer, workers: int
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = gateway_args(pki, echo, "--workers", str(workers), "--status", f"127.0.0.1:{port}")
        with GatewayProcess(*args) as gw:
            assert gw.exit_code() == 2
            gw.wait_for(lambda lines: any(line.startswith("hint:") for line in lines))
    assert [line for line in gw.lines if line.startswith(("error:", "hint:"))] == [
        f"error: --status 127.0.0.1:{port}: Address already in use\n",
        "hint: another process uses that port; stop it or choose another --status\n",
    ]
    # Nothing listened and no worker was spawned (the supervisor logs "N workers on" after
    # spawning them, each worker "mTLS gateway on" when it listens).
    assert not [line for line in gw.lines if re.search(r"workers on|mTLS gateway on", line)]


@WORKERS
def test_a_key_readable_by_others_starts_with_one_warning(
    pki: PKI, echo: EchoServer, tmp_path: Path, workers: int
) -> None:
    key = tmp_path / "server.key"
    key.write_bytes(pki["server.key"].read_bytes())
    key.chmod(0o640)
    with GatewayProcess(*gateway_args(pki, echo, "--workers", str(workers), key=key)) as gw:
        port = gw.wait_listening(workers)
        assert curl_as(pki, "alice", f"https://localhost:{port}/").returncode == 0
    warnings = [line.rstrip("\n") for line in gw.lines if "key_permissions" in line]
    assert len(warnings) == 1, warnings  # once: the supervisor warns, its workers do not
    assert warnings[0].endswith(
        f"WARNING key_permissions: private key {key} is readable by group or others "
        f'(mode 0640) fix="chmod 600 {key}"'
    )


@pytest.mark.parametrize(
    ("extra", "backlog"),
    [
        (["--workers", "1"], 1024),
        (["--workers", "2", "--backlog", "300"], 300),
        (["--workers", "1", "--no-uvloop", "--backlog", "300"], 300),
    ],
    ids=["default", "workers-300", "asyncio-loop-300"],
)
def test_the_listen_backlog_is_1024_or_limits_backlog(
    pki: PKI, echo: EchoServer, extra: list[str], backlog: int
) -> None:
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("reading a socket's listen backlog needs ss (Debian package iproute2)")
    # listen(2) caps the backlog at net.core.somaxconn without an error.
    expected = min(backlog, int(Path("/proc/sys/net/core/somaxconn").read_text()))
    workers = int(extra[1])
    with GatewayProcess(*gateway_args(pki, echo, *extra)) as gw:
        port = gw.wait_listening(workers)
        listing = subprocess.run(
            [ss, "-H", "-l", "-t", "-n", f"sport = :{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    # For a LISTEN socket, ss's Send-Q column is the backlog (sk_max_ack_backlog).
    assert [int(row.split()[2]) for row in listing.splitlines()] == [expected] * workers, listing
