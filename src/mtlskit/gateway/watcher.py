"""The workload's responses, followed to log them, notice a 101 and know where each ends.

The bytes are relayed to the client as they come; this parser only watches them, so a
surprising response can never break the relay (it says so and stops watching instead).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import httptools

__all__ = ["QuietWatcher", "ResponseSink", "ResponseWatcher"]


class ResponseSink(Protocol):
    """What a watcher reports to (gateway.http.HTTPConnection)."""

    requests: deque[tuple[bytes, bytes, float, Any]]  # method first: HEAD has no body

    def response_done(self, status: int, size: int) -> None:
        """A whole response (status, body bytes)."""

    def response_upgrade(self) -> None:
        """A 101 Switching Protocols."""

    def response_unparsable(self) -> None:
        """The workload's bytes are not HTTP/1.1 any more."""


class ResponseWatcher:
    """Follows the workload's responses to log each one; never alters the bytes.

    Without an access log nobody reads the body size: `QuietWatcher` leaves out
    `on_body`, and httptools then makes no Python call per body chunk.
    """

    __slots__ = ("body_bytes", "conn", "framed", "parser")

    def __init__(self, conn: ResponseSink) -> None:
        self.conn = conn
        self.parser: Any = httptools.HttpResponseParser(self)
        self.body_bytes = 0
        # The response under way has a length (or chunks) of its own, so an upstream EOF
        # before its end is an abort; without one, EOF is how it ends.
        self.framed = True

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.conn.response_upgrade()
        except httptools.HttpParserError:
            self.conn.response_unparsable()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)

    def on_headers_complete(self) -> None:
        self.framed = self.parser.should_keep_alive()
        requests = self.conn.requests
        if requests and requests[0][0] == b"HEAD":
            # A HEAD response has no body whatever its Content-Length says; httptools
            # cannot be told, so finish the message here and start a fresh parser.
            status = self.parser.get_status_code()
            self.parser = httptools.HttpResponseParser(self)
            self.conn.response_done(status, 0)

    def on_message_complete(self) -> None:
        size, self.body_bytes = self.body_bytes, 0
        self.conn.response_done(self.parser.get_status_code(), size)


class QuietWatcher(ResponseWatcher):
    """A watcher that does not count body bytes (no access log)."""

    __slots__ = ()
    on_body = None  # type: ignore[assignment]
