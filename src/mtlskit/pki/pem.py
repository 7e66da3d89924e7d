"""Read certificates, keys, CSRs and CRLs from bytes (PEM, DER, PKCS#12) with errors that help."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from mtlskit.errors import CertificateLoadError, KeyPasswordError
from mtlskit.pki.keys import PrivateKey

__all__ = [
    "Bundle",
    "certs_to_pem",
    "key_matches_certificate",
    "load_bundle",
    "load_certificates",
    "load_crl",
    "load_csr",
    "load_private_key",
    "private_key_to_pem",
]

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_END = re.compile(rb"-----END ([A-Z0-9 ]+)-----")
_CERT_HINT = "expected a PEM certificate bundle (-----BEGIN CERTIFICATE-----), DER or PKCS#12"


@dataclass(frozen=True, slots=True)
class Bundle:
    """What one file held: certificates in file order, and a private key if it had one."""

    certificates: tuple[x509.Certificate, ...]
    key: PrivateKey | None
    kind: str  # "PEM", "DER" or "PKCS#12"


def _pem_check(data: bytes, path: Path | str | None, label: bytes) -> None:
    """Explain truncated or mislabelled PEM before cryptography's terse errors."""
    begins = _BLOCK.findall(data)
    ends = _END.findall(data)
    if len(ends) < len(begins):
        raise CertificateLoadError(
            path,
            f"PEM block '{begins[-1].decode()}' is truncated (no -----END line)",
            "the file was cut short; copy it again in full",
        )
    if label not in begins:
        found = ", ".join(sorted({b.decode() for b in begins})) or "no PEM blocks"
        raise CertificateLoadError(
            path,
            f"no '{label.decode()}' PEM block (found {found})",
            _CERT_HINT if label == b"CERTIFICATE" else f"give a file with a {label.decode()}",
        )


def load_certificates(data: bytes, path: Path | str | None = None) -> list[x509.Certificate]:
    """Load every certificate in a PEM bundle or one DER certificate.

    Raises:
        CertificateLoadError: nothing usable, truncated or corrupt data.
    """
    if b"-----BEGIN" in data:
        _pem_check(data, path, b"CERTIFICATE")
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise CertificateLoadError(
                path, f"a certificate in the PEM bundle is corrupt ({exc})", _CERT_HINT
            ) from exc
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateLoadError(
            path, "not a certificate (neither PEM nor DER)", _CERT_HINT
        ) from exc


def _is_pkcs12(data: bytes) -> bool:
    # A PFX is a DER SEQUENCE whose first element is INTEGER 3 (the version).
    return data[:1] == b"\x30" and b"\x02\x01\x03" in data[:8]


def load_bundle(
    data: bytes, path: Path | str | None = None, *, password: bytes | None = None
) -> Bundle:
    """Load a PEM bundle (certificates, optionally a key), a DER certificate or a PKCS#12.

    Raises:
        CertificateLoadError: unreadable data.
        KeyPasswordError: a PKCS#12 whose password is missing or wrong.
    """
    if b"-----BEGIN" not in data and _is_pkcs12(data):
        try:
            p12 = pkcs12.load_pkcs12(data, password)
        except ValueError as exc:
            if password is None:
                raise KeyPasswordError(
                    f"{path}: the PKCS#12 file is password-protected",
                    "pass the password with --password-file FILE",
                ) from exc
            raise KeyPasswordError(
                f"{path}: wrong password for the PKCS#12 file (or the file is corrupt)",
                "check the file given to --password-file",
            ) from exc
        certs: list[x509.Certificate] = []
        if p12.cert is not None:
            certs.append(p12.cert.certificate)
        certs.extend(c.certificate for c in p12.additional_certs)
        key = (
            p12.key
            if isinstance(
                p12.key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
            )
            else None
        )
        return Bundle(tuple(certs), key, "PKCS#12")
    if b"-----BEGIN" in data:
        key = None
        if b"PRIVATE KEY-----" in data:
            key = load_private_key(data, path, password=password)
        return Bundle(tuple(load_certificates(data, path)), key, "PEM")
    return Bundle(tuple(load_certificates(data, path)), None, "DER")


def load_private_key(
    data: bytes, path: Path | str | None = None, *, password: bytes | None = None
) -> PrivateKey:
    """Load a PEM private key (PKCS#8, traditional; encrypted when a password is given).

    Raises:
        KeyPasswordError: the key is encrypted and the password is missing or wrong.
        CertificateLoadError: the data is not a private key we support.
    """
    encrypted = b"ENCRYPTED" in data
    if b"-----BEGIN" in data:
        _pem_check(data, path, b"ENCRYPTED PRIVATE KEY" if encrypted else _key_label(data))
    try:
        key = serialization.load_pem_private_key(data, password if encrypted else None)
    except UnsupportedAlgorithm as exc:
        raise CertificateLoadError(
            path,
            f"a private key of a kind TLS peers refuse ({exc})",
            "make a new ec-p256 key and certificate (mtlskit ca issue, or openssl req "
            "-newkey ec -pkeyopt ec_paramgen_curve:P-256)",
        ) from exc
    except TypeError as exc:
        raise KeyPasswordError(
            f"{path}: the private key is encrypted and no password was given",
            "pass the CA password with --password-file FILE",
        ) from exc
    except ValueError as exc:
        if encrypted:
            raise KeyPasswordError(
                f"{path}: wrong password for the private key",
                "check the file given to --password-file (a trailing newline is ignored)",
            ) from exc
        raise CertificateLoadError(
            path, f"not a readable private key ({exc})", "expected a PEM private key"
        ) from exc
    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise CertificateLoadError(
            path, f"{type(key).__name__} keys are not supported", "use EC, RSA or Ed25519 keys"
        )
    return key


def _key_label(data: bytes) -> bytes:
    for label in _BLOCK.findall(data):
        if label.endswith(b"PRIVATE KEY"):
            return bytes(label)
    return b"PRIVATE KEY"


def load_csr(data: bytes, path: Path | str | None = None) -> x509.CertificateSigningRequest:
    """Load a PEM or DER certificate signing request.

    Raises:
        CertificateLoadError: the data is not a CSR.
    """
    hint = "expected a PEM CSR (-----BEGIN CERTIFICATE REQUEST-----), e.g. from 'openssl req -new'"
    try:
        if b"-----BEGIN" in data:
            _pem_check(data, path, b"CERTIFICATE REQUEST")
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CertificateLoadError(path, f"not a readable CSR ({exc})", hint) from exc


def load_crl(data: bytes, path: Path | str | None = None) -> x509.CertificateRevocationList:
    """Load a PEM or DER certificate revocation list.

    Raises:
        CertificateLoadError: the data is not a CRL.
    """
    hint = "expected a CRL (-----BEGIN X509 CRL-----), e.g. from 'mtlskit ca crl'"
    try:
        if b"-----BEGIN" in data:
            _pem_check(data, path, b"X509 CRL")
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CertificateLoadError(path, f"not a readable CRL ({exc})", hint) from exc


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when the private key belongs to the certificate's public key."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(key.public_key().public_bytes(enc, fmt) == cert.public_key().public_bytes(enc, fmt))


def certs_to_pem(certs: Sequence[x509.Certificate]) -> bytes:
    """Concatenate certificates as PEM, in the order given."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a password is given."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
