"""One client connection after its handshake, and its upstream link: shared by HTTP and TCP."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mtlskit.gateway.pool import UpstreamLink, UpstreamOwner
from mtlskit.identity import PeerIdentity
from mtlskit.policy import Decision

if TYPE_CHECKING:
    from mtlskit.gateway.server import Gateway
    from mtlskit.gateway.state import GatewayState
    from mtlskit.gateway.tls import TLSStream

__all__ = ["Connection"]


class Connection(UpstreamOwner):
    """A verified client connection: identity and decision fixed for its whole life.

    Its upstream link is its own (TCP mode, or HTTP without a pool) or taken from the
    gateway's pool for as long as requests are in flight, then parked (HTTP mode).
    """

    def __init__(self, gateway: Gateway, state: GatewayState) -> None:
        self.gateway = gateway
        self.loop = gateway.loop
        self.state = state
        self.client_ip = "-"
        self.transport: TLSStream | None = None
        self.identity: PeerIdentity | None = None
        self.decision: Decision | None = None
        self.upstream: UpstreamLink | None = None
        pool = gateway.pool
        self.pool = pool if pool is not None and pool.keepalive else None
        self.parked = False  # our link waits in the pool; another client may take it
        self.pending: list[bytes] | None = None  # bytes for the upstream while it connects
        self.closing = False
        self.upstream_full = False  # the workload pushes back: client reading is paused
        self.last_activity = self.loop.time()

    # -- what the TLS stream calls ------------------------------------------------------------
    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.transport is not None:
            self.gateway.connection_closed(self)
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
    def begin(self, transport: TLSStream, identity: PeerIdentity, decision: Decision) -> None:
        """Start serving after a successful handshake and policy decision."""
        self.transport = transport
        self.write = transport.write
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) else "unix"
        self.identity = identity
        self.decision = decision
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
        if link is None or self.pending is not None:
            return
        if self.pool is None:
            return  # no pool: the link stays ours
        self.parked = True
        self.pool.park(link, self.loop.time())

    def drop_upstream(self) -> None:
        """The link cannot carry another request (the workload said close, or we lost step)."""
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
        gateway = self.gateway
        address = gateway.config.upstream
        timeout = gateway.config.limits.upstream_connect_timeout.total_seconds()
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
            gateway.metrics.upstream_errors.labels(kind).inc()
            gateway.log_event(
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

    def _made(self) -> UpstreamLink:
        self.upstream = UpstreamLink(self.pool, self)
        return self.upstream

    def send_upstream(self, data: bytes) -> None:
        """Write to the workload, or queue while the connection is being opened."""
        if self.pending is not None:
            self.pending.append(data)
        elif self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)

    @property
    def idle(self) -> bool:
        """True when nothing is in flight: a shutdown may close it at once."""
        return True

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
        """Called about once a second by the gateway's sweeper: enforce timeouts."""
        limits = self.gateway.config.limits
        if now - self.last_activity > limits.idle_timeout.total_seconds():
            self.gateway.log_event("idle_timeout", f"{self.client_ip}: idle, closed", level="debug")
            self.close()
