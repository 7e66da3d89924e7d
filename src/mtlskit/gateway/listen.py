"""Listening sockets: bound with a clear error for a busy port, with the backlog asked for."""

from __future__ import annotations

import socket

from mtlskit.errors import ConfigError

__all__ = ["bind_listener"]


def bind_listener(
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    backlog: int = 1024,
    flag: str = "--listen",
) -> socket.socket:
    """Bind and listen, turning "address in use" into a clear config error.

    Args:
        host: the address to bind.
        port: the port (0: any free one).
        reuse_port: share the port with other workers (SO_REUSEPORT).
        backlog: the kernel's accept queue; the kernel caps it at net.core.somaxconn.
        flag: the option that names this address, for the error (--listen, --status).

    Raises:
        ConfigError: the address cannot be bound (in use, not local, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"{flag} {host}:{port}: {exc.strerror}",
            f"another process uses that port; stop it or choose another {flag}",
        ) from exc
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
