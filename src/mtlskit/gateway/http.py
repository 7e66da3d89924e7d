"""HTTP/1.1 mode: parse request heads, strip and add identity headers, relay bodies both ways.

Each client connection has its own upstream connection, opened at its first request and
reused for every later one (keep-alive on both sides). Requests are re-framed from what
httptools parsed; responses go back as a plain byte pipe, watched by a second parser only
to log status and size, so a surprising response can never break the relay.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import httptools

from mtlskit.gateway.connection import Connection
from mtlskit.identity import IdentityHeaderError
from mtlskit.policy import Decision

__all__ = ["HTTPConnection"]

_REASONS = {
    400: b"Bad Request",
    403: b"Forbidden",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    504: b"Gateway Timeout",
}
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})


def error_response(status: int, message: str) -> bytes:
    """A short plain-text response that closes the connection."""
    body = f"{status} {_REASONS[status].decode()}: {message}\n".encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, _REASONS[status], len(body))
    ) + body


class _ResponseWatcher:
    """Follows the workload's responses to log each one; never alters the bytes.

    Without an access log nobody reads the body size: `_QuietWatcher` leaves out
    `on_body`, and httptools then makes no Python call per body chunk.
    """

    __slots__ = ("body_bytes", "conn", "parser")

    def __init__(self, conn: HTTPConnection) -> None:
        self.conn = conn
        self.parser: Any = httptools.HttpResponseParser(self)
        self.body_bytes = 0

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


class _QuietWatcher(_ResponseWatcher):
    """A watcher that does not count body bytes (no access log)."""

    __slots__ = ()
    on_body = None  # type: ignore[assignment]


class HTTPConnection(Connection):
    """One client's HTTP/1.1 connection through the gateway."""

    def on_begin(self) -> None:
        assert self.state is not None and self.identity is not None  # noqa: S101
        self.parser: Any = httptools.HttpRequestParser(self)
        watcher = _ResponseWatcher if self.gateway.config.access_log else _QuietWatcher
        self.watcher: _ResponseWatcher | None = watcher(self)
        # Fixed per connection: who the client is never changes on a connection.
        try:
            self.identity_block = self.state.identity_block(self.identity)
        except IdentityHeaderError as exc:
            self.identity_block = b""
            self.decision = Decision(False, "unforwardable_identity", exc.message)
        self.strip = self.state.stripped_headers
        # Everything after the client's own headers is fixed per connection.
        self.xff = self.client_ip.encode() + b"\r\n"
        self.tail = b"x-forwarded-proto: https\r\n"
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunked = False
        self.head_bytes = 0
        self.head_started = 0.0
        self.awaiting_since = 0.0
        self.tunnel = False
        self.denied = False
        self.in_response = False  # the workload has started an answer not yet complete
        # (method, target, start time) of requests sent upstream, oldest first.
        self.requests: deque[tuple[bytes, bytes, float]] = deque()

    # -- client -> upstream ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        if self.tunnel:
            self.send_upstream(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if not self.closing:
                self.tunnel = True
                rest = data[upgrade.args[0] :]
                if rest:
                    self.send_upstream(rest)
        except httptools.HttpParserError as exc:
            if not self.closing:
                self.reply(400, f"malformed request ({exc})")
            return
        if self.head_started:  # a head still incomplete: bound what we buffer for it
            self.head_bytes += len(data)
            if self.head_bytes > self.gateway.config.limits.max_header_bytes:
                self.reply(431, "the request head is too large")

    # No on_message_begin: one Python call less per request. A request starts at its
    # first URL bytes; its per-request state is reset once the head has been forwarded.
    def on_url(self, url: bytes) -> None:
        if not self.head_started:
            self.head_started = self.loop.time()
        self.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_started = 0.0
        self.head_bytes = 0
        if self.closing:
            return
        decision = self.decision
        assert decision is not None  # noqa: S101
        method: bytes = self.parser.get_method()
        target = b"".join(self.url)
        size = len(target) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.gateway.config.limits.max_header_bytes:
            self.reply(431, "the request head is too large")
            return
        if not decision.allowed:
            self.denied = True
            self.gateway.denied(self, decision.reason, method, target)
            self.reply(403, decision.reason)
            return
        if method == b"CONNECT":
            self.reply(405, "CONNECT is not supported: this is a reverse proxy")
            return
        out = [method, b" ", target, b" HTTP/", self.parser.get_http_version().encode(), b"\r\n"]
        strip = self.strip
        host = b""
        xff = b""
        for name, value in self.headers:
            lname = name.lower()
            if (lname.replace(b"_", b"-") if b"_" in lname else lname) in strip:
                continue
            if lname in _FORWARDED:
                if lname == b"x-forwarded-for":
                    xff = value + b", "
                continue
            if lname == b"host":
                host = value
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            out += (name, b": ", value, b"\r\n")
        out += (b"x-forwarded-for: ", xff, self.xff, self.tail)
        if host:
            out += (b"x-forwarded-host: ", host, b"\r\n")
        out += (self.identity_block, b"\r\n")
        if not self.requests:
            self.awaiting_since = self.loop.time()
        self.requests.append((method, target, self.loop.time()))
        self.url.clear()
        self.headers.clear()
        if self.upstream is None and self.pending is None:
            self.connect_upstream()
        self.send_upstream(b"".join(out))

    def on_body(self, body: bytes) -> None:
        if self.denied or self.closing:
            return
        if self.chunked:
            # httptools hands us the de-chunked body: frame it again for the upstream.
            self.send_upstream(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.send_upstream(body)

    def on_message_complete(self) -> None:
        if self.chunked:
            self.chunked = False
            if not self.denied and not self.closing:
                self.send_upstream(b"0\r\n\r\n")

    # -- upstream -> client ----------------------------------------------------------------
    def from_upstream(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.write(data)
        if self.requests:  # an answer is under way: it may not be cut by a 504 reply
            self.awaiting_since = self.loop.time()
            self.in_response = True
        if self.watcher is not None:
            self.watcher.feed(data)

    def response_done(self, status: int, size: int) -> None:
        """The watcher saw a whole response: log it against the oldest request."""
        self.in_response = False
        if status < 200:  # 1xx (100 Continue, 101 Switching) is not the final answer
            if status == 101:
                self.response_upgrade()
            return
        if not self.requests:
            return
        method, target, started = self.requests.popleft()
        now = self.loop.time()
        self.awaiting_since = now if self.requests else 0.0
        if self.gateway.config.access_log:
            self.gateway.access(self, method, target, status, size, now - started)
        else:
            self.gateway.metrics.response(status)

    def response_upgrade(self) -> None:
        """101 Switching Protocols: both directions are now an opaque tunnel."""
        self.watcher = None
        if self.requests:
            method, target, started = self.requests.popleft()
            self.gateway.access(self, method, target, 101, 0, self.loop.time() - started)
        self.requests.clear()
        self.awaiting_since = 0.0

    def response_unparsable(self) -> None:
        """Stop watching; the bytes still flow, only the access log loses detail."""
        self.watcher = None
        self.requests.clear()
        self.awaiting_since = 0.0

    def upstream_lost(self, exc: Exception | None) -> None:
        if self.requests and not self.in_response and self.transport is not None:
            # The workload hung up without answering the request in flight.
            self.gateway.metrics.upstream_errors.labels("reset").inc()
            self.reply(502, "the upstream closed the connection without a response")
            return
        self.close()

    def upstream_failed(self, kind: str) -> None:
        if kind == "timeout":
            self.reply(504, "the upstream did not accept the connection in time")
        else:
            self.reply(502, "the upstream is not reachable")

    def reply(self, status: int, message: str) -> None:
        """Answer the client ourselves and close (denials, limits, upstream trouble)."""
        if self.closing or self.transport is None:
            return
        if status != 403:
            method, target = b"-", b"-"
            if self.requests:
                method, target, _ = self.requests.popleft()
            self.gateway.access(self, method, target, status, 0, 0.0, note=message)
        self.transport.write(error_response(status, message))
        self.close()

    def check(self, now: float) -> None:
        limits = self.gateway.config.limits
        if self.head_started and now - self.head_started > limits.header_timeout.total_seconds():
            self.reply(408, "the request head did not arrive in time")
        elif (
            self.awaiting_since
            and now - self.awaiting_since > limits.upstream_timeout.total_seconds()
        ):
            self.gateway.metrics.upstream_errors.labels("timeout").inc()
            if self.in_response:
                self.close()  # half an answer was sent: all we can do is cut it off
            else:
                self.reply(504, "the upstream did not answer in time")
        elif not self.requests:
            super().check(now)
