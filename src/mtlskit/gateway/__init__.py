"""The mTLS gateway: an asyncio reverse proxy that requires, verifies and forwards identity."""

from __future__ import annotations

from mtlskit.gateway.listen import bind_listener
from mtlskit.gateway.run import run_gateway_process
from mtlskit.gateway.server import Gateway

__all__ = ["Gateway", "bind_listener", "run_gateway_process"]
