"""Client and probe: connect with mTLS, walk the seed's nine steps, and say why it failed."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from mtlskit._lazy import lazy_exports
from mtlskit.client.codes import FAILURES, Failure
from mtlskit.client.trace import Event, Observation, Step, Trace, walk

if TYPE_CHECKING:
    from mtlskit.client.connect import ClientIdentity, ServerTrust, load_identity, system_trust
    from mtlskit.client.probe import ProbeReport, probe
    from mtlskit.client.request import RequestResult, Response, request

__all__ = [
    "FAILURES",
    "ClientIdentity",
    "Event",
    "Failure",
    "Observation",
    "ProbeReport",
    "RequestResult",
    "Response",
    "ServerTrust",
    "Step",
    "Trace",
    "load_identity",
    "probe",
    "request",
    "system_trust",
    "walk",
]

# The network half (sockets, ssl, pyOpenSSL, the CA's files) loads on first use (PEP 562),
# not here: this file runs before any module of the package, the pure ones too (trace,
# codes, tlswire, preflight). The pure names above stay plain imports.
_LAZY = {
    "ClientIdentity": "mtlskit.client.connect",
    "ServerTrust": "mtlskit.client.connect",
    "load_identity": "mtlskit.client.connect",
    "system_trust": "mtlskit.client.connect",
    "ProbeReport": "mtlskit.client.probe",
    "probe": "mtlskit.client.probe",
    "RequestResult": "mtlskit.client.request",
    "Response": "mtlskit.client.request",
    "request": "mtlskit.client.request",
}
# Names that are both a function here and a submodule (mtlskit.client.probe.probe).
_SHADOWED = frozenset(name for name, module in _LAZY.items() if module == f"{__name__}.{name}")


class _Package(types.ModuleType):
    """This package's module object: `probe` and `request` stay the functions."""

    def __setattr__(self, name: str, value: object) -> None:
        # Importing a submodule binds it on its package (importlib's _load_unlocked), so
        # once mtlskit.client.probe is loaded, `from mtlskit.client import probe` would give
        # the module. The eager import this replaces bound the function over it; skipping
        # the binding lets __getattr__ answer with the function, as before.
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

# Hidden from mypy, which would otherwise type every unknown attribute of the package as
# Any; it reads the names from the TYPE_CHECKING imports instead.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
