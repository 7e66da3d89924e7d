"""One client connection after its handshake, and its upstream link: shared by HTTP and TCP."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from mtlskit.identity import PeerIdentity
from mtlskit.policy import Decision

if TYPE_CHECKING:
    from mtlskit.gateway.server import Gateway
    from mtlskit.gateway.state import GatewayState
    from mtlskit.gateway.tls import TLSStream

__all__ = ["Connection", "UpstreamProtocol"]


class UpstreamProtocol(asyncio.Protocol):
    """The workload side of one client connection; everything is relayed to `conn`."""

    __slots__ = ("conn", "data_received", "transport")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        # Bytes from the workload go straight to the connection: one call less per chunk
        # (the loop looks data_received up once, when the protocol is set).
        self.data_received = conn.from_upstream  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def eof_received(self) -> bool:
        return False  # close; connection_lost tells the client side

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.upstream_lost(exc)

    # Backpressure: if the workload cannot keep up, stop reading from the client.
    def pause_writing(self) -> None:
        self.conn.upstream_full = True
        if self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.conn.upstream_full = False
        self.conn.resume_client()


class Connection(asyncio.Protocol):
    """A verified client connection: identity and decision fixed for its whole life."""

    def __init__(self, gateway: Gateway, state: GatewayState) -> None:
        self.gateway = gateway
        self.loop = gateway.loop
        self.state = state
        self.client_ip = "-"
        self.transport: TLSStream | None = None
        self.identity: PeerIdentity | None = None
        self.decision: Decision | None = None
        self.upstream: UpstreamProtocol | None = None
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
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

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
        """Close the client side (pending writes are flushed) and the upstream."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def connect_upstream(self) -> None:
        """Open the upstream connection; bytes sent meanwhile wait in `pending`."""
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
            self.close()
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

    def _made(self) -> UpstreamProtocol:
        self.upstream = UpstreamProtocol(self)
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
