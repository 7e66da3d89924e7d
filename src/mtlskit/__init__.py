"""mtlskit: mutual TLS made real, from the chain of trust to the gateway and the cluster."""

from __future__ import annotations

from mtlskit.errors import MtlsKitError

__all__ = ["MtlsKitError", "__version__"]

__version__ = "0.1.0"
