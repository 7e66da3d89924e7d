"""The status listener: /healthz, /readyz and Prometheus /metrics over plain HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from mtlskit.gateway.listen import bind_listener

__all__ = ["StatusServer"]


class StatusServer:
    """A tiny HTTP/1.1 server for probes and scrapers; one request per connection.

    Args:
        ready: returns True when the gateway accepts traffic.
        metrics: returns the Prometheus text exposition.
    """

    def __init__(self, ready: Callable[[], bool], metrics: Callable[[], bytes]) -> None:
        self._ready = ready
        self._metrics = metrics
        self.server: asyncio.Server | None = None
        self._sock: socket.socket | None = None

    def bind(self, host: str, port: int) -> None:
        """Take the port now, so that a busy one fails before anything else starts.

        Raises:
            ConfigError: the port is in use (the message names --status).
        """
        self._sock = bind_listener(host, port, flag="--status")

    async def start(self, host: str | None = None, port: int = 0) -> tuple[str, int]:
        """Serve on the socket bind() took (or bind host:port now); return the address."""
        if self._sock is None:
            if host is None:
                raise TypeError("StatusServer.start() needs host and port unless bind() ran")
            self.bind(host, port)
        assert self._sock is not None  # noqa: S101 - bind() set it or raised
        self.server = await asyncio.start_server(self._serve, sock=self._sock)
        bound = self.server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        """Stop listening (also when bind() ran but start() never did)."""
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        elif self._sock is not None:
            self._sock.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.split()
            path = parts[1].decode("latin-1") if len(parts) >= 2 else "/"
            status, ctype, body = self._route(path.split("?", 1)[0])
            writer.write(
                b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, ctype, len(body)) + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _route(self, path: str) -> tuple[bytes, bytes, bytes]:
        text = b"text/plain; charset=utf-8"
        if path == "/healthz":
            return b"200 OK", text, b"ok\n"
        if path == "/readyz":
            if self._ready():
                return b"200 OK", text, b"ready\n"
            return b"503 Service Unavailable", text, b"not ready\n"
        if path == "/metrics":
            return b"200 OK", b"text/plain; version=0.0.4; charset=utf-8", self._metrics()
        return b"404 Not Found", text, b"try /healthz, /readyz or /metrics\n"
