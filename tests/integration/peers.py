"""Real TLS peers for tests: `openssl s_server` on 127.0.0.1, and curl/openssl runners."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def openssl_server(
    *,
    cert: Path,
    key: Path,
    chain: Path | None = None,
    ca: Path | None = None,
    verify: str | None = "-Verify",
    extra: Sequence[str] = (),
) -> Iterator[int]:
    """`openssl s_server -www` on 127.0.0.1; yield its port.

    verify: "-Verify" (client certificate required, the default), "-verify" (optional)
    or None (not asked for).
    """
    port = free_port()
    argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-www", "-naccept", "20"]
    argv += ["-cert", str(cert), "-key", str(key)]
    if verify is not None:
        argv += [verify, "2", "-verify_return_error"]
    if ca is not None:
        argv += ["-CAfile", str(ca)]
    if chain is not None:
        argv += ["-cert_chain", str(chain)]
    argv += list(extra)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"s_server exited: {out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def curl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run curl with a 10 s limit; never raises on a non-zero exit."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def openssl(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run openssl; never raises on a non-zero exit."""
    return subprocess.run(
        ["openssl", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=30,
    )
