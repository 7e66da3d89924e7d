"""Read one extension of a certificate or CRL without ever raising (absent or unreadable)."""

from __future__ import annotations

from typing import TypeVar

from cryptography import x509

__all__ = ["UNREADABLE", "authority_key_id", "extension", "subject_key_id"]

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


def authority_key_id(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes | None:
    """The AKI's key identifier (who signed it), or None."""
    aki = extension(obj, x509.AuthorityKeyIdentifier)
    return aki.key_identifier if aki is not None else None


def subject_key_id(cert: x509.Certificate) -> bytes | None:
    """The SKI's digest (this CA's key), or None."""
    ski = extension(cert, x509.SubjectKeyIdentifier)
    return ski.digest if ski is not None else None
