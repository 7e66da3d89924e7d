"""One client HTTP/2 stream: its request to the workload and the answer back to the client.

The request is checked and filtered by the one rewrite of gateway.head, refused here
(403, or a gRPC status), or sent on: over `h2c://` as one stream of gateway.h2up's
multiplexed connection (this class), over `http://` as an HTTP/1.1 request
(gateway.h2http1, a subclass).

Flow control is end to end, so memory stays bounded: the client's DATA is acknowledged
(its window reopened) only once passed upstream, and the workload's bytes wait here only
while the client's window for this stream is shut: then this stream's link stops being
read (HTTP/1.1) or its upstream window stays shut (h2c). Other streams go on.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from mtlskit.gateway import grpc
from mtlskit.gateway.access import H2
from mtlskit.gateway.h2head import H2Request
from mtlskit.gateway.head import Refusal, trailer_fields
from mtlskit.gateway.replies import REFUSALS, reply_body
from mtlskit.gateway.routed import refusal
from mtlskit.gateway.routing import Verdict

if TYPE_CHECKING:
    from mtlskit.gateway.h2server import H2Connection
    from mtlskit.gateway.h2up import UpstreamStream

__all__ = ["HIGH_WATER", "H2Stream"]

Fields = list[tuple[bytes, bytes]]
# Response bytes buffered for a client whose window is shut before the link is paused.
HIGH_WATER: Final = 64 * 1024


class H2Stream:
    """One request/response exchange of an HTTP/2 client connection (h2c upstream)."""

    def __init__(self, conn: H2Connection, sid: int, method: bytes, target: bytes) -> None:
        self.conn = conn
        self.h2 = conn.h2
        self.sid = sid
        self.method = method
        self.target = target
        self.started = conn.loop.time()
        self.grpc = False
        self.out: deque[bytes] = deque()  # response bytes the client's window holds back
        self.out_bytes = 0
        self.out_end = False  # the response ends once `out` is sent
        self.out_trailers: Fields | None = None
        self.status = 0
        self.size = 0
        self.headers_sent = False
        self.done = False
        self.request_ended = False
        self.awaiting_since = 0.0  # waiting for the workload's first answer byte
        self.req_trailers: Fields = []
        self.up: UpstreamStream | None = None
        self.verdict: Verdict | None = None  # the route that takes it (set by open_stream)

    # -- the request -----------------------------------------------------------------------
    def start(self, request: H2Request | Refusal, ended: bool) -> None:
        """Check and send the request on (or answer it here)."""
        self.request_ended = ended
        if isinstance(request, Refusal):
            if request.code == "malformed_request":  # RFC 9113 8.1.1: a stream error
                self.conn.ctx.metrics.refused.labels(request.code).inc()
                ctx = self.conn.ctx
                ctx.access(
                    self.conn, self.method, self.target, 0, 0, 0.0, request.message, protocol=H2
                )
                self.status = -1
                self.reset(ErrorCodes.PROTOCOL_ERROR)
            else:
                self.reply(request.code, request.message)
            return
        self.grpc = grpc.is_grpc(request.fields.kept)
        if ended:
            self.awaiting_since = self.conn.loop.time()
        self.forward(request, ended)

    def forward(self, request: H2Request, ended: bool) -> None:
        """Send the request upstream: here, a stream of the route's h2c upstream."""
        route = self.verdict.route if self.verdict is not None else None
        h2c = self.conn.ctx.upstreams.h2c(route.upstream) if route is not None else self.conn.h2c
        assert h2c is not None  # noqa: S101 - H2Connection picks the class by upstream
        self.up = h2c.open_stream(request.h2_fields(), self, end_stream=ended)

    def refuse(self, verdict: Verdict, fields: Fields) -> None:
        """Answer a request its route refused (401/403 page or gRPC status, 400-421 text)."""
        status, head, body = refusal(self.conn, verdict, fields, grpc_ok=True)
        self.conn.ctx.metrics.refused.labels(verdict.result).inc()
        out = [(b":status", b"%d" % status)]
        out += [(n.encode(), v.encode("latin-1")) for n, v in head]
        if body:
            out.append((b"content-length", b"%d" % len(body)))
        self.headers_sent = True
        self.status = -status  # logged here, not again when the stream closes
        if verdict.status in (401, 403):
            self.conn.deny(
                self.method, self.target, len(body), status=status, protocol=H2, verdict=verdict
            )
        else:
            note = verdict.decision.reason
            self.conn.ctx.access(
                self.conn,
                self.method,
                self.target,
                status,
                len(body),
                0.0,
                note,
                protocol=H2,
                verdict=verdict,
            )
        self.conn.send_headers(self.sid, out, not body)
        if body:
            self.conn.send_data(self.sid, body, True)
        self._finish()

    def on_data(self, data: bytes, flow: int) -> None:
        """DATA from the client (`flow`: its flow-controlled length, padding included)."""
        if self.done:
            self.conn.ack(self.sid, flow)
            return
        if flow > len(data):
            self.conn.ack(self.sid, flow - len(data))  # padding goes nowhere
        if data and self.up is not None:
            self.up.send_data(data)  # acknowledged in on_request_data_sent

    def on_trailers(self, fields: Fields) -> None:
        """The client's trailers: filtered as HTTP/1.1 trailers are (END_STREAM follows)."""
        self.req_trailers = trailer_fields(fields, self.conn.head_ctx.stripped, frozenset())

    def on_end(self) -> None:
        """The client ended its side of the stream."""
        self.request_ended = True
        if self.done:
            return
        if not self.awaiting_since and not self.headers_sent:
            self.awaiting_since = self.conn.loop.time()
        if self.up is None:
            return
        if self.req_trailers:
            self.up.send_trailers(self.req_trailers)
        else:
            self.up.send_data(b"", end_stream=True)

    def on_client_reset(self) -> None:
        """The client reset the stream: cancel it upstream too."""
        if self.done:
            return
        self.done = True
        self.cancel_upstream()
        self.conn.stream_closed(self, reset=True)

    # -- to the client ---------------------------------------------------------------------
    def respond(self, fields: Fields, *, end: bool) -> None:
        """Send the response headers (`:status` first)."""
        self.awaiting_since = 0.0
        self.headers_sent = True
        self.status = int(fields[0][1])
        self.conn.send_headers(self.sid, fields, end)
        if end:
            self._finish()

    def pump(self) -> None:
        """Send what the client's window allows; end the stream once all is sent."""
        conn = self.conn
        h2 = self.h2
        sent = 0
        ended = False
        try:
            while self.out and not conn.client_full and not self.done:
                window = min(h2.local_flow_control_window(self.sid), h2.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = self.out[0]
                if len(chunk) <= window:
                    self.out.popleft()
                else:
                    chunk, self.out[0] = chunk[:window], chunk[window:]
                # The last chunk of a body without trailers carries END_STREAM itself:
                # one DATA frame less per response.
                last = not self.out and self.out_end and not self.out_trailers
                h2.send_data(self.sid, chunk, end_stream=last)
                sent += len(chunk)
                if last:
                    ended = True
        except H2Error:  # h2 has closed the stream (the client reset it in this batch)
            self.on_client_reset()
            return
        self.out_bytes -= sent
        self.size += sent
        if sent and self.up is not None:
            self.up.ack(sent)  # reopen the workload's window for what the client has
        if ended:
            self._finish()
        elif not self.out and self.out_end and not self.done:
            if self.out_trailers:
                conn.send_headers(self.sid, self.out_trailers, True)
            else:
                conn.send_data(self.sid, b"", True)
            self._finish()
        elif self.out_bytes < HIGH_WATER:
            self.drained()
        conn.flush_soon()

    def _queue(self, data: bytes) -> None:
        self.out.append(data)
        self.out_bytes += len(data)
        self.pump()
        if self.out_bytes >= HIGH_WATER:
            self.backlogged()

    # -- for the HTTP/1.1 subclass (gateway.h2http1) ------------------------------------------
    def cancel_upstream(self) -> None:
        """The stream ends early: cancel what is upstream (RST_STREAM CANCEL)."""
        up, self.up = self.up, None
        if up is not None:
            up.reset(ErrorCodes.CANCEL)

    def buffered(self) -> int:
        """Bytes of this stream held in the gateway now (the h2c upstream keeps its own)."""
        return self.out_bytes

    def backlogged(self) -> None:
        """The client's window holds back HIGH_WATER bytes (h2c: the upstream window does)."""

    def drained(self) -> None:
        """What was held back has gone below HIGH_WATER."""

    def reply(self, code: str, message: str) -> None:
        """Answer this stream ourselves: a gRPC status for gRPC calls, else plain text."""
        if self.done:
            return
        self.conn.ctx.metrics.refused.labels(code).inc()
        if self.grpc:
            status = grpc.PERMISSION_DENIED if code == "denied" else grpc.UNAVAILABLE
            if code in ("upstream_timeout", "upstream_connect_timeout"):
                status = grpc.DEADLINE_EXCEEDED
            fields, body = grpc.grpc_error(status, message), b""
        else:
            reply = REFUSALS.get(code, REFUSALS["upstream_unreachable"])
            body = reply_body(reply, message)
            fields = [(b":status", b"%d" % reply.status.value)]
            fields += [(b"content-type", b"text/plain; charset=utf-8")]
            fields += [(b"content-length", b"%d" % len(body))]
        status = int(fields[0][1])
        self.headers_sent = True
        self.status = -status  # logged here, not again when the stream closes
        if code == "denied":
            self.conn.deny(self.method, self.target, len(body), status=status, protocol=H2)
        else:
            ctx = self.conn.ctx
            ctx.access(
                self.conn, self.method, self.target, status, len(body), 0.0, message, protocol=H2
            )
        self.conn.send_headers(self.sid, fields, not body)
        if body:
            self.conn.send_data(self.sid, body, True)
        self.cancel_upstream()  # whatever is upstream (a timeout, a failure) ends with us
        self._finish()

    def reset(self, code: int) -> None:
        """Reset the stream (RST_STREAM with `code`)."""
        if self.done:
            return
        self.conn.reset_stream(self.sid, code)
        self.done = True
        self.cancel_upstream()
        self.conn.stream_closed(self, reset=False)

    def _finish(self) -> None:
        self.done = True
        if not self.request_ended:
            # Answered before the request ended: ask the client to stop (RFC 9113 8.1).
            self.conn.reset_stream(self.sid, ErrorCodes.NO_ERROR)
            self.cancel_upstream()
        self.conn.stream_closed(self, reset=False)

    # -- ResponseHandler (gateway.h2up) ----------------------------------------------------
    def on_response_headers(self, headers: Fields, end_stream: bool) -> None:
        """The workload's response headers (h2c)."""
        if not self.done:
            self.respond(headers, end=end_stream)

    def on_response_data(self, data: bytes, end_stream: bool) -> None:
        """Response DATA from the workload (h2c)."""
        if not self.done:
            self.out_end = end_stream
            self._queue(data)

    def on_response_trailers(self, trailers: Fields) -> None:
        """The workload's trailers (h2c): grpc-status and grpc-message for gRPC."""
        if not self.done:
            self.out_trailers = trailers
            self.out_end = True
            self.pump()

    def on_request_data_sent(self, n: int) -> None:
        """n request bytes went upstream: reopen the client's window by as much."""
        self.conn.ack(self.sid, n)

    def on_upstream_reset(self, error_code: int, why: str) -> None:
        """The workload reset the stream, or could not be reached (h2c)."""
        if self.done:
            return
        self.conn.ctx.metrics.upstream_errors.labels("reset").inc()
        self.up = None
        if not self.headers_sent:
            self.reply("upstream_reset", why)
        else:
            self.reset(error_code if error_code != ErrorCodes.NO_ERROR else ErrorCodes.CANCEL)
