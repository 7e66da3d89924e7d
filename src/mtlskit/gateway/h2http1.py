"""An HTTP/2 stream sent to an `http://` workload as an HTTP/1.1 request on a pooled link.

The stream owns a link of the worker's UpstreamPool (gateway.pool) while its request is
in flight, then parks it for any client. The request head is gateway.head's rewrite; the
body is relayed as it comes (chunked when the client gave no length, its trailers as
chunked trailers), and the response is parsed with httptools into HEADERS, DATA and
trailers, hop-by-hop fields dropped. Backpressure both ways stays on this stream: a
client window that is shut stops reading this stream's link, a link that is full stops
acknowledging this stream's DATA.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

import httptools
from h2.errors import ErrorCodes

from mtlskit.gateway.h2head import H2Request, response_fields
from mtlskit.gateway.h2stream import H2Stream
from mtlskit.gateway.pool import UpstreamLink, UpstreamOwner, UpstreamPool

if TYPE_CHECKING:
    from mtlskit.gateway.h2server import H2Connection

__all__ = ["H2HTTP1Stream"]

Fields = list[tuple[bytes, bytes]]
# RFC 9110 9.2.2: requests that may be sent again when a reused link turns out closed.
_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class H2HTTP1Stream(H2Stream, UpstreamOwner):
    """One HTTP/2 stream relayed as HTTP/1.1 to the workload."""

    transport: Any = None  # a link's backpressure pauses this stream only (upstream_full)

    def __init__(self, conn: H2Connection, sid: int, method: bytes, target: bytes) -> None:
        super().__init__(conn, sid, method, target)
        self.upstream_full = False
        self.link: UpstreamLink | None = None
        self.pending: list[bytes] | None = None  # bytes for a link being connected
        self.unacked = 0  # client bytes passed on but not yet taken by the link
        self.paused_link = False
        self.chunked = False
        self.head = b""
        self.replay = False
        self.parser: Any = None
        self.resp: Fields = []
        self.trailers: Fields = []  # the response's trailers
        self.in_trailers = False
        self.informational = False
        self.framed = True
        self.upstream_seen = False

    def forward(self, request: H2Request, ended: bool) -> None:
        """Send the head on a pooled link (or a new one); a gRPC call cannot go this way."""
        if self.grpc:
            self.reply("grpc_needs_h2c", "gRPC needs an HTTP/2 upstream: use h2c://host:port")
            return
        self.chunked = not ended and not request.fields.length
        self.head = request.http1_head(chunked=self.chunked)
        self.replay = ended and self.method in _IDEMPOTENT
        self._use_link()
        self._send_up(self.head, 0)

    def on_data(self, data: bytes, flow: int) -> None:
        """DATA from the client: acknowledged once the link has taken it."""
        if self.done:
            self.conn.ack(self.sid, flow)
        elif self.chunked:
            self._send_up(b"%x\r\n%s\r\n" % (len(data), data) if data else b"", flow)
        else:
            self._send_up(data, flow)

    def on_end(self) -> None:
        """The request is whole: the last chunk and the client's trailers, if chunked."""
        was_done = self.done
        super().on_end()
        if self.chunked and not was_done:
            lines = b"".join(b"%s: %s\r\n" % field for field in self.req_trailers)
            self._send_up(b"0\r\n" + lines + b"\r\n", 0)

    def cancel_upstream(self) -> None:
        self._drop_link()

    def buffered(self) -> int:
        link = self.link
        sending = link.transport.get_write_buffer_size() if link and link.transport else 0
        return self.out_bytes + sending + sum(map(len, self.pending or ()))

    def backlogged(self) -> None:
        link = self.link
        if link is not None and link.transport is not None and not self.paused_link:
            self.paused_link = True
            link.transport.pause_reading()

    def drained(self) -> None:
        link = self.link
        if self.paused_link and link is not None and link.transport is not None:
            self.paused_link = False
            link.transport.resume_reading()

    def _pool(self) -> UpstreamPool | None:
        """The pool of this stream's route's workload (the top-level one's by default)."""
        ctx = self.conn.ctx
        route = self.verdict.route if self.verdict is not None else None
        return ctx.upstreams.pool(route.upstream) if route is not None else ctx.pool

    def _use_link(self) -> None:
        pool = self._pool()
        link = pool.take(self) if pool is not None and pool.keepalive else None
        if link is None:
            self.replay = False  # a new connection: nothing stale to retry
            self.pending = []
            self.conn.loop.create_task(self._connect())
        else:
            self.link = link

    async def _connect(self) -> None:
        conn = self.conn
        route = self.verdict.route if self.verdict is not None else None
        address = route.upstream if route is not None else conn.ctx.config.upstream
        timeout = conn.ctx.config.limits.upstream_connect_timeout.total_seconds()
        loop = conn.loop
        try:
            async with asyncio.timeout(timeout):
                if address.scheme == "unix":
                    await loop.create_unix_connection(self._made, address.path)
                else:
                    await loop.create_connection(self._made, address.host, address.port)
        except (OSError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            conn.ctx.metrics.upstream_errors.labels(kind).inc()
            conn.ctx.event(
                "upstream_error",
                f"cannot reach upstream {address}: {exc or 'timed out'}",
                level="warning",
            )
            self.pending = None
            self.reply(
                "upstream_connect_timeout" if kind == "timeout" else "upstream_unreachable", ""
            )
            return
        link, pending, self.pending = self.link, self.pending or [], None
        if self.done:
            self._drop_link()
            return
        assert link is not None and link.transport is not None  # noqa: S101
        link.transport.write(b"".join(pending))
        self.resume_client()

    def _made(self) -> UpstreamLink:
        self.link = UpstreamLink(self._pool(), self)
        return self.link

    def _send_up(self, data: bytes, flow: int) -> None:
        if self.pending is not None:
            self.pending.append(data)
            self.unacked += flow
            return
        link = self.link
        if link is not None and link.transport is not None and data:
            link.transport.write(data)
        if self.upstream_full:
            self.unacked += flow
        elif flow:
            self.conn.ack(self.sid, flow)

    def resume_client(self) -> None:
        """The link takes data again (or is connected): reopen the client's window."""
        self.upstream_full = False
        unacked, self.unacked = self.unacked, 0
        if unacked:
            self.conn.ack(self.sid, unacked)

    def _drop_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.discard()

    def _release_link(self, keep: bool) -> None:
        link, self.link = self.link, None
        pool = self._pool()
        if link is None:
            return
        if keep and self.request_ended and pool is not None and link.usable:
            pool.park(link, self.conn.loop.time())
            link.orphan()  # anyone may take it now; what it sends meanwhile closes it
        else:
            link.discard()

    def upstream_taken(self) -> None:
        self.link = None

    def from_upstream(self, data: bytes) -> None:
        if self.done:
            self._drop_link()
            return
        if self.parser is None:
            self.parser = httptools.HttpResponseParser(self)
        self.upstream_seen = True
        self.replay = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._upstream_fault("protocol", f"the upstream's answer is not HTTP/1.1 ({exc})")

    def upstream_lost(self, exc: Exception | None) -> None:
        self.link = None
        if self.done:
            return
        if self.replay and not self.upstream_seen:
            self.replay = False  # a parked link the workload had closed: once more, anew
            self.pending = [self.head]
            self.conn.loop.create_task(self._connect())
        elif self.headers_sent and not self.framed:
            self.out_end = True  # a response without a length ends with the connection
            self.pump()
        else:
            self._upstream_fault("reset", "the upstream closed the connection without a response")

    def _upstream_fault(self, kind: str, message: str) -> None:
        self.conn.ctx.metrics.upstream_errors.labels(kind).inc()
        self.conn.ctx.event("upstream_error", f"{self.conn.client_ip}: {message}", level="warning")
        self._drop_link()
        if self.headers_sent:
            self.reset(ErrorCodes.INTERNAL_ERROR)
        else:
            self.reply("upstream_reset", message)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        (self.trailers if self.in_trailers else self.resp).append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        resp, self.resp = self.resp, []
        if status < 200:  # 100 Continue and other interim answers: not passed on
            self.informational = True
            return
        names = {name.lower() for name, _ in resp}
        self.framed = b"content-length" in names or b"transfer-encoding" in names
        self.framed = self.framed or status in (204, 304) or self.method == b"HEAD"
        self.in_trailers = True
        self.trailers = []
        bodiless = self.method == b"HEAD" or status in (204, 304)
        self.respond([(b":status", b"%d" % status), *response_fields(resp)], end=False)
        if bodiless:
            self.out_end = True
            self._release_link(self.parser.should_keep_alive())
            self.pump()

    def on_body(self, body: bytes) -> None:
        if not self.out_end:
            self._queue(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        if self.out_end:
            return
        if self.trailers:
            self.out_trailers = response_fields(self.trailers)
        self.out_end = True
        self._release_link(self.parser.should_keep_alive())
        self.pump()
