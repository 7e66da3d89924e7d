"""HTTP/2 to clients that selected h2 by ALPN: h2's server state machine over the TLS stream.

The connection is admitted once, as an HTTP/1.1 one is (identity, policy decision and
identity header block fixed for its life); each stream then goes through the same head
rewrite (gateway.head) and is relayed by gateway.h2stream. The defences are h2's own
(header list size, CONTINUATION backlog, flow-control windows: each ProtocolError is
answered with the GOAWAY code h2 chose), our stream limit (RST_STREAM REFUSED_STREAM),
gateway.h2guard's flood and rapid-reset accounting (GOAWAY ENHANCE_YOUR_CALM), and the
header, idle and upstream timeouts checked by the gateway's sweeper.
"""

from __future__ import annotations

from typing import Final

from h2.config import H2Configuration
from h2.connection import H2Connection as H2StateMachine
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes

from mtlskit.gateway.access import H2
from mtlskit.gateway.connection import Connection
from mtlskit.gateway.h2guard import H2Guard, H2Limits
from mtlskit.gateway.h2head import identity_fields, rewrite_h2_request
from mtlskit.gateway.h2http1 import H2HTTP1Stream
from mtlskit.gateway.h2stream import Fields, H2Stream
from mtlskit.gateway.head import HeadContext, Refusal
from mtlskit.gateway.routed import field, header_block, route_request
from mtlskit.gateway.routing import Route

__all__ = ["H2Connection"]

# Each stream may have this much request body in flight (our SETTINGS_INITIAL_WINDOW_SIZE);
# the connection window is opened to a few streams' worth.
STREAM_WINDOW: Final = 256 * 1024
CONNECTION_WINDOW: Final = 4 * STREAM_WINDOW
_GUARD_REASONS: Final = {
    "rapid": "rapid_reset",
    "SETTINGS": "settings_flood",
    "PING": "ping_flood",
    "empty": "empty_frames",
}


class H2Connection(Connection):
    """One client's HTTP/2 connection through the gateway."""

    def on_begin(self) -> None:
        config = self.ctx.config
        limits = config.limits
        self.h2 = H2StateMachine(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=True,
                normalize_inbound_headers=True,
                # What goes out is built here from a parsed answer (names lowercased,
                # hop-by-hop fields dropped; httptools and the h2c link refuse CR, LF
                # and NUL): h2's outbound check would repeat that at ~13% of the
                # per-request CPU (measured with bench/h2bench.py).
                validate_outbound_headers=False,
            )
        )
        self.max_streams = limits.max_concurrent_streams
        self.h2.initiate_connection()
        # Our limits go in a second SETTINGS frame: h2 applies a local setting (and sizes
        # its HPACK decoder's header list limit) only once the client has acknowledged it.
        self.h2.update_settings(
            {
                SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            }
        )
        # h2 makes a stream over the advertised limit a connection error (GOAWAY); RFC 9113
        # 5.1.2 lets it be a stream error, which spares the other streams. So h2's own
        # bound becomes twice ours once the client acknowledges our SETTINGS (a pending
        # local value), and the streams between are refused here, one by one.
        self.h2.local_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 2 * self.max_streams
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.head_ctx = HeadContext(
            self.state.stripped_headers, self.client_ip.encode(), self.header_block
        )
        self.identity_h2 = identity_fields(self.header_block)
        self.h2c = self.ctx.h2c
        self.site = self.state.site
        self.route_heads: dict[int, tuple[HeadContext, Fields] | None] = {}
        self.streams: dict[int, H2Stream] = {}
        self.guard = H2Guard(H2Limits(), self.loop.time)
        self.client_full = False
        self.begun = self.loop.time()
        self.served = False  # a request's headers have arrived
        self.partial_since = 0.0  # bytes arrived that made no frame yet (a split header block)
        self.flush_due = False  # a flush_soon() is scheduled
        self.flush()

    @property
    def idle(self) -> bool:
        return not self.streams

    # -- the client's bytes ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        now = self.last_activity = self.loop.time()
        if self.closing:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:  # h2 has queued its GOAWAY with the right code
            code = exc.error_code
            name = code.name if isinstance(code, ErrorCodes) else str(code)
            self.goaway(None, name.lower(), str(exc))
            return
        self.partial_since = 0.0 if events else self.partial_since or now
        opened: set[int] = set()
        for event in events:
            reason = self.on_event(event, opened)
            if reason is not None:
                label = next((v for k, v in _GUARD_REASONS.items() if k in reason), "guard")
                self.goaway(ErrorCodes.ENHANCE_YOUR_CALM, label, reason)
                return
            if self.closing:
                return
        self.flush()

    def on_event(self, event: Event, opened: set[int]) -> str | None:
        """Handle one h2 event; returns a guard's reason to close, or None."""
        guard = self.guard
        if isinstance(event, DataReceived):
            assert event.stream_id is not None and event.data is not None  # noqa: S101
            stream = self.streams.get(event.stream_id)
            if not event.data and event.stream_ended is None:
                if reason := guard.on_empty_frame():
                    return reason
            if stream is None:
                self.ack(event.stream_id, event.flow_controlled_length or 0)
            else:
                stream.on_data(event.data, event.flow_controlled_length or 0)
        elif isinstance(event, RequestReceived):
            assert event.stream_id is not None and event.headers is not None  # noqa: S101
            opened.add(event.stream_id)
            self.open_stream(event.stream_id, list(event.headers), event.stream_ended is not None)
        elif isinstance(event, StreamEnded):
            if (stream := self.streams.get(event.stream_id or 0)) is not None:
                stream.on_end()
        elif isinstance(event, TrailersReceived):
            if (stream := self.streams.get(event.stream_id or 0)) is not None:
                stream.on_trailers(list(event.headers or ()))
        elif isinstance(event, WindowUpdated):
            if event.stream_id:
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.pump()
            else:
                self.pump_all()
        elif isinstance(event, StreamReset):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.on_client_reset()
                if event.remote_reset and (reason := guard.on_client_reset()):
                    return reason
        elif isinstance(event, RemoteSettingsChanged):
            if reason := guard.on_settings():
                return reason
            if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                self.pump_all()
        elif isinstance(event, PingReceived):
            return guard.on_ping()
        elif isinstance(event, PriorityUpdated):
            if event.stream_id not in opened:  # a PRIORITY frame alone changes nothing here
                return guard.on_empty_frame()
        elif isinstance(event, ConnectionTerminated):
            self.draining = True  # the client's GOAWAY: finish what is in flight
            if not self.streams:
                self.close()
        return None

    def open_stream(self, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        """A request's headers arrived: refuse it over the stream limit, else start it."""
        self.served = True
        self.guard.on_stream_opened()
        if len(self.streams) >= self.max_streams or self.draining:
            self.ctx.metrics.refused.labels("too_many_streams").inc()
            self.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        fields = dict(h for h in headers if h[0][:1] == b":")
        method, path = fields.get(b":method", b"-"), fields.get(b":path", b"-")
        verdict = self.fixed
        if verdict is None or self.site.checks_host:
            host = fields.get(b":authority") or field(headers, b"host").encode("latin-1")
            verdict = route_request(self, method, path, host.decode("latin-1"))
        route = verdict.route
        h2c = route.h2c if route is not None else self.h2c is not None
        stream = (H2Stream if h2c else H2HTTP1Stream)(self, sid, method, path)
        stream.verdict = verdict
        self.streams[sid] = stream
        # h2 bounds the list by our SETTINGS once the client has acknowledged them; a
        # request sent before that is measured here (RFC 9113 6.5.2: 32 bytes per field).
        size = sum(len(name) + len(value) + 32 for name, value in headers)
        if size > self.ctx.config.limits.max_header_bytes:
            stream.grpc = False
            stream.reply("head_too_large", "the request head is too large")
            return
        head: tuple[HeadContext, Fields] | None = (self.head_ctx, self.identity_h2)
        if route is not None and route is not self.site.fallback:
            head = self._route_head(route)
        if head is None:
            stream.reply("denied", "the client certificate's values cannot travel in a header")
            return
        request = rewrite_h2_request(headers, *head)
        if verdict.status or route is None:
            if isinstance(request, Refusal):
                stream.start(request, ended)  # a malformed request is that first
            else:
                stream.refuse(verdict, headers)
            return
        stream.start(request, ended)

    def _route_head(self, route: Route) -> tuple[HeadContext, Fields] | None:
        """The head rewriting and identity fields of a route with its own headers.

        Returns:
            None when the client's values cannot travel in the route's headers.
        """
        key = id(route)
        if key not in self.route_heads:
            block, ctx = header_block(self, route), self.head_ctx
            made = None
            if block is not None:
                made = HeadContext(ctx.stripped, ctx.client_ip, block), identity_fields(block)
            self.route_heads[key] = made
        return self.route_heads[key]

    # -- what streams call -----------------------------------------------------------------
    def flush(self) -> None:
        """Write what h2 has queued for the client."""
        self.flush_due = False
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write what h2 has queued once this turn of the loop is done.

        Upstream answers for many streams arrive in one turn (one callback per upstream
        link): their frames then go out in one TLS write instead of one write each.
        """
        if not self.flush_due:
            self.flush_due = True
            self.loop.call_soon(self.flush)

    def ack(self, sid: int, n: int) -> None:
        """n bytes of the client's DATA were passed on: reopen its windows by as much."""
        if n and not self.closing:
            try:
                self.h2.acknowledge_received_data(n, sid)
            except H2Error:
                return  # the stream is gone: h2 still counts the connection window
            self.flush_soon()

    def send_headers(self, sid: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        """Send HEADERS (a response or trailers), unless the stream is gone."""
        try:
            self.h2.send_headers(sid, fields, end_stream=end)
        except H2Error:
            return
        self.flush_soon()

    def send_data(self, sid: int, data: bytes, end: bool) -> None:
        """Send DATA that fits the windows (a short body, an empty END_STREAM)."""
        try:
            self.h2.send_data(sid, data, end_stream=end)
        except H2Error:
            return
        self.flush_soon()

    def reset_stream(self, sid: int, code: int) -> None:
        """RST_STREAM, unless the stream is closed already."""
        try:
            self.h2.reset_stream(sid, code)
        except H2Error:
            return
        self.flush_soon()

    def stream_closed(self, stream: H2Stream, *, reset: bool) -> None:
        """A stream is done: log it, count it, and close if the gateway is stopping."""
        if self.streams.pop(stream.sid, None) is None:
            return
        if not reset:
            self.guard.on_stream_completed()
        if stream.status >= 0:  # negative: logged already (a reply of ours)
            note = "reset by the client" if reset else "" if stream.status else "reset"
            self.ctx.access(
                self,
                stream.method,
                stream.target,
                stream.status,
                stream.size,
                self.loop.time() - stream.started,
                note,
                protocol=H2,
                verdict=stream.verdict,
            )
        if self.draining and not self.streams:
            self.goaway(ErrorCodes.NO_ERROR, "", "")

    def pump_all(self) -> None:
        """The connection window or the client's socket opened: let every stream send."""
        for stream in list(self.streams.values()):
            if stream.out:
                stream.pump()

    def goaway(self, code: int | None, label: str, reason: str) -> None:
        """Send GOAWAY (`code`; None: h2 has queued it) and close the connection."""
        if self.closing:
            return
        if code is not None:
            try:
                self.h2.close_connection(code, additional_data=reason.encode()[:256])
            except H2Error:
                pass
        if label:
            self.ctx.metrics.h2_goaways.labels(label).inc()
            self.ctx.event(
                "h2_goaway", f"{self.client_ip}: {reason}", level="warning", reason=label
            )
        self.flush()
        self.close()

    def buffered(self) -> int:
        """Bytes held for this client's streams now, both ways, and in the TLS buffer."""
        queued = sum(s.buffered() for s in self.streams.values())
        return queued + (self.transport.get_write_buffer_size() if self.transport else 0)

    # -- lifecycle -------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.client_full = True

    def resume_writing(self) -> None:
        self.client_full = False
        self.pump_all()

    def shutdown(self) -> None:
        self.draining = True
        if not self.streams:
            self.goaway(ErrorCodes.NO_ERROR, "", "")

    def connection_lost(self, exc: Exception | None) -> None:
        for stream in list(self.streams.values()):
            stream.on_client_reset()
        super().connection_lost(exc)

    def check(self, now: float) -> None:
        limits = self.ctx.config.limits
        header_timeout = limits.header_timeout.total_seconds()
        if self.partial_since and now - self.partial_since > header_timeout:
            self.goaway(ErrorCodes.PROTOCOL_ERROR, "header_timeout", "a frame never completed")
            return
        if not self.streams:
            if not self.served and now - self.begun > header_timeout:
                self.goaway(ErrorCodes.NO_ERROR, "header_timeout", "no request arrived in time")
            elif now - self.last_activity > limits.idle_timeout.total_seconds():
                self.goaway(ErrorCodes.NO_ERROR, "", "")
            return
        upstream_timeout = limits.upstream_timeout.total_seconds()
        for stream in list(self.streams.values()):
            if stream.awaiting_since and now - stream.awaiting_since > upstream_timeout:
                self.ctx.metrics.upstream_errors.labels("timeout").inc()
                stream.reply("upstream_timeout", "the upstream did not answer in time")
