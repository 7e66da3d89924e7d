"""Upstream connections kept alive and shared by client connections (HTTP mode).

Identity headers travel in every request, never in the connection, so one upstream
connection may carry requests of many clients, one client at a time. A client connection
holds a link while it has requests in flight; when its last response is complete the link
is *parked*: still attached to that client (its next request reuses it with no work) but
free for any other client to take. At most `keepalive` links are parked, least recently
used closed first (nginx's `keepalive 64`), and a link parked longer than
`keepalive_timeout` is closed before the workload's own idle timeout can race us.
"""

from __future__ import annotations

import asyncio
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtlskit.config import UpstreamAddress

__all__ = ["UpstreamLink", "UpstreamOwner", "UpstreamPool"]


class UpstreamOwner:
    """What a link needs from the client connection it serves (implemented by Connection)."""

    transport: Any
    upstream_full: bool

    def from_upstream(self, data: bytes) -> None:
        """Bytes from the workload."""
        raise NotImplementedError

    def upstream_lost(self, exc: Exception | None) -> None:
        """The workload closed the link (or it failed)."""
        raise NotImplementedError

    def upstream_taken(self) -> None:
        """The pool gave this connection's parked link to another client."""
        raise NotImplementedError

    def resume_client(self) -> None:
        """The workload takes data again: read from the client again."""
        raise NotImplementedError


class UpstreamLink(asyncio.Protocol):
    """One connection to the workload; its bytes go to whichever client owns it now."""

    __slots__ = ("data_received", "owner", "pool", "reused", "transport")

    def __init__(self, pool: UpstreamPool | None, owner: UpstreamOwner) -> None:
        self.pool = pool
        self.owner: UpstreamOwner | None = owner
        self.transport: asyncio.Transport | None = None
        self.reused = False  # it has carried a request before (so it may have gone stale)
        # Bytes from the workload go straight to the owner: one call less per chunk. The
        # loop looks data_received up when the protocol is set: bind() sets it again.
        self.data_received = owner.from_upstream  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bind(self, owner: UpstreamOwner) -> None:
        """Serve another client from now on."""
        self.owner = owner
        self.data_received = owner.from_upstream  # type: ignore[method-assign]
        if self.transport is not None:
            self.transport.set_protocol(self)  # so the loop reads data_received again

    def eof_received(self) -> bool:
        return False  # close; connection_lost tells the owner

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pool is not None:
            self.pool.forget(self)
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.upstream_lost(exc)

    def close(self) -> None:
        """Close the connection to the workload."""
        if self.transport is not None:
            self.transport.close()

    def discard(self) -> None:
        """Close it without telling the owner (which has already let go of it)."""
        self.owner = None
        self.close()

    def orphan(self) -> None:
        """Its client is gone while it is parked: anything the workload sends now closes it."""
        self.owner = None
        self.data_received = self._unsolicited  # type: ignore[method-assign]
        if self.transport is not None:
            self.transport.set_protocol(self)

    def _unsolicited(self, data: bytes) -> None:
        self.close()  # nobody asked: the connection cannot be trusted to be in step

    @property
    def usable(self) -> bool:
        """True while the connection is open."""
        return self.transport is not None and not self.transport.is_closing()

    # Backpressure: if the workload cannot keep up, stop reading from the client.
    def pause_writing(self) -> None:
        owner = self.owner
        if owner is not None:
            owner.upstream_full = True
            if owner.transport is not None:
                owner.transport.pause_reading()

    def resume_writing(self) -> None:
        owner = self.owner
        if owner is not None:
            owner.upstream_full = False
            owner.resume_client()


class UpstreamPool:
    """The parked links of one worker, for one upstream address.

    Args:
        address: the workload.
        keepalive: how many links may wait parked at once (0: none; each client
            connection then has its own link, closed with it).
        keepalive_timeout: seconds a link may stay parked.
    """

    def __init__(
        self, address: UpstreamAddress, *, keepalive: int, keepalive_timeout: float
    ) -> None:
        self.address = address
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout
        self._parked: OrderedDict[UpstreamLink, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, link: UpstreamLink, now: float) -> None:
        """The link's client has nothing in flight: keep the link ready for anyone."""
        if not self.keepalive:
            link.close()
            return
        link.reused = True
        self._parked[link] = now  # unpark() popped it: a new key goes to the end (newest)
        transport = link.transport
        if transport is not None and not transport.is_reading():
            transport.resume_reading()  # a paused link would never see its EOF
        while len(self._parked) > self.keepalive:
            oldest, _ = self._parked.popitem(last=False)
            oldest.close()

    def unpark(self, link: UpstreamLink) -> bool:
        """The link's own client has a new request: True if the link is still its to use."""
        # A link the workload closed meanwhile has told its owner (connection_lost) and
        # left the pool: still parked means still open.
        return self._parked.pop(link, None) is not None

    def take(self, owner: UpstreamOwner) -> UpstreamLink | None:
        """A parked link for `owner`, taken from whoever parked it longest ago, or None."""
        while self._parked:
            link, _ = self._parked.popitem(last=False)
            if not link.usable:
                continue
            previous = link.owner
            if previous is not None and previous is not owner:
                previous.upstream_taken()
            link.bind(owner)
            return link
        return None

    def forget(self, link: UpstreamLink) -> None:
        """A link closed: it can no longer be handed out."""
        self._parked.pop(link, None)

    def sweep(self, now: float) -> None:
        """Close links parked longer than keepalive_timeout (called by the gateway's sweeper)."""
        while self._parked:
            link, since = next(iter(self._parked.items()))
            if now - since <= self.keepalive_timeout:
                return
            self._parked.popitem(last=False)
            link.close()

    def close(self) -> None:
        """Close every parked link (shutdown)."""
        while self._parked:
            link, _ = self._parked.popitem(last=False)
            link.close()
