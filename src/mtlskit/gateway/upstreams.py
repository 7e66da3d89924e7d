"""Every workload a worker forwards to: one pool (HTTP/1.1) or h2c link per upstream address.

The top-level upstream's are made at start; a route's or a server's own upstream gets its
pool or h2c link the first time a request goes there.
"""

from __future__ import annotations

import asyncio

from mtlskit._config_kinds import UpstreamAddress
from mtlskit.config import GatewayConfig
from mtlskit.gateway.h2up import H2cUpstream
from mtlskit.gateway.pool import UpstreamPool

__all__ = ["Upstreams"]


class Upstreams:
    """The pools and h2c links of one worker, by upstream address.

    Args:
        loop: the worker's loop.
        config: the gateway's configuration (its limits, and the default upstream).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, config: GatewayConfig) -> None:
        self.loop = loop
        self.limits = config.limits
        self._pools: dict[UpstreamAddress, UpstreamPool] = {}
        self._h2c: dict[UpstreamAddress, H2cUpstream] = {}

    def pool(self, address: UpstreamAddress) -> UpstreamPool:
        """The HTTP/1.1 pool of one workload."""
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = UpstreamPool(
                address,
                keepalive=self.limits.upstream_keepalive,
                keepalive_timeout=self.limits.upstream_keepalive_timeout.total_seconds(),
            )
        return pool

    def h2c(self, address: UpstreamAddress) -> H2cUpstream:
        """The multiplexed h2c upstream of one workload."""
        link = self._h2c.get(address)
        if link is None:
            link = self._h2c[address] = H2cUpstream(
                self.loop,
                address,
                connect_timeout=self.limits.upstream_connect_timeout.total_seconds(),
            )
        return link

    def sweep(self, now: float) -> None:
        """Close parked links kept too long (every pool)."""
        for pool in self._pools.values():
            pool.sweep(now)

    def close(self) -> None:
        """Close every pool and h2c link (the worker stops)."""
        for pool in self._pools.values():
            pool.close()
        for link in self._h2c.values():
            link.close()
