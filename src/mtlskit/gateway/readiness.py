"""Socket readiness for one file descriptor: add_reader/add_writer on the loop, at most once."""

from __future__ import annotations

import asyncio

__all__ = ["Readiness"]


class Readiness:
    """Watches one descriptor for readability and writability, each registered once.

    Subclasses (gateway.tls.TLSStream) implement `_on_readable` and `_on_writable`.

    Args:
        loop: the running loop.
        fd: the descriptor watched.
    """

    __slots__ = ("_reading", "_writing", "fd", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self._reading = False
        self._writing = False

    def _on_readable(self) -> None:
        raise NotImplementedError

    def _on_writable(self) -> None:
        raise NotImplementedError

    def _want_read(self) -> None:
        if not self._reading:
            self._reading = True
            self.loop.add_reader(self.fd, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.fd)

    def _want_write(self) -> None:
        if not self._writing:
            self._writing = True
            self.loop.add_writer(self.fd, self._on_writable)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self.fd)
