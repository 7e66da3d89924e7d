"""One client connection after its handshake, and its upstream link: shared by HTTP and TCP.

A connection gets a small context (loop, config, metrics, log, upstream pool, and a
callback for the gateway's accounting), never the Gateway itself: the Gateway owns the
listener, the lifecycle, reloads and accounting, and asks connections to `shutdown()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mtlskit.gateway.access import H1, H2, access_record
from mtlskit.gateway.admission import Admission
from mtlskit.gateway.pool import UpstreamLink, UpstreamOwner, UpstreamPool
from mtlskit.gateway.replies import REFUSALS
from mtlskit.gateway.routing import Caller, Verdict
from mtlskit.identity import PeerIdentity
from mtlskit.policy import Decision

if TYPE_CHECKING:
    from mtlskit.config import GatewayConfig, UpstreamAddress
    from mtlskit.gateway.h2up import H2cUpstream
    from mtlskit.gateway.logs import EventLog
    from mtlskit.gateway.metrics import Metrics
    from mtlskit.gateway.state import GatewayState
    from mtlskit.gateway.tls import TLSStream
    from mtlskit.gateway.upstreams import Upstreams

__all__ = ["ConnContext", "Connection"]


@dataclass(eq=False, slots=True)
class ConnContext:
    """What every connection of one gateway worker shares.

    Attributes:
        loop: the running loop.
        config: the gateway's configuration.
        metrics: the metric handles.
        log: the event and access log.
        pool: parked upstream links (HTTP mode), or None.
        closed: tells the gateway a verified connection has ended (its accounting).
        h2c: the worker's HTTP/2 cleartext upstream (`h2c://`), shared by all streams.
        upstreams: the pools and h2c links of every workload (routes' and servers' own).
    """

    loop: asyncio.AbstractEventLoop
    config: GatewayConfig
    metrics: Metrics
    log: EventLog
    pool: UpstreamPool | None
    closed: Callable[[Connection], None]
    upstreams: Upstreams
    h2c: H2cUpstream | None = None

    def event(self, event: str, message: str, *, level: str = "info", **fields: Any) -> None:
        """A gateway event line."""
        self.log.event(event, message, level=level, **fields)

    def access(
        self,
        conn: Connection,
        method: bytes,
        target: bytes,
        status: int,
        size: int,
        seconds: float,
        note: str = "",
        *,
        protocol: str = H1,
        verdict: Verdict | None = None,
    ) -> None:
        """Count one response by status (and protocol) and, with the access log on, log it.

        Args:
            protocol: "HTTP/1.1", "HTTP/2" or "TCP", as the access line names it.
            verdict: the route and decision of this request (the connection's otherwise).
        """
        if status:
            if protocol == H2:
                self.metrics.h2_response(status)
            else:
                self.metrics.response(status)
        self.metrics.recent.request(conn.identity)  # the status page's recent clients
        if self.config.access_log:
            self.log.access(
                access_record(
                    client=conn.client_ip,
                    identity=conn.identity,
                    decision=conn.decision if verdict is None else verdict.decision,
                    route=_route_name(verdict or conn.fixed),
                    method=method,
                    target=target,
                    status=status,
                    size=size,
                    seconds=seconds,
                    note=note,
                    protocol=protocol,
                )
            )


def _route_name(verdict: Verdict | None) -> str:
    return verdict.route.name if verdict is not None and verdict.route is not None else "-"


class Connection(UpstreamOwner):
    """A verified client connection: identity and decision fixed for its whole life.

    Its upstream link is its own (TCP mode, or HTTP without a pool) or taken from the
    pool for as long as requests are in flight, then parked (HTTP mode).
    """

    def __init__(self, ctx: ConnContext, state: GatewayState) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.state = state
        self.client_ip = "-"
        self.transport: TLSStream | None = None
        self.identity: PeerIdentity | None = None
        self.decision: Decision | None = None
        self.header_block = b""
        self.caller = Caller(None)
        self.fixed: Verdict | None = None  # the verdict of every request (a site without routes)
        self.refused_name: bytes | None = None  # an SNI no server answers (unknown_server)
        self.upstream: UpstreamLink | None = None
        self.upstream_address = ctx.config.upstream  # where the link goes (a route may switch)
        pool = ctx.pool
        self.pool = pool if pool is not None and pool.keepalive else None
        self.parked = False  # our link waits in the pool; another client may take it
        self.pending: list[bytes] | None = None  # bytes for the upstream while it connects
        self.closing = False
        self.draining = False  # the gateway is stopping: finish what is in flight, then close
        self.upstream_full = False  # the workload pushes back: client reading is paused
        self.last_activity = self.loop.time()

    # -- what the TLS stream calls ------------------------------------------------------------
    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.transport is not None:
            self.ctx.closed(self)
        link, self.upstream = self.upstream, None
        if link is not None:
            if self.parked:
                link.orphan()  # it stays parked for other clients
            else:
                link.discard()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # -- lifecycle -------------------------------------------------------------------------
    def begin(self, transport: TLSStream, admission: Admission, caller: Caller) -> None:
        """Start serving after a successful handshake and the admission verdict.

        Args:
            transport: the TLS stream.
            admission: identity, decision and header block of a verified client.
            caller: who it is for the routes (a verified client, none, or a certificate
                that did not verify).
        """
        self.transport = transport
        self.write = transport.write
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) else "unix"
        self.identity = admission.identity
        self.caller = caller
        self.fixed = self.state.site.fixed(caller)
        self.decision = self.fixed.decision if self.fixed is not None else admission.decision
        self.header_block = admission.header_block
        if self.fixed is not None and self.fixed.route is not None:
            self.point_at(self.fixed.route.upstream)  # a server's own workload
        self.last_activity = self.loop.time()
        self.on_begin()

    def close(self) -> None:
        """Close the client side (pending writes are flushed) and an unparked upstream."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None and not self.parked:
            link, self.upstream = self.upstream, None
            link.discard()

    def shutdown(self) -> None:
        """The gateway stops: close now if nothing is in flight, else after it is done."""
        self.draining = True
        if self.idle:
            self.close()

    @property
    def idle(self) -> bool:
        """True when nothing is in flight: a shutdown may close it at once."""
        return True

    def deny(
        self,
        method: bytes,
        target: bytes,
        size: int = 0,
        *,
        status: int | None = None,
        protocol: str = H1,
        verdict: Verdict | None = None,
    ) -> None:
        """Count and log a client refused by policy, revocation or its certificate.

        Args:
            method: the request's method, or b"-" in TCP mode (no HTTP status then).
            target: the request target, or b"-".
            size: the bytes of the 403 body sent (0 in TCP mode).
            status: the status answered when it is not 403 (a gRPC error is a 200).
            protocol: "HTTP/1.1", "HTTP/2" or "TCP", as the access line names it.
            verdict: the route's verdict (the connection's decision otherwise).
        """
        decision = self.decision if verdict is None else verdict.decision
        code = (decision.rule if decision is not None else "") or "no_rule_matched"
        self.ctx.metrics.denied.labels(code).inc()
        self.ctx.metrics.recent.denied(code, self.identity, self.caller.presented, self.client_ip)
        if status is None:
            status = REFUSALS["denied"].status.value if method != b"-" else 0
        note = decision.reason if decision else ""
        self.ctx.access(
            self, method, target, status, size, 0.0, note=note, protocol=protocol, verdict=verdict
        )

    # -- the upstream link -----------------------------------------------------------------
    def use_address(self, address: UpstreamAddress) -> bool:
        """Send the next request to `address` (a route's upstream), if the link allows.

        Returns:
            False while requests are in flight on a link to another workload (pipelined
            requests for two upstreams): the caller stops reading requests then.
        """
        if address == self.upstream_address:
            return True
        if not self.idle or self.pending is not None:
            return False  # requests in flight (or a link being opened) for the other one
        link = self.upstream
        if link is not None:
            if self.parked:
                link.orphan()  # it stays in its pool for other clients
            else:
                link.discard()
            self.upstream, self.parked = None, False
        self.point_at(address)
        return True

    def point_at(self, address: UpstreamAddress) -> None:
        """Open links to `address` from now on (its pool, in HTTP mode)."""
        self.upstream_address = address
        if self.ctx.pool is not None:  # HTTP mode: pooled links
            pool = self.ctx.upstreams.pool(address)
            self.pool = pool if pool.keepalive else None

    def use_upstream(self) -> bool:
        """Have a link for the next request: our own, a parked one, or a new one.

        Returns:
            True when the link was used before (it may have been closed by the workload
            meanwhile: a request on it may be retried once).
        """
        link = self.upstream
        if link is not None:
            if not self.parked:
                return link.reused  # already ours (pipelining), or being connected
            self.parked = False
            if self.pool is not None and self.pool.unpark(link):
                return True
            self.upstream = None  # gone stale while parked
        if self.pending is not None:
            return False  # being connected
        if self.pool is not None:
            link = self.pool.take(self)
            if link is not None:
                self.upstream = link
                return True
        self.connect_upstream()
        return False

    def park_upstream(self) -> None:
        """Nothing is in flight: let other clients use our link until we need it again."""
        link = self.upstream
        if link is None or self.pending is not None or self.pool is None:
            return  # without a pool the link stays ours
        self.parked = True
        self.pool.park(link, self.loop.time())

    def drop_upstream(self) -> None:
        """The link cannot carry another request (the workload said close, or lost step)."""
        link, self.upstream = self.upstream, None
        self.parked = False
        if link is not None:
            link.discard()

    def upstream_taken(self) -> None:
        self.upstream = None
        self.parked = False

    def connect_upstream(self) -> None:
        """Open a new upstream connection; bytes sent meanwhile wait in `pending`."""
        self.pending = []
        if self.transport is not None:
            self.transport.pause_reading()
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        ctx = self.ctx
        address = self.upstream_address
        timeout = ctx.config.limits.upstream_connect_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                if address.scheme == "unix":
                    await self.loop.create_unix_connection(lambda: self._made(), address.path)
                else:
                    await self.loop.create_connection(
                        lambda: self._made(), address.host, address.port
                    )
        except (OSError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            ctx.metrics.upstream_errors.labels(kind).inc()
            ctx.event(
                "upstream_error",
                f"cannot reach upstream {address}: {exc or 'timed out'}",
                level="warning",
            )
            self.upstream_failed(kind)
            return
        if self.closing:
            self.drop_upstream()
            self.pending = None
            return
        upstream = self.upstream
        assert upstream is not None and upstream.transport is not None  # noqa: S101
        pending, self.pending = self.pending or [], None
        if pending:
            upstream.transport.write(b"".join(pending))
        self.resume_client()

    def _made(self) -> UpstreamLink:
        self.upstream = UpstreamLink(self.pool, self)
        return self.upstream

    def resume_client(self) -> None:
        """Read from the client again, unless something else still holds it paused."""
        if (
            self.transport is not None
            and not self.closing
            and self.pending is None
            and not self.upstream_full
            and not self.holding()
        ):
            self.transport.resume_reading()

    def send_upstream(self, data: bytes) -> None:
        """Write to the workload, or queue while the connection is being opened."""
        if self.pending is not None:
            self.pending.append(data)
        elif self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)

    # -- for subclasses --------------------------------------------------------------------
    def holding(self) -> bool:
        """True while the subclass keeps client reading paused for its own reason."""
        return False

    def on_begin(self) -> None:
        """Called once the connection is verified."""

    def from_upstream(self, data: bytes) -> None:
        """Bytes from the workload."""
        raise NotImplementedError

    def upstream_lost(self, exc: Exception | None) -> None:
        """The workload closed its side."""
        self.close()

    def upstream_failed(self, kind: str) -> None:
        """The workload could not be reached."""
        self.close()

    def check(self, now: float) -> None:
        """Called about twice a second by the gateway's sweeper: enforce timeouts."""
        limits = self.ctx.config.limits
        if now - self.last_activity > limits.idle_timeout.total_seconds():
            self.ctx.event("idle_timeout", f"{self.client_ip}: idle, closed", level="debug")
            self.close()
