"""ACME: server certificates from an ACME CA over HTTP-01, and when to renew them.

`renewal` is pure (when a certificate is due, the back-off after failures); `client` talks
to the CA (requests, the `acme` library, an HTTP-01 responder) and writes the files. The
gateway's use of it (obtain at start, renew in the background) is `mtlskit.gateway.acme`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit._lazy import lazy_exports
from mtlskit.acme.renewal import RENEW_AT, backoff, covers, renew_due, renewal_time
from mtlskit.errors import AcmeError

if TYPE_CHECKING:
    from mtlskit.acme.client import (
        AcmeCertificate,
        AcmeSettings,
        EnsureResult,
        ensure_certificate,
        load_or_create_account_key,
        obtain_certificate,
    )

__all__ = [
    "RENEW_AT",
    "AcmeCertificate",
    "AcmeError",
    "AcmeSettings",
    "EnsureResult",
    "backoff",
    "covers",
    "ensure_certificate",
    "load_or_create_account_key",
    "obtain_certificate",
    "renew_due",
    "renewal_time",
]

# The client (requests, acme, josepy, a listening socket) loads on first use (PEP 562), not
# here: this file runs before the pure `renewal` module too, which must stay importable
# without the network stack. The pure names above stay plain imports.
_LAZY = {
    name: "mtlskit.acme.client"
    for name in (
        "AcmeCertificate",
        "AcmeSettings",
        "EnsureResult",
        "ensure_certificate",
        "load_or_create_account_key",
        "obtain_certificate",
    )
}

# Hidden from mypy, which would otherwise type every unknown attribute of the package as
# Any; it reads the names from the TYPE_CHECKING imports instead.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
