"""One h2c connection to the workload: h2's client state machine over an asyncio transport."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, NoAvailableStreamIDError
from h2.settings import SettingCodes, Settings

from mtlskit.gateway.h2frames import GoawayScanner, reset_name

if TYPE_CHECKING:
    from mtlskit.gateway.h2up import H2cUpstream, UpstreamStream

__all__ = ["UpstreamLink"]

# Each stream may have this much response data unacknowledged (buffered on the client
# side); the connection window is that times the streams one connection carries, so
# streams whose clients read slowly never use up the window the others need.
STREAM_WINDOW = 256 * 1024
STREAMS_PER_CONNECTION = 100
CONNECTION_WINDOW = STREAM_WINDOW * STREAMS_PER_CONNECTION
MAX_RESPONSE_HEADER_LIST = 64 * 1024
# A stream the workload refuses (REFUSED_STREAM, or above a GOAWAY's last stream id) has
# not been processed (RFC 9113 8.7) and is sent again if its body so far is this small.
REPLAY_LIMIT = 64 * 1024


class UpstreamLink(asyncio.Protocol):
    """One connection to the workload carrying many streams; made by H2cUpstream."""

    def __init__(self, upstream: H2cUpstream) -> None:
        self.upstream = upstream
        # The request fields were checked when they came from the client (the server
        # side's inbound validation and h2head) and ours are built here: h2's outbound
        # check would only repeat that, at a tenth of the per-call CPU.
        config = H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False
        )
        self.conn = H2Connection(config=config)
        self.conn.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,  # a proxy has no use for pushes
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_RESPONSE_HEADER_LIST,
            },
        )
        self.scanner = GoawayScanner()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, UpstreamStream] = {}
        self.ready = False  # the workload's SETTINGS came: streams may start
        self.was_ready = False
        self.going_away = False  # GOAWAY received (or stream ids used up): no new streams
        self.closed = False
        self.paused = False  # the transport's write buffer is full
        self.write_due = False  # a write_now() is scheduled
        self.why = ""  # why the connection ended, for the streams it carried
        loop = upstream.loop
        self.timer = loop.call_later(upstream.connect_timeout, self.timed_out)
        self.task = loop.create_task(self.connect())

    # -- the connection ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect (the timer bounds it together with the workload's first SETTINGS)."""
        address, loop = self.upstream.address, self.upstream.loop
        try:
            if address.scheme == "unix":
                await loop.create_unix_connection(lambda: self, address.path)
            else:
                await loop.create_connection(lambda: self, address.host, address.port)
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            self.gone(f"cannot connect to the workload at {address}: {why}")

    def timed_out(self) -> None:
        if self.ready or self.closed:
            return
        seconds = f"{self.upstream.connect_timeout:g}"
        why = f"the workload at {self.upstream.address} did not answer within {seconds} s"
        if self.transport is not None:
            self.why = why
            self.transport.abort()  # connection_lost follows
        else:
            self.task.cancel()
            self.gone(why)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.write()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        why = self.why or "the connection to the workload was lost"
        if exc is not None and not self.why:
            why += f" ({exc})"
        self.gone(why)

    def gone(self, why: str) -> None:
        """The connection is over: fail its streams, and tell the upstream."""
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        for stream in list(self.streams.values()):
            stream.fail(ErrorCodes.INTERNAL_ERROR, why)
        self.streams.clear()
        self.upstream.link_gone(self, ErrorCodes.REFUSED_STREAM, why)

    def close(self) -> None:
        """Say GOAWAY and close (streams still on it are failed when it is lost)."""
        if self.transport is None:
            self.task.cancel()
            self.gone("the gateway closed the connection to the workload")
            return
        if not self.transport.is_closing():
            self.why = self.why or "the gateway closed the connection to the workload"
            self.conn.close_connection()
            self.write_now()
            self.transport.close()

    def write(self) -> None:
        """Send what h2 has queued once this turn of the loop is done.

        Requests of many clients start in one turn: their frames go out in one write.
        """
        if not self.write_due:
            self.write_due = True
            self.upstream.loop.call_soon(self.write_now)

    def write_now(self) -> None:
        """Send what h2 has queued, now (before a close, or at the end of a turn)."""
        self.write_due = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            if stream.out:
                self.flush(stream)

    def eof_received(self) -> bool:
        return False

    # -- streams ---------------------------------------------------------------------------------
    @property
    def connecting(self) -> bool:
        """True until the workload's SETTINGS came (or the connection failed)."""
        return not self.ready and not self.closed

    @property
    def has_room(self) -> bool:
        """True if a new stream may start on this connection now."""
        if not self.ready or self.going_away or self.closed:
            return False
        limit = min(self.conn.remote_settings.max_concurrent_streams, STREAMS_PER_CONNECTION)
        return self.conn.open_outbound_streams < limit

    def start(self, stream: UpstreamStream) -> None:
        """Send a waiting stream's headers, and what of its body the windows allow."""
        end = stream.ended_out and not stream.out and stream.trailers is None
        try:
            stream_id = self.conn.get_next_available_stream_id()
        except NoAvailableStreamIDError:
            self.going_away = True  # 2**31 streams on one connection: use another
            self.upstream.requeue(stream)
            return
        try:
            self.conn.send_headers(stream_id, stream.headers, end_stream=end)
        except (H2Error, ValueError, TypeError) as exc:
            self.upstream.loop.call_soon(
                stream.fail, ErrorCodes.INTERNAL_ERROR, f"the request cannot be sent: {exc}"
            )
            return
        stream.link, stream.stream_id, stream.end_sent = self, stream_id, end
        self.streams[stream_id] = stream
        if end:
            self.write()
        else:
            self.flush(stream)

    def flush(self, stream: UpstreamStream) -> None:
        """Send what the windows allow of a stream's buffered request (then END_STREAM)."""
        conn, stream_id, sent = self.conn, stream.stream_id, 0
        try:
            while stream.out and not self.paused:
                window = conn.local_flow_control_window(stream_id)
                if window <= 0:
                    break
                chunk = stream.out[0]
                size = min(window, conn.max_outbound_frame_size, len(chunk))
                if size < len(chunk):
                    view = memoryview(chunk)
                    chunk, stream.out[0] = view[:size], view[size:]
                else:
                    stream.out.popleft()
                conn.send_data(stream_id, chunk)
                sent += size
                if stream.replay is not None:  # kept (a reference) in case it must go again
                    stream.replay.append(chunk)
            if not stream.out and stream.ended_out and not stream.end_sent:
                if stream.trailers is not None:
                    conn.send_headers(stream_id, stream.trailers, end_stream=True)
                else:
                    conn.end_stream(stream_id)
                stream.end_sent = True
        except (H2Error, ValueError, TypeError) as exc:
            self.write()
            self.reset(stream, ErrorCodes.INTERNAL_ERROR)
            self.upstream.loop.call_soon(
                stream.fail, ErrorCodes.INTERNAL_ERROR, f"the request cannot be sent: {exc}"
            )
            return
        self.write()
        stream.out_bytes -= sent
        stream.sent += sent
        if stream.replay is not None and stream.sent > REPLAY_LIMIT:
            stream.replay = None  # too much to keep: this stream cannot be sent again
        if stream.sent > stream.reported:  # a stream sent again reports its bytes once
            sent, stream.reported = stream.sent - stream.reported, stream.sent
            stream.handler.on_request_data_sent(sent)
        if stream.end_sent and stream.remote_ended:
            stream.finish(release=False)

    def acknowledge(self, stream_id: int, n: int) -> None:
        """Reopen the windows by `n` bytes the client side has passed on."""
        if self.closed:
            return
        self.conn.acknowledge_received_data(n, stream_id)
        self.write()

    def reset(self, stream: UpstreamStream, error_code: int) -> None:
        """RST_STREAM for a stream the client side abandons."""
        try:
            self.conn.reset_stream(stream.stream_id, error_code)
        except H2Error:
            pass  # already closed on h2's side (e.g. both ends sent END_STREAM)
        self.write()

    def forget(self, stream: UpstreamStream, release: bool) -> None:
        """A stream is over; `release`: its unacknowledged bytes will never be acked."""
        self.streams.pop(stream.stream_id, None)
        if release and stream.unacked:
            unacked, stream.unacked = stream.unacked, 0
            self.acknowledge(stream.stream_id, unacked)
        if self.going_away and not self.streams:
            self.close()

    # -- what the workload sends -------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        data, goaways = self.scanner.split(data)
        try:
            events = self.conn.receive_data(data) if data else []
        except H2Error as exc:  # ProtocolError and its kinds (flow control, frame size...)
            self.why = f"the workload broke the HTTP/2 protocol ({exc})"
            self.conn.close_connection(ErrorCodes.PROTOCOL_ERROR)
            self.write_now()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self.handle(event)
        for last_stream_id, error_code in goaways:
            self.on_goaway(last_stream_id, error_code)
        self.write()

    def handle(self, event: Event) -> None:
        if isinstance(event, RemoteSettingsChanged):
            if not self.ready:
                self.ready = self.was_ready = True
                self.timer.cancel()
            elif SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                self.resume_writing()
            self.upstream.dispatch()
            return
        if isinstance(event, WindowUpdated):
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                if stream is not None and stream.out:
                    self.flush(stream)
            elif not self.paused:
                self.resume_writing()
            return
        if isinstance(event, ConnectionTerminated):  # not seen: the scanner takes GOAWAYs
            self.on_goaway(event.last_stream_id or 0, event.error_code or 0)
            return
        stream_id = getattr(event, "stream_id", 0)
        stream = self.streams.get(stream_id)
        if stream is None:
            if isinstance(event, DataReceived):  # on a stream already abandoned
                self.acknowledge(stream_id, event.flow_controlled_length)
            return
        if isinstance(event, DataReceived):
            data = event.data
            padding = event.flow_controlled_length - len(data)
            if padding:
                self.acknowledge(stream_id, padding)
            stream.unacked += len(data)
            stream.handler.on_response_data(data, event.stream_ended is not None)
        elif isinstance(event, ResponseReceived):
            stream.replay = None  # the workload took it: it can no longer go again
            stream.handler.on_response_headers(event.headers, event.stream_ended is not None)
        elif isinstance(event, TrailersReceived):
            stream.handler.on_response_trailers(event.headers)
        elif isinstance(event, StreamEnded):
            stream.remote_ended = True
            if stream.end_sent:
                stream.finish(release=False)
        elif isinstance(event, StreamReset):
            self.on_reset(stream, int(event.error_code), remote=event.remote_reset)

    def on_reset(self, stream: UpstreamStream, code: int, *, remote: bool) -> None:
        name = reset_name(code)
        if not remote:
            stream.fail(code, f"the workload broke HTTP/2 on the stream ({name})")
        elif code == ErrorCodes.REFUSED_STREAM:
            stream.retry_or_fail(
                code, "the workload refused the stream (REFUSED_STREAM)", backoff=True
            )
        elif code == ErrorCodes.NO_ERROR and stream.remote_ended:
            stream.fail(code, "the workload has answered and takes no more of the request")
        else:
            stream.fail(code, f"the workload reset the stream ({name})")

    def on_goaway(self, last_stream_id: int, error_code: int) -> None:
        """GOAWAY: streams the workload will not process go again elsewhere; others finish."""
        self.going_away = True
        why = f"the workload went away (GOAWAY {reset_name(error_code)})"
        self.why = self.why or why
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last_stream_id:
                stream.retry_or_fail(ErrorCodes.REFUSED_STREAM, why)
        if not self.streams:
            self.close()
        self.upstream.dispatch()
