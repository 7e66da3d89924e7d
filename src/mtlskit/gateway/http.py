"""HTTP/1.1 mode: parse each request, route it (gateway.routed), filter its head, relay it.

Every client byte goes through the parser: requests are re-framed from what httptools
parsed, trailers stay with their request, an Upgrade becomes a tunnel only after the 101.
Responses go back as a byte pipe on a pooled link, watched by a second parser.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import httptools

from mtlskit.gateway.connection import Connection
from mtlskit.gateway.h1answer import refuse_request, write_refusal, write_reply
from mtlskit.gateway.head import HeadContext, Refusal, filter_trailers, rewrite_request_head
from mtlskit.gateway.routed import field, route_head, route_request
from mtlskit.gateway.watcher import QuietWatcher, ResponseWatcher

__all__ = ["HTTPConnection"]

# RFC 9110 9.2.2: requests a client may repeat; without a body they can be sent again as is.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class HTTPConnection(Connection):
    """One client's HTTP/1.1 connection through the gateway."""

    def on_begin(self) -> None:
        self.parser: Any = httptools.HttpRequestParser(self)
        watcher = ResponseWatcher if self.ctx.config.access_log else QuietWatcher
        self.watcher: ResponseWatcher | None = watcher(self)
        # Fixed per connection: who the client is never changes on a connection.
        self.head_ctx = HeadContext(
            self.state.stripped_headers, self.client_ip.encode(), self.header_block
        )
        site = self.state.site
        self.site_checks_host, self.default_route = site.checks_host, site.fallback
        self.route_ctx: dict[int, HeadContext | None] = {}
        self.max_head = self.ctx.config.limits.max_header_bytes
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.trailer_bytes = 0
        self.named: frozenset[bytes] = frozenset()
        self.chunked = False
        self.in_body = False  # a request's body is still arriving from the client
        self.head_bytes = 0  # raw bytes fed while a head is incomplete
        self.head_size = 0  # the parsed head's size so far
        self.head_started = 0.0
        self.awaiting_since = 0.0
        self.tunnel = False
        # An upgrade request is with the workload: the client's later bytes wait here
        # (reading paused) until its answer says tunnel (101) or HTTP (anything else).
        self.held: list[bytes] | None = None
        self.upgrading = False  # the request being parsed is an upgrade the workload may take
        self.last_request = False  # the client said Connection: close (RFC 9112 9.6)
        self.discard = False  # parse, forward nothing more (after a refusal or the last request)
        self.deferred: Callable[[], None] | None = None  # our answer, due after those in flight
        self.in_response = False  # the workload has started an answer not yet complete
        # (method, target, start time, verdict) of requests sent upstream, oldest first.
        self.requests: deque[tuple[bytes, bytes, float, Any]] = deque()
        self.replay: bytes | None = None  # the request in flight, if it may be sent again
        self.retried = False

    def holding(self) -> bool:
        return self.held is not None

    @property
    def idle(self) -> bool:
        return not self.requests and not self.tunnel and not self.in_body

    # -- client -> upstream ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        if self.tunnel:
            self.send_upstream(data)
        elif self.held is not None:
            self.held.append(data)  # reading is paused: at most what was already in flight
        elif not self.discard:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.closing:
                return
            rest = data[upgrade.args[0] :]
            if self.upgrading:
                self.held = [rest] if rest else []
                if self.transport is not None:
                    self.transport.pause_reading()
            else:
                # The upgrade was refused here (h2c): the next bytes are a new request.
                self.parser = httptools.HttpRequestParser(self)
                if rest:
                    self._parse(rest)
            return
        except httptools.HttpParserError as exc:
            if not self.closing:
                self.reply("malformed_request", f"malformed request ({exc})")
            return
        if self.head_started:  # a head still incomplete: bound what we buffer for it
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head:
                self.reply("head_too_large", "the request head is too large")

    # No on_message_begin: one Python call less per request. A request starts at its
    # first URL bytes; its per-request state is reset once the head has been forwarded.
    def on_url(self, url: bytes) -> None:
        if not self.head_started:
            self.head_started = self.loop.time()
        self.url.append(url)
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_body:
            self.headers.append((name, value))
            self.head_size += len(name) + len(value) + 4
            return
        # A trailer field of a chunked body: it belongs to this request, never the next.
        self.trailers.append((name, value))
        self.trailer_bytes += len(name) + len(value) + 4
        if self.trailer_bytes > self.max_head:
            self.reply("head_too_large", "the request trailers are too large")

    def on_headers_complete(self) -> None:
        self.head_started = 0.0
        self.head_bytes = 0
        self.upgrading = False
        headers, self.headers = self.headers, []
        size, self.head_size = self.head_size, 0
        target = b"".join(self.url)
        self.url.clear()
        if self.closing or self.discard:
            return
        parser = self.parser
        method: bytes = parser.get_method()
        if size > self.max_head:
            refuse_request(self, method, target, None, "head_too_large", "the head is too large")
            return
        verdict = self.fixed
        if verdict is None or self.site_checks_host:
            verdict = route_request(self, method, target, field(headers, b"host"))
        route = verdict.route
        if verdict.status or route is None:
            write_refusal(self, method, target, verdict, headers)  # logged with route, rule
            return
        if method == b"CONNECT":
            why = "CONNECT is not supported: this is a reverse proxy"
            refuse_request(self, method, target, verdict, "connect", why)
            return
        if route.h2c:  # no HTTP/1.1 -> h2c translation (yet)
            why = "the upstream speaks h2c only: use HTTP/2"
            refuse_request(self, method, target, verdict, "upstream_unreachable", why)
            return
        if not self.use_address(route.upstream):
            # Pipelined behind requests to another workload: close after their answers
            # without this one, which the client sends again (RFC 9112 9.3.2).
            self.discard = self.last_request = True
            return
        head_ctx = self.head_ctx if route is self.default_route else route_head(self, route)
        if head_ctx is None:
            why = "the client certificate's values cannot travel in a header"
            refuse_request(self, method, target, verdict, "denied", why)
            return
        head = rewrite_request_head(
            method,
            target,
            parser.get_http_version(),
            headers,
            keep_alive=parser.should_keep_alive(),
            wants_upgrade=parser.should_upgrade(),
            ctx=head_ctx,
        )
        if isinstance(head, Refusal):
            refuse_request(self, method, target, verdict, head.code, head.message)
            return
        self.chunked = head.chunked
        self.named = head.named
        self.upgrading = bool(head.upgrade)
        self.last_request = not head.keep_alive
        self.in_body = True
        self.requests.append((method, target, self.loop.time(), verdict))
        reused = self.use_upstream()
        # On a link that carried requests before, the workload may have closed it just
        # now: keep what is needed to send this request once more on a new connection.
        self.replay = (
            head.head
            if reused
            and len(self.requests) == 1
            and method in _IDEMPOTENT
            and head.bodiless
            and not head.upgrade
            else None
        )
        self.send_upstream(head.head)

    def on_body(self, body: bytes) -> None:
        if self.discard or self.closing:
            return
        if self.chunked:
            # httptools hands us the de-chunked body: frame it again for the upstream.
            self.send_upstream(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.send_upstream(body)

    def on_message_complete(self) -> None:
        self.in_body = False
        if self.chunked:
            self.chunked = False
            if not self.discard and not self.closing:
                trailers = filter_trailers(self.trailers, self.head_ctx.stripped, self.named)
                self.send_upstream(b"0\r\n" + trailers + b"\r\n")
            self.trailers.clear()
            self.trailer_bytes = 0
        # The request is whole: from now on the workload's answer is awaited (a slow
        # upload is the client's time, not the upstream's).
        if self.requests and not self.awaiting_since and not self.closing:
            self.awaiting_since = self.loop.time()
        if self.last_request:
            self.discard = True  # nothing after a Connection: close request is read
        elif not self.requests:
            self._release()  # answered before its body ended: the link is free now

    # -- upstream -> client ----------------------------------------------------------------
    def from_upstream(self, data: bytes) -> None:
        if not self.requests and not self.tunnel:
            # Nobody asked (a parked link, or after an answer): the link is out of step.
            self.drop_upstream()
            return
        self.replay = None
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
        method, target, started, verdict = self.requests.popleft()
        now = self.loop.time()
        # Still waiting for an answer, unless the only request left is still uploading.
        waiting = self.requests and not (self.in_body and len(self.requests) == 1)
        self.awaiting_since = now if waiting else 0.0
        if self.ctx.config.access_log:
            self.ctx.access(self, method, target, status, size, now - started, verdict=verdict)
        else:
            self.ctx.metrics.response(status)
        if not self.requests and self.deferred is not None:
            self.deferred()  # our answer to a request pipelined behind this one
        elif not self.requests:
            # The client asked for this to be its last response, or the gateway stops.
            ending = (self.last_request or self.draining) and not self.in_body
            if self.held is not None and not ending:
                self._upgrade_refused()
            elif not self.in_body:
                self._release()  # the link outlives this client: park it first
                if ending:
                    self.close()

    def _release(self) -> None:
        """Nothing in flight: park the link for other clients, or drop it if it cannot go on."""
        if self.upstream is None or self.parked or self.closing or self.tunnel:
            return
        watcher = self.watcher
        if watcher is not None and watcher.framed:
            self.park_upstream()
        else:  # the workload closes after this answer, or we lost track of its framing
            self.drop_upstream()

    def _upgrade_refused(self) -> None:
        """The workload answered the upgrade request without 101: go on speaking HTTP."""
        held, self.held = self.held or [], None
        self.upgrading = False
        self.parser = httptools.HttpRequestParser(self)
        self.resume_client()
        if held:
            self._parse(b"".join(held))

    def response_upgrade(self) -> None:
        """101 Switching Protocols: both directions are now an opaque tunnel."""
        if self.tunnel or self.closing:
            return
        if self.held is None or len(self.requests) != 1:
            # A 101 to a request that did not ask to upgrade: never tunnel on the
            # workload's word alone, or the client's later bytes would go unparsed.
            self._upstream_fault("protocol", "the upstream switched protocols unasked")
            return
        self.tunnel = True
        self.watcher = None
        method, target, started, verdict = self.requests.popleft()
        self.ctx.access(self, method, target, 101, 0, self.loop.time() - started, verdict=verdict)
        self.awaiting_since = 0.0
        held, self.held = self.held, None
        if held:
            self.send_upstream(b"".join(held))
        self.resume_client()

    def response_unparsable(self) -> None:
        """The workload's answer cannot be followed: stop watching, or close if it matters."""
        self.watcher = None
        if self.held is not None:  # cannot tell a 101 from a refusal: fail closed
            self._upstream_fault("protocol", "the upstream's answer to an upgrade is unparsable")
            return
        self.requests.clear()
        self.awaiting_since = 0.0

    def upstream_lost(self, exc: Exception | None) -> None:
        self.upstream = None
        self.parked = False
        if self.closing or self.transport is None:
            return  # we closed it (the client hung up, or a reply ended the connection)
        if self.tunnel:
            self.close()
            return
        if not self.requests and not self.in_response:
            return  # an idle link went away: the next request gets another one
        if self.replay is not None and not self.retried and len(self.requests) == 1:
            # A reused link the workload had closed: send the request once more, on a
            # new connection (idempotent, bodiless, nothing answered yet).
            replay, self.replay = self.replay, None
            self.retried = True
            self.connect_upstream()
            self.send_upstream(replay)
            return
        if self.requests and not self.in_response:
            # The workload hung up without answering the request in flight.
            message = "the upstream closed the connection without a response"
            self._upstream_fault("reset", message, answer="upstream_reset")
            return
        watcher = self.watcher
        if self.in_response and watcher is not None:
            if watcher.framed:
                self._upstream_fault("aborted", "the upstream closed in the middle of a response")
                return
            # A response without a length ends when the upstream closes (RFC 9112 6.3).
            self.response_done(watcher.parser.get_status_code(), watcher.body_bytes)
        self.close()

    def _upstream_fault(self, kind: str, message: str, *, answer: str = "") -> None:
        """Count and log a real upstream failure; answer `answer` if nothing was sent yet."""
        self.ctx.metrics.upstream_errors.labels(kind).inc()
        method, target = self.requests[0][:2] if self.requests else (b"-", b"-")
        self.ctx.event(
            "upstream_error",
            f"{self.client_ip}: {message} ({method.decode('latin-1')} "
            f"{target.decode('latin-1')[:200]})",
            level="warning",
        )
        if answer:
            self.reply(answer, message)
        else:
            self.close()

    def upstream_failed(self, kind: str) -> None:
        if kind == "timeout":
            self.reply(
                "upstream_connect_timeout", "the upstream did not accept the connection in time"
            )
        else:
            self.reply("upstream_unreachable", "the upstream is not reachable")

    def reply(self, code: str, message: str) -> None:
        """Answer the client ourselves and close (denials, limits, upstream trouble)."""
        write_reply(self, code, message)

    def check(self, now: float) -> None:
        limits = self.ctx.config.limits
        if self.head_started and now - self.head_started > limits.header_timeout.total_seconds():
            self.reply("head_timeout", "the request head did not arrive in time")
        elif (
            self.in_body
            and not self.upstream_full
            and self.pending is None
            and now - self.last_activity > limits.idle_timeout.total_seconds()
        ):
            self.reply("body_timeout", "the request body stopped arriving")
        elif (
            self.awaiting_since
            and now - self.awaiting_since > limits.upstream_timeout.total_seconds()
        ):
            self.ctx.metrics.upstream_errors.labels("timeout").inc()
            if self.in_response:
                self.close()  # half an answer was sent: all we can do is cut it off
            else:
                self.reply("upstream_timeout", "the upstream did not answer in time")
        elif not self.requests:
            super().check(now)
