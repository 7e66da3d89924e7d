"""A real PostgreSQL server for the tests: initdb into a temporary directory, then postgres.

PostgreSQL refuses to run as root, and CI runs as root: the server then runs as the
unprivileged user `nobody` (subprocess's user=/group=, no sudo or runuser needed), in a
directory it owns. It listens on 127.0.0.1 on a free port and on a unix socket in that
directory, with password (SCRAM) authentication over TCP, and is stopped in a finalizer.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "mtlskit"
INSTALL_HINT = "install Debian's postgresql package (scripts/bootstrap.sh test does)"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its port, superuser and password."""

    port: int
    user: str
    password: str
    directory: Path

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A postgresql:// URL for one database of this server."""
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (Debian keeps them off PATH)."""
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> tuple[int, int] | None:
    """uid and gid to run the server as: `nobody` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


class StartError(RuntimeError):
    """The server could not be set up; the message says why (the tests skip with it)."""


def _run(args: list[str], directory: Path, log: Path) -> None:
    ids = _server_user()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "LANG": "C"}
    with log.open("ab") as out:
        done = subprocess.run(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
            timeout=120,
            check=False,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            extra_groups=[] if ids else None,
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise StartError(f"{Path(args[0]).name} exited {done.returncode}:\n{tail}")


def _stop(bin_dir: Path, data: Path, log: Path) -> None:
    try:
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            data.parent,
            log,
        )
    except (StartError, subprocess.TimeoutExpired, OSError):
        pid_file = data / "postmaster.pid"
        if pid_file.exists():  # pg_ctl failed: end the postmaster we started, by its pid
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server; stop it and remove its files on exit.

    Raises:
        StartError: no binaries, or initdb/pg_ctl failed (the text says why).
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise StartError(f"PostgreSQL server binaries not found: {INSTALL_HINT}")
    directory = Path(tempfile.mkdtemp(prefix="mtlskit-pg-"))
    data, log = directory / "data", directory / "server.log"
    password = secrets.token_urlsafe(16)
    (directory / "pw").write_text(password + "\n")
    log.touch()
    ids = _server_user()
    if ids is not None:  # the server's files belong to the user it runs as
        for path in (directory, directory / "pw", log):
            os.chown(path, *ids)
    started = False
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={directory / 'pw'}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            directory,
            log,
        )
        for _ in range(3):  # another process may take the free port before postgres does
            port = _free_port()
            options = (
                f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c max_connections=50"
            )
            try:
                _run(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-o",
                        options,
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ],
                    directory,
                    log,
                )
            except StartError:
                continue
            started = True
            break
        if not started:
            raise StartError(f"postgres did not start:\n{log.read_text(errors='replace')[-2000:]}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield PostgresServer(port, USER, password, directory)
    finally:
        if started or (data / "postmaster.pid").exists():
            _stop(bin_dir, data, log)
        shutil.rmtree(directory, ignore_errors=True)
