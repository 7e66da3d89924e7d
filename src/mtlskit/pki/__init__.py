"""The chain of trust: root and intermediate CAs, leaf profiles, CSRs, CRLs and PKCS#12."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtlskit._lazy import lazy_exports
from mtlskit.pki.keys import KEY_TYPES, KeyType
from mtlskit.pki.profiles import CLIENT, INTERMEDIATE, PROFILES, ROOT, SERVER, Profile

if TYPE_CHECKING:
    from mtlskit.pki.ca import CertificateAuthority
    from mtlskit.pki.issued import IssuedCertificate
    from mtlskit.pki.store import CertRecord

__all__ = [
    "CLIENT",
    "INTERMEDIATE",
    "KEY_TYPES",
    "PROFILES",
    "ROOT",
    "SERVER",
    "CertRecord",
    "CertificateAuthority",
    "IssuedCertificate",
    "KeyType",
    "Profile",
]

# The CA, its database and its files are the shell: importing any pure module of this
# package (names, pem, describe, ...) runs this file first, so these load on first use
# (PEP 562), not here. The pure names above stay plain imports.
_LAZY = {
    "CertificateAuthority": "mtlskit.pki.ca",
    "IssuedCertificate": "mtlskit.pki.issued",
    "CertRecord": "mtlskit.pki.store",
}

# Hidden from mypy, which would otherwise type every unknown attribute of the package as
# Any; it reads the names from the TYPE_CHECKING imports instead.
if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
