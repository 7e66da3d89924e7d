"""The chain of trust: root and intermediate CAs, leaf profiles, CSRs, CRLs and PKCS#12."""

from __future__ import annotations

from mtlskit.pki.ca import CertificateAuthority
from mtlskit.pki.issued import IssuedCertificate
from mtlskit.pki.keys import KEY_TYPES, KeyType
from mtlskit.pki.profiles import CLIENT, INTERMEDIATE, PROFILES, ROOT, SERVER, Profile
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
