"""The mTLS gateway: an asyncio reverse proxy that requires, verifies and forwards identity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit._lazy import lazy_exports

if TYPE_CHECKING:
    from mtlskit.gateway.listen import bind_listener
    from mtlskit.gateway.run import run_gateway_process
    from mtlskit.gateway.server import Gateway

__all__ = ["Gateway", "bind_listener", "run_gateway_process"]

# All three are the asyncio shell, and this file runs before any module of the package,
# the pure ones too (handshake, head, admission, access, replies): they load on first use
# (PEP 562), not here.
_LAZY = {
    "Gateway": "mtlskit.gateway.server",
    "bind_listener": "mtlskit.gateway.listen",
    "run_gateway_process": "mtlskit.gateway.run",
}

# Hidden from mypy, which would otherwise type every unknown attribute of the package as
# Any; it reads the names from the TYPE_CHECKING imports instead.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
