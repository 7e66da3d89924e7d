"""TCP mode: after the handshake and the policy check, a byte pipe both ways."""

from __future__ import annotations

from mtlskit.gateway.access import TCP
from mtlskit.gateway.connection import Connection

__all__ = ["TCPConnection"]


class TCPConnection(Connection):
    """One client's raw TCP stream to the workload (databases, brokers, anything)."""

    def on_begin(self) -> None:
        decision = self.decision
        assert decision is not None  # noqa: S101
        if not decision.allowed:
            self.deny(b"-", b"-", protocol=TCP)
            self.close()
            return
        self.connect_upstream()
        self.ctx.access(self, b"TCP", b"-", 0, 0, 0.0, note="connected", protocol=TCP)

    @property
    def idle(self) -> bool:
        return False  # a byte stream has no boundary to stop at: drain_timeout decides

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        self.send_upstream(data)

    def from_upstream(self, data: bytes) -> None:
        if self.transport is not None:
            self.last_activity = self.loop.time()
            self.write(data)
