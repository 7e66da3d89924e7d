"""PKCS#12 export with modern encryption (AES-256 + SHA-256, OpenSSL 3 and curl read it)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from mtlskit.pki.keys import PrivateKey

__all__ = ["to_pkcs12"]

# PBES2/AES-256-CBC with a SHA-256 MAC: what OpenSSL 3 writes by default. The legacy
# RC2/3DES scheme is readable by older Java and macOS, but it is weak.
_KDF_ROUNDS = 200_000


def to_pkcs12(
    name: str,
    key: PrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: bytes,
) -> bytes:
    """Bundle a key, its certificate and the intermediates, encrypted with the password."""
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, list(chain) or None, encryption
    )
