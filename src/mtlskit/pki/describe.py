"""Describe certificates for people and JSON: role, names, usages, time left, chain order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtlskit.durations import format_duration
from mtlskit.pki.keys import describe_public_key
from mtlskit.pki.names import describe_general_name
from mtlskit.pki.serials import format_serial

__all__ = ["CertificateInfo", "ChainNode", "arrange_chain", "describe_certificate", "eku_name"]

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}
_KU_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


def eku_name(oid: x509.ObjectIdentifier) -> str:
    """serverAuth, clientAuth, ... or the dotted OID."""
    return _EKU_NAMES.get(oid, oid.dotted_string)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """Everything `cert inspect` shows about one certificate."""

    role: str  # root | intermediate | server | client | leaf
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    remaining: str  # "89d 23h left", "expired 2d ago", "starts in 1h"
    expired: bool
    sans: list[str]
    key: str
    is_ca: bool | None
    path_length: int | None
    key_usage: list[str]
    extended_key_usage: list[str]
    signature_algorithm: str
    self_signed: bool
    fingerprint_sha256: str
    crl_urls: list[str]  # the CRL Distribution Points' URIs, [] without the extension

    def to_json(self) -> dict[str, Any]:
        """A plain dict for --json (stable key names)."""
        return asdict(self)


def _ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension: show the certificate anyway
        return None


def _role(cert: x509.Certificate, is_ca: bool | None, ekus: list[str]) -> str:
    if is_ca:
        return "root" if cert.issuer == cert.subject else "intermediate"
    if "serverAuth" in ekus and "clientAuth" not in ekus:
        return "server"
    if "clientAuth" in ekus and "serverAuth" not in ekus:
        return "client"
    return "leaf"


def describe_certificate(cert: x509.Certificate, now: datetime) -> CertificateInfo:
    """Collect what a person checks first about a certificate, at time `now`."""
    bc = _ext(cert, x509.BasicConstraints)
    ku = _ext(cert, x509.KeyUsage)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    san = _ext(cert, x509.SubjectAlternativeName)
    cdp = _ext(cert, x509.CRLDistributionPoints)
    ekus = [eku_name(o) for o in eku] if eku is not None else []
    usages: list[str] = []
    if ku is not None:
        usages = [label for field, label in _KU_NAMES.items() if getattr(ku, field)]
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > end:
        remaining = f"expired {format_duration(now - end)} ago"
    elif now < start:
        remaining = f"not valid yet: starts in {format_duration(start - now)}"
    else:
        remaining = f"{format_duration(end - now)} left"
    sig = cert.signature_algorithm_oid._name
    return CertificateInfo(
        role=_role(cert, bc.ca if bc is not None else None, ekus),
        subject=cert.subject.rfc4514_string() or "(empty)",
        issuer=cert.issuer.rfc4514_string() or "(empty)",
        serial=format_serial(cert.serial_number),
        not_before=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        not_after=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        remaining=remaining,
        expired=now > end,
        sans=[describe_general_name(n) for n in san] if san is not None else [],
        key=describe_public_key(cert.public_key()),
        is_ca=bc.ca if bc is not None else None,
        path_length=bc.path_length if bc is not None else None,
        key_usage=usages,
        extended_key_usage=ekus,
        signature_algorithm=str(sig),
        self_signed=cert.issuer == cert.subject,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        crl_urls=[str(n.value) for dp in cdp or [] for n in dp.full_name or []],
    )


@dataclass(frozen=True, slots=True)
class ChainNode:
    """A certificate at its place in a tree: depth 0 has no issuer among the others."""

    certificate: x509.Certificate
    depth: int


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    aki = _ext(child, x509.AuthorityKeyIdentifier)
    ski = _ext(parent, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki.key_identifier is not None:
        return bool(aki.key_identifier == ski.digest)
    return True


def arrange_chain(certs: Sequence[x509.Certificate]) -> list[ChainNode]:
    """Order certificates as a tree from the top issuer down (name and key-id links).

    Certificates with no issuer among the others are tops; each certificate is listed
    once, under the first certificate that issued it.
    """
    remaining = list(certs)
    parent_of: dict[int, int] = {}
    for i, child in enumerate(remaining):
        if child.issuer == child.subject:
            continue
        for j, parent in enumerate(remaining):
            if i != j and _issued_by(child, parent):
                parent_of[i] = j
                break
    out: list[ChainNode] = []
    seen: set[int] = set()

    def walk(index: int, depth: int) -> None:
        if index in seen:
            return
        seen.add(index)
        out.append(ChainNode(remaining[index], depth))
        for child, parent in parent_of.items():
            if parent == index:
                walk(child, depth + 1)

    for index in range(len(remaining)):
        if index not in parent_of:
            walk(index, 0)
    for index in range(len(remaining)):  # a cycle of cross-signed certificates
        walk(index, 0)
    return out
