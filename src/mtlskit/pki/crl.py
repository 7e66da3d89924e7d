"""Build certificate revocation lists and name revocation reasons (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from mtlskit.errors import ConfigError
from mtlskit.pki.keys import PrivateKey, signing_hash

__all__ = ["REASONS", "Revocation", "build_crl", "parse_reason", "reason_name"]

# RFC 5280 5.3.1 names, as people and openssl write them.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked serial, when and why."""

    serial: int
    revoked_at: datetime
    reason: str


def parse_reason(text: str) -> str:
    """Normalise a reason ("keyCompromise", "key_compromise", "KEYCOMPROMISE").

    Raises:
        ConfigError: not an RFC 5280 reason.
    """
    squashed = text.replace("_", "").replace("-", "").lower()
    for name in REASONS:
        if name.lower() == squashed:
            return name
    raise ConfigError(
        f"--reason {text!r} is not a revocation reason", f"use one of: {', '.join(REASONS)}"
    )


def reason_name(flag: x509.ReasonFlags) -> str:
    """The RFC 5280 name of a ReasonFlags value."""
    for name, value in REASONS.items():
        if value == flag:
            return name
    return flag.name


def build_crl(
    *,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[Revocation],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    """Sign a CRL for the certificates the issuer has revoked.

    The CRL carries a CRL number and the issuer's key identifier, so peers can tell CRLs
    apart and find the right issuer (RFC 5280 5.2.1, 5.2.3).
    """
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for entry in revoked:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason != "unspecified":
            # RFC 5280 5.3.1: the reason code should be absent rather than "unspecified".
            item = item.add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer_key, signing_hash(issuer_key))
