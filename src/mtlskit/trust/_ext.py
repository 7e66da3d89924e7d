"""Read one extension of a certificate or CRL without ever raising (absent or unreadable)."""

from __future__ import annotations

from typing import TypeVar

from cryptography import x509

__all__ = ["UNREADABLE", "extension"]

_E = TypeVar("_E", bound=x509.ExtensionType)

# What parsing a peer's extensions can raise: a malformed certificate is a finding
# (code "malformed"), never a crash of the verifier.
UNREADABLE: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def extension(
    obj: x509.Certificate | x509.CertificateRevocationList | x509.RevokedCertificate,
    cls: type[_E],
) -> _E | None:
    """The extension's value, or None when it is absent or cannot be decoded."""
    try:
        return obj.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except UNREADABLE:
        return None
