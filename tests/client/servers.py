"""Real peers for the client tests: `openssl s_server` in any verify mode, and a mute port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.peers import openssl_server

s_server = openssl_server  # the shared s_server runner, in any verify mode


@contextmanager
def mute_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
