"""PKCS#12 export in two profiles: modern (AES-256 + PBKDF2) and legacy (3DES + SHA-1 MAC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import (
    KeySerializationEncryption,
    PrivateFormat,
    pkcs12,
)

from mtlskit.pki.keys import PrivateKey

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "P12_PROFILES",
    "P12Profile",
    "password_warning",
    "to_pkcs12",
]

P12Profile = Literal["modern", "legacy"]
P12_PROFILES: Final[tuple[P12Profile, ...]] = get_args(P12Profile)

# modern: PBES2/AES-256-CBC with PBKDF2-HMAC-SHA256 and a SHA-256 MAC, what OpenSSL 3
# writes by default (at 2,048 rounds; we use more). Read by OpenSSL 3, curl, NSS (Chrome,
# Firefox), Windows 10 1709+, macOS 14+, Java 8u301+.
_MODERN_KDF_ROUNDS: Final = 200_000
# legacy: pbeWithSHA1And3-KeyTripleDES-CBC for key and certificates and a SHA-1 MAC, for
# Windows before 10 1709, macOS Keychain before 14 and Java before 8u301, which refuse
# PBES2. 2,048 rounds is what `openssl pkcs12 -export -legacy` writes and those importers
# are known to take.
_LEGACY_KDF_ROUNDS: Final = 2_048

# cryptography fixes the PKCS#12 MAC at 2,048 iterations whatever kdf_rounds says
# (pyca/cryptography#9644). The MAC is checked with the password alone, so an attacker
# holding the file guesses against those 2,048 iterations, not the KDF's 200,000: only a
# long random password protects the key. 16 characters of a random base64 alphabet carry
# about 96 bits.
MIN_PASSWORD_LENGTH: Final = 16


def _encryption(profile: P12Profile, password: bytes) -> KeySerializationEncryption:
    builder = PrivateFormat.PKCS12.encryption_builder()
    if profile == "legacy":
        return (
            builder.kdf_rounds(_LEGACY_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - what the old importers verify
            .build(password)
        )
    return (
        builder.kdf_rounds(_MODERN_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )


def to_pkcs12(
    name: str,
    key: PrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: bytes,
    *,
    profile: P12Profile = "modern",
) -> bytes:
    """Bundle a key, its certificate and the intermediates, encrypted with the password.

    Args:
        name: the friendly name importers show.
        key: the leaf's private key.
        cert: the leaf.
        chain: intermediates, leaf's issuer first (the root stays out).
        password: encrypts key and certificates and keys the MAC.
        profile: "modern" (AES-256-CBC, PBKDF2, SHA-256 MAC) or "legacy" (3DES, SHA-1
            MAC) for importers that predate PBES2.

    Raises:
        ValueError: an unknown profile.
    """
    if profile not in P12_PROFILES:
        raise ValueError(f"unknown PKCS#12 profile {profile!r}: one of {', '.join(P12_PROFILES)}")
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, list(chain) or None, _encryption(profile, password)
    )


def password_warning(password: bytes) -> str | None:
    """Why a PKCS#12 password is too short to protect the key, or None when it is not.

    The file's MAC is fixed at 2,048 iterations (pyca/cryptography#9644), so a short
    password is cheap to guess offline by anyone who gets the file.
    """
    if len(password) >= MIN_PASSWORD_LENGTH:
        return None
    return (
        f"the PKCS#12 password has {len(password)} characters: the file's MAC uses only "
        "2,048 iterations (fixed by cryptography, pyca/cryptography#9644), so anyone holding "
        f"the file can guess a short password offline; use {MIN_PASSWORD_LENGTH} or more random "
        "characters, or leave out --p12-password-file to have one generated"
    )
