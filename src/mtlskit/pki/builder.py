"""Build certificates and CRLs from a profile: pure, with `now` and the serial passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mtlskit.durations import format_duration
from mtlskit.errors import IssuanceError
from mtlskit.pki.keys import PrivateKey, PublicKey, signing_hash
from mtlskit.pki.profiles import Profile

__all__ = [
    "BACKDATE",
    "Validity",
    "build_certificate",
    "crl_distribution_points",
    "make_name",
    "plan_validity",
]

# Start validity a little in the past so a peer whose clock runs slightly behind still
# accepts a certificate issued a moment ago (step-ca and cfssl do the same).
BACKDATE = timedelta(minutes=5)

_KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


@dataclass(frozen=True, slots=True)
class Validity:
    """The validity window chosen for a certificate, and why it may be shorter than asked."""

    not_before: datetime
    not_after: datetime
    capped: bool
    note: str


def plan_validity(
    now: datetime,
    requested: timedelta,
    issuer_not_after: datetime | None,
    issuer_not_before: datetime | None = None,
) -> Validity:
    """Choose notBefore/notAfter; a certificate never outlives its issuer.

    Args:
        now: the issuing time (timezone-aware).
        requested: the lifetime asked for; must be positive.
        issuer_not_after: the issuing CA's expiry, or None for a self-signed root.
        issuer_not_before: the issuing CA's start; the backdated start never precedes it.

    Raises:
        IssuanceError: the lifetime is not positive or the issuer has already expired.
    """
    if requested <= timedelta(0):
        raise IssuanceError(
            f"validity {format_duration(requested)} is not positive", "give e.g. --validity 90d"
        )
    not_before = now - BACKDATE
    if issuer_not_before is not None and not_before < issuer_not_before:
        not_before = issuer_not_before  # a leaf cannot be valid before its issuer
    not_after = now + requested
    if issuer_not_after is None or not_after <= issuer_not_after:
        return Validity(not_before, not_after, False, "")
    if issuer_not_after <= now:
        raise IssuanceError(
            f"the issuing CA expired on {issuer_not_after:%Y-%m-%d %H:%M}Z",
            "create a new CA with 'mtlskit ca init' in a new directory",
        )
    note = (
        f"validity capped to {issuer_not_after:%Y-%m-%d %H:%M}Z "
        f"({format_duration(issuer_not_after - now)}): a certificate cannot outlive its issuing CA"
    )
    return Validity(not_before, issuer_not_after, True, note)


def make_name(
    common_name: str, organization: str | None = None, unit: str | None = None
) -> x509.Name:
    """Build a subject Name from CN, O and OU (empty parts are left out)."""
    if not common_name.strip():
        raise IssuanceError("the certificate name (CN) is empty", "give a non-empty NAME")
    if len(common_name.encode("utf-8")) > 64:
        raise IssuanceError(
            f"the name {common_name!r} is longer than 64 bytes (X.509 ub-common-name)",
            "use a shorter NAME and put long identities in --san",
        )
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def crl_distribution_points(urls: Sequence[str]) -> x509.CRLDistributionPoints:
    """One distribution point naming every URL (mirrors of the same CRL, RFC 5280 4.2.1.13).

    Raises:
        IssuanceError: a URL that is not http:// or https:// with a host.
    """
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IssuanceError(
                f"--crl-url {url!r} is not an http:// URL with a host",
                "give the URL peers fetch the CRL from, e.g. http://ca.example.com/crl "
                "(plain HTTP is usual: the CRL is signed)",
            )
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in urls],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


def _key_usage(bits: frozenset[str]) -> x509.KeyUsage:
    values = {field: field in bits for field in _KEY_USAGE_FIELDS}
    return x509.KeyUsage(**values)


def build_certificate(
    *,
    profile: Profile,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    validity: Validity,
    serial: int,
    sans: Sequence[x509.GeneralName] = (),
    crl_urls: Sequence[str] = (),
) -> x509.Certificate:
    """Sign a certificate whose extensions come from the profile alone.

    Args:
        profile: decides basic constraints, key usage and EKU.
        subject: the subject name.
        public_key: the key being certified.
        issuer: the issuing CA certificate, or None for a self-signed root.
        issuer_key: the key that signs (the subject's own key for a root).
        validity: from plan_validity().
        serial: a unique positive serial of at least 64 random bits.
        sans: subjectAltName entries (required by leaf profiles).
        crl_urls: where the issuer publishes its CRL: a CRL Distribution Points
            extension for leaves (CA certificates are left without one).

    Raises:
        IssuanceError: the profile needs a SAN and none was given.
    """
    if profile.requires_san and not sans:
        raise IssuanceError(
            f"a {profile.name} certificate needs at least one --san",
            "add --san with a DNS name, IP, URI (spiffe://...) or email",
        )
    usage = profile.key_usage
    if isinstance(public_key, rsa.RSAPublicKey):
        usage = usage | profile.rsa_extra_key_usage
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
        .add_extension(
            x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length),
            critical=True,
        )
        .add_extension(_key_usage(usage), critical=True)
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
    if profile.extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False
        )
    if sans:
        # RFC 5280 4.2.1.6: critical only when the subject is empty; ours never is.
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if crl_urls and not profile.is_ca:
        builder = builder.add_extension(crl_distribution_points(crl_urls), critical=False)
    return builder.sign(issuer_key, signing_hash(issuer_key))
