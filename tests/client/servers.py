"""Real peers for the client tests: `openssl s_server` in any verify mode, and a mute port."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.integration.peers import free_port


@contextmanager
def s_server(
    *,
    cert: Path,
    key: Path,
    chain: Path | None = None,
    ca: Path | None = None,
    verify: str | None = "-Verify",
    extra: Sequence[str] = (),
) -> Iterator[int]:
    """`openssl s_server -www`; verify "-Verify" (required), "-verify" (optional) or None."""
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


@contextmanager
def mute_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
