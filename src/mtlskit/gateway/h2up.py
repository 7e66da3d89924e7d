"""The h2c upstream: HTTP/2 cleartext streams to one workload, multiplexed on few connections.

Every client stream of a worker that goes to an `h2c://` upstream (or a unix socket with
`upstream_protocol = "h2c"`) becomes one stream here. Identity headers travel in every
stream's headers, never in the connection, so streams of many clients share a connection
(what gRPC clients expect of a proxy: Envoy does the same). A connection is made lazily,
with prior knowledge (RFC 9113 section 3.3: no Upgrade), and more are made, up to
`max_connections`, only when the workload's SETTINGS_MAX_CONCURRENT_STREAMS is reached on
all of them; beyond that streams wait in a queue.

Flow control is end to end: request bytes are sent within the workload's windows and the
rest stays buffered (`on_request_data_sent` says when bytes went out, so the client side
reopens its own window only then); response bytes are acknowledged to the workload only
when the client side calls `ack(n)` after passing them on. Memory per stream is so bounded
by the windows, and a slow reader stalls its own stream only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Protocol

from h2.errors import ErrorCodes

from mtlskit.gateway.h2link import UpstreamLink

if TYPE_CHECKING:
    from mtlskit.config import UpstreamAddress

__all__ = ["H2cUpstream", "ResponseHandler", "UpstreamStream"]

Headers = list[tuple[bytes, bytes]]
# How often a stream the workload did not take (GOAWAY above its last stream id, or
# REFUSED_STREAM) is sent again before the client is told (RFC 9113 8.7: it is safe).
_RETRIES = 4


class ResponseHandler(Protocol):
    """What a stream reports to the client side (implemented by the client's stream)."""

    def on_response_headers(self, headers: Headers, end_stream: bool) -> None:
        """The workload's response head (`:status` first); end_stream: no body follows."""

    def on_response_data(self, data: bytes, end_stream: bool) -> None:
        """Response body bytes; call `UpstreamStream.ack(len(data))` once passed on."""

    def on_response_trailers(self, trailers: Headers) -> None:
        """The response's trailers (gRPC: grpc-status, grpc-message); the stream ends."""

    def on_request_data_sent(self, n: int) -> None:
        """`n` request body bytes went to the workload: the client's window may reopen."""

    def on_upstream_reset(self, error_code: int, why: str) -> None:
        """The stream is over without a complete exchange (reset, GOAWAY, lost, no connect).

        Error codes are HTTP/2's: the workload's own for its RST_STREAM or GOAWAY;
        REFUSED_STREAM (0x7) when nothing reached the workload (no connection); NO_ERROR
        (0x0) when the workload has answered in full and wants no more of the request
        (RFC 9113 section 8.1); INTERNAL_ERROR (0x2) when the connection was lost.
        """


class UpstreamStream:
    """One request/response exchange with the workload (made by `H2cUpstream.open_stream`)."""

    __slots__ = (
        "done",
        "end_sent",
        "ended_out",
        "handler",
        "headers",
        "link",
        "out",
        "out_bytes",
        "remote_ended",
        "replay",
        "reported",
        "retries",
        "sent",
        "stream_id",
        "trailers",
        "unacked",
        "upstream",
    )

    def __init__(
        self, upstream: H2cUpstream, headers: Headers, handler: ResponseHandler, end: bool
    ) -> None:
        self.upstream = upstream
        self.headers = headers
        self.handler = handler
        self.link: UpstreamLink | None = None  # the connection carrying it, once it has one
        self.stream_id = 0
        self.out: deque[bytes | memoryview] = deque()  # request body not yet sent
        self.out_bytes = 0
        self.ended_out = end  # the request is complete (END_STREAM once `out` is sent)
        self.end_sent = False  # END_STREAM went out
        self.trailers: Headers | None = None  # request trailers, after the body
        self.sent = 0  # request body bytes sent on this attempt
        self.reported = 0  # ... and reported to the handler, over all attempts
        self.replay: list[bytes | memoryview] | None = []  # what was sent, to send again
        self.remote_ended = False
        self.unacked = 0  # response bytes received, not yet acknowledged by the client side
        self.retries = 0
        self.done = False  # the exchange is over (complete, reset or failed)

    def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send request body bytes: at once within the workload's windows, later otherwise.

        `handler.on_request_data_sent` reports each part as it goes out (it may be called
        from within this call).
        """
        if self.ended_out or self.done:
            return
        if data:
            self.out.append(data)
            self.out_bytes += len(data)
        self.ended_out = end_stream
        if self.link is not None:
            self.link.flush(self)

    def send_trailers(self, trailers: Headers) -> None:
        """End the request with trailers (after any body still buffered)."""
        if self.ended_out or self.done:
            return
        self.trailers = trailers
        self.ended_out = True
        if self.link is not None:
            self.link.flush(self)

    def ack(self, n: int) -> None:
        """The client side has passed on `n` response bytes: let the workload send more.

        Also after the response is complete: the workload's connection window counts them.
        """
        n = min(n, self.unacked)
        if n <= 0:
            return
        self.unacked -= n
        if self.link is not None:
            self.link.acknowledge(self.stream_id, n)

    def reset(self, error_code: int = ErrorCodes.CANCEL) -> None:
        """Abandon the exchange (the client reset its stream or went away): RST_STREAM.

        After a complete response it gives back what was never acknowledged.
        """
        if self.done:
            self.ack(self.unacked)
            return
        link = self.link
        if link is None:
            self.upstream.unqueue(self)
        else:
            link.reset(self, error_code)
        self.finish(release=True)

    def finish(self, *, release: bool) -> None:
        """The exchange is over; `release`: acknowledge now what was not passed on."""
        if self.done:
            return
        self.done = True
        self.out.clear()
        if self.link is not None:
            self.link.forget(self, release)
        self.upstream.dispatch()

    def fail(self, error_code: int, why: str) -> None:
        """End the stream and tell the client side."""
        if not self.done:
            self.finish(release=True)
            self.handler.on_upstream_reset(error_code, why)

    def retry_or_fail(self, error_code: int, why: str, *, backoff: bool = False) -> None:
        """The workload did not take it: send it again if nothing of it is lost, else fail.

        backoff: wait before sending it again (REFUSED_STREAM: a workload at its stream
        limit may count a stream that just ended for a moment longer).
        """
        if self.done:
            return
        if self.replay is None or self.retries >= _RETRIES:
            self.fail(error_code, why)
            return
        link, self.link = self.link, None
        if link is not None:
            link.forget(self, True)
        self.retries += 1
        self.stream_id = 0
        self.end_sent = False
        self.out.extendleft(reversed(self.replay))
        self.out_bytes += self.sent
        self.sent = 0
        self.replay = []
        self.upstream.requeue(self, 0.02 * 2**self.retries if backoff else 0.0)


class H2cUpstream:
    """Multiplexed h2c connection(s) to one workload, shared by all clients of a worker.

    Args:
        loop: the worker's event loop.
        address: the workload (host and port, or a unix socket path).
        connect_timeout: seconds for a connection and the workload's first SETTINGS.
        max_connections: at most this many connections at once (more are made only when
            every open one is at the workload's SETTINGS_MAX_CONCURRENT_STREAMS).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: UpstreamAddress,
        *,
        connect_timeout: float,
        max_connections: int = 4,
    ) -> None:
        self.loop = loop
        self.address = address
        self.connect_timeout = connect_timeout
        self.max_connections = max(1, max_connections)
        self.links: list[UpstreamLink] = []
        self.waiting: deque[UpstreamStream] = deque()
        self.closed = False

    def open_stream(
        self, headers: Headers, handler: ResponseHandler, *, end_stream: bool
    ) -> UpstreamStream:
        """Start a request (headers with pseudo-headers, already rewritten); never blocks.

        The stream waits for a connection (made now if needed) or for a free stream slot;
        a failure is reported later through `handler.on_upstream_reset`, never from here.
        """
        stream = UpstreamStream(self, headers, handler, end_stream)
        if self.closed:
            self.loop.call_soon(
                stream.fail, ErrorCodes.REFUSED_STREAM, "the gateway is shutting down"
            )
            return stream
        self.waiting.append(stream)
        self.dispatch()
        return stream

    def dispatch(self) -> None:
        """Give waiting streams to connections with room; connect if none has room."""
        waiting = self.waiting
        while waiting:
            link = next((k for k in self.links if k.has_room), None)
            if link is None:
                break
            link.start(waiting.popleft())
        if waiting and not self.closed and len(self.links) < self.max_connections:
            if not any(k.connecting for k in self.links):  # it will take them when up
                self.links.append(UpstreamLink(self))

    def requeue(self, stream: UpstreamStream, delay: float = 0.0) -> None:
        """A stream to send again, ahead of the others (it was first), after `delay` s."""
        self.loop.call_later(delay, self.put_back, stream)  # not inside the link's events

    def put_back(self, stream: UpstreamStream) -> None:
        if not stream.done:
            if self.closed:
                stream.fail(ErrorCodes.REFUSED_STREAM, "the gateway is shutting down")
                return
            self.waiting.appendleft(stream)
            self.dispatch()

    def unqueue(self, stream: UpstreamStream) -> None:
        """A waiting stream was abandoned."""
        try:
            self.waiting.remove(stream)
        except ValueError:
            pass

    def link_gone(self, link: UpstreamLink, error_code: int, why: str) -> None:
        """A connection closed or could not be made; fail the waiting if nothing is left."""
        if link in self.links:
            self.links.remove(link)
        if not link.was_ready and not any(k.connecting or k.has_room for k in self.links):
            # Nothing reached the workload: the waiting streams would wait for nothing.
            while self.waiting:
                self.waiting.popleft().fail(error_code, why)
        self.dispatch()

    def close(self) -> None:
        """Fail the waiting streams and close every connection (shutdown)."""
        self.closed = True
        while self.waiting:
            self.waiting.popleft().fail(ErrorCodes.REFUSED_STREAM, "the gateway is shutting down")
        for link in list(self.links):
            link.close()
