"""The gateway as users run it: `python -m mtlskit gateway`, workers, signals, JSON logs.

Every gateway these tests start leads its own process group (start_new_session), and
`GatewayProcess` is a context manager whose exit stops the whole group (supervisor,
workers, multiprocessing's resource tracker: SIGTERM, then SIGKILL after a grace period)
even when the test inside it fails, so no gateway outlives pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx
import pytest

from mtlskit.demo.echo import EchoServer
from tests.gateway.harness import PKI, curl_as

T = TypeVar("T")
LISTENING = r"mTLS gateway on 127\.0\.0\.1:(\d+)"


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat these tests read."""

    state: str  # R, S, D, T, ...; Z once it has exited and waits to be reaped
    ppid: int
    pgrp: int
    starttime: int  # with the pid, tells a process from a later one that reuses the pid


def proc_stat(pid: int) -> ProcStat | None:
    """A process's state from /proc, or None once it has been reaped."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the name inside (...) may hold spaces
    return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[19]))


def all_processes() -> dict[int, ProcStat]:
    """Every process this pid namespace shows."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := proc_stat(int(entry))) is not None:
            found[int(entry)] = st
    return found


def still_running(pid: int, was: ProcStat) -> bool:
    """True while the process `was` describes has not exited.

    A zombie has exited: its sockets are closed and only its exit status is left. The
    workers of a killed supervisor are reparented to PID 1, and PID 1 of some sandboxes
    (not an init) never reaps them, so "gone" must accept Z as well as no /proc entry.
    """
    now = proc_stat(pid)
    return now is not None and now.starttime == was.starttime and now.state not in ("Z", "X")


class GatewayProcess:
    """`python -m mtlskit gateway ARGS` in its own process group; its stderr read by a thread.

    Use it as a context manager: leaving the block stops every process of the group.

    Args:
        args: the gateway's command line after `mtlskit gateway`.
        grace: seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(self, *args: str, grace: float = 5.0) -> None:
        self.grace = grace
        # A supervisor killed by SIGKILL cannot remove its metrics directory (mkdtemp):
        # give it a TMPDIR of its own, removed by stop().
        self.tmpdir = Path(tempfile.mkdtemp(prefix="mtlskit-gateway-test-"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mtlskit", "gateway", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(self.tmpdir)},
            start_new_session=True,  # its own group, so stop() reaches the workers too
        )
        self.pgid = self.proc.pid
        self._lines: list[str] = []
        self._eof = False
        self._cond = threading.Condition()
        # A thread, so that a gateway which goes quiet cannot block a test past its deadline.
        self._reader = threading.Thread(target=self._read, name="gateway-stderr", daemon=True)
        self._reader.start()

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def lines(self) -> list[str]:
        """The stderr lines read so far."""
        with self._cond:
            return list(self._lines)

    def wait_for(self, done: Callable[[list[str]], T | None], timeout: float = 20) -> T:
        """Wait until done(lines) returns something truthy and return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := done(self._lines)):
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "exited" if self._eof else "went quiet"
                    raise AssertionError(f"gateway {why}:\n" + "".join(self._lines))
                self._cond.wait(remaining)
            return result

    def wait_line(self, pattern: str) -> re.Match[str]:
        """The first line matching `pattern`, once it is there."""

        def done(lines: list[str]) -> re.Match[str] | None:
            return next((m for m in map(re.compile(pattern).search, lines) if m), None)

        return self.wait_for(done)

    def wait_listening(self, count: int = 1) -> int:
        """Wait until `count` gateways (workers) listen; return their port."""

        def done(lines: list[str]) -> list[int] | None:
            ports = [int(m.group(1)) for m in map(re.compile(LISTENING).search, lines) if m]
            return ports if len(ports) >= count else None

        ports = self.wait_for(done)
        assert len(set(ports)) == 1, ports  # workers share one port
        return ports[0]

    def exit_code(self, timeout: float = 30) -> int:
        """Wait for the gateway to exit; its code."""
        return self.proc.wait(timeout)

    def children(self) -> dict[int, ProcStat]:
        """The gateway's child processes (workers, resource tracker) as they are now."""
        return {pid: st for pid, st in all_processes().items() if st.ppid == self.proc.pid}

    def group(self) -> dict[int, ProcStat]:
        """Every process of the gateway's group that has not exited."""
        return {
            pid: st
            for pid, st in all_processes().items()
            if st.pgrp == self.pgid and st.state not in ("Z", "X")
        }

    def stop(self) -> None:
        """SIGTERM the whole group, SIGKILL what is left after `grace`, reap the leader."""
        # Signal the group only while a member runs: then the pgid cannot have been reused.
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 10.0)):
            if not self.group():
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, sig)
            deadline = time.monotonic() + wait  # a killed process takes a moment to exit
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader as soon as it exits
                if not self.group():
                    break
                time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def gateway_args(pki: PKI, echo: EchoServer, *extra: str, key: Path | None = None) -> list[str]:
    """A gateway on 127.0.0.1:0 for the test PKI in front of `echo`; `extra` flags win."""
    return [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        echo.url,
        "--cert",
        str(pki["server.chain.pem"]),
        "--key",
        str(key or pki["server.key"]),
        "--client-ca",
        str(pki["root.crt"]),
        "--allow-ou",
        "demo",
        *extra,
    ]


def test_two_workers_share_the_port_and_obey_signals(pki: PKI, echo: EchoServer) -> None:
    args = gateway_args(pki, echo, "--workers", "2", "--status", "127.0.0.1:0")
    with GatewayProcess(*args, "--log-format", "json") as gw:
        port = int(gw.wait_line(r"2 workers on 127\.0\.0\.1:(\d+)").group(1))
        status = gw.wait_line(r"status on (http://[\d.:]+)/").group(1)
        assert gw.wait_listening(2) == port
        for i in range(6):
            r = curl_as(pki, "alice", f"https://localhost:{port}/w{i}")
            assert r.returncode == 0, r.stderr
        metrics = httpx.get(status + "/metrics").text
        assert 'mtlskit_handshakes_total{result="ok"} 6.0' in metrics  # summed over workers
        assert httpx.get(status + "/readyz").status_code == 200
        access = gw.wait_line(r'^(\{"ts".*"event":"access".*"/w5".*\})$').group(1)
        record = json.loads(access)
        assert record["decision"] == "allow(ou=demo)" and record["status"] == 200
        os.kill(gw.proc.pid, signal.SIGHUP)
        gw.wait_line(r'"event":"reloaded"')
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.exit_code() == 0


def test_single_process_drains_on_sigterm(pki: PKI, echo: EchoServer, tmp_path: Path) -> None:
    toml = tmp_path / "gw.toml"
    toml.write_text(
        f'listen = "127.0.0.1:0"\nupstream = "{echo.url}"\nworkers = 1\n'
        f'status = "127.0.0.1:0"\n[tls]\ncert = "{pki["server.chain.pem"]}"\n'
        f'key = "{pki["server.key"]}"\nclient_ca = "{pki["root.crt"]}"\n'
        '[policy]\nallow_cn = ["alice"]\n'
    )
    with GatewayProcess("--config", str(toml)) as gw:
        port = gw.wait_listening()
        r = curl_as(pki, "alice", f"https://localhost:{port}/")
        assert r.returncode == 0
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.exit_code() == 0
        gw.wait_line(r"gateway stopped")


def test_workers_exit_when_the_supervisor_is_killed(pki: PKI, echo: EchoServer) -> None:
    with GatewayProcess(*gateway_args(pki, echo, "--workers", "2")) as first:
        port = first.wait_listening(2)
        children = first.children()
        workers = [
            pid for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert len(workers) == 2, children
        killed = time.monotonic()
        os.kill(first.proc.pid, signal.SIGKILL)
        assert first.exit_code() == -signal.SIGKILL
        # The deadline, not a performance figure: poll until it passes.
        while (running := [p for p, st in children.items() if still_running(p, st)]) and (
            time.monotonic() < killed + 2
        ):
            time.sleep(0.02)
        assert not running, {pid: proc_stat(pid) for pid in running}
        first.wait_line(r"the supervisor is gone; stopping")
    with GatewayProcess(*gateway_args(pki, echo, "--listen", f"127.0.0.1:{port}")) as second:
        assert second.wait_listening() == port
        r = curl_as(pki, "alice", f"https://localhost:{port}/again")
        assert r.returncode == 0, r.stderr


def test_a_failing_test_stops_the_whole_process_group(pki: PKI, echo: EchoServer) -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        with GatewayProcess(*gateway_args(pki, echo, "--workers", "2"), grace=0.5) as gw:
            gw.wait_listening(2)
            group = gw.group()
            assert len(group) >= 3, group  # supervisor, 2 workers (and a resource tracker)
            # Stopped processes leave SIGTERM pending: only the SIGKILL after the grace
            # period can end them, and only if it reaches the workers as well.
            os.killpg(gw.pgid, signal.SIGSTOP)
            raise RuntimeError("the test failed")
    assert not [pid for pid, st in group.items() if still_running(pid, st)]
    assert gw.proc.returncode == -signal.SIGKILL
