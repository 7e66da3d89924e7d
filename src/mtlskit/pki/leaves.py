"""What a leaf request becomes: subject, SANs, key and notes on what was decided (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from mtlskit.errors import IssuanceError
from mtlskit.pki.builder import make_name
from mtlskit.pki.csr import review_csr
from mtlskit.pki.keys import KeyType, PrivateKey, PublicKey, generate_key
from mtlskit.pki.names import describe_general_name, parse_san, parse_sans
from mtlskit.pki.profiles import LEAF_PROFILES, Profile

__all__ = ["ED25519_NOTE", "LeafRequest", "csr_request", "new_key_request"]

ED25519_NOTE = (
    "Ed25519 leaves work with OpenSSL peers (curl, nginx, the mtlskit gateway) but WebPKI "
    "verifiers (browsers, Go, cryptography and so 'mtlskit cert verify') refuse them; "
    "use ec-p256 unless every peer is OpenSSL-based"
)


@dataclass(frozen=True, slots=True)
class LeafRequest:
    """A leaf ready to sign: everything but the serial, the validity and the issuer.

    Attributes:
        profile: the leaf profile, which alone decides the extensions.
        subject: the subject name.
        public_key: the key the certificate certifies.
        private_key: its private half when the CA made the key; None for a CSR.
        sans: the subjectAltNames, never empty.
        notes: what was decided on the caller's behalf, one line each.
    """

    profile: Profile
    subject: x509.Name
    public_key: PublicKey
    private_key: PrivateKey | None
    sans: tuple[x509.GeneralName, ...]
    notes: tuple[str, ...]


def _default_san(name: str, profile: Profile) -> tuple[x509.GeneralName, str]:
    try:
        san = parse_san(name)
    except IssuanceError as exc:
        raise IssuanceError(
            f"a {profile.name} certificate needs a subjectAltName and {name!r} is not a DNS name",
            "add --san (a DNS name, IP, spiffe:// URI or email)",
        ) from exc
    note = (
        f"no --san given: added {describe_general_name(san)} "
        "(verifiers match SANs, and cryptography's client verifier requires one)"
    )
    return san, note


def new_key_request(
    profile: Profile,
    name: str,
    sans: Sequence[str],
    *,
    key_type: KeyType,
    organization: str | None,
    unit: str | None,
) -> LeafRequest:
    """A leaf for a new key of key_type, named CN=name; name is the SAN when sans is empty.

    Raises:
        IssuanceError: a SAN does not parse, or there is none and name is not a DNS name.
    """
    subject = make_name(name, organization, unit)
    notes: tuple[str, ...] = ()
    parsed = tuple(parse_sans(sans))
    if not parsed:
        san, note = _default_san(name, profile)
        parsed, notes = (san,), (note,)
    if key_type == "ed25519":
        notes = (*notes, ED25519_NOTE)
    key = generate_key(key_type)
    return LeafRequest(profile, subject, key.public_key(), key, parsed, notes)


def csr_request(
    csr: x509.CertificateSigningRequest, profile: str, extra_sans: Sequence[str]
) -> LeafRequest:
    """A leaf for a CSR's key: its names reviewed against the profile, extra_sans added.

    Raises:
        IssuanceError: profile is not a leaf profile, or no subjectAltName is left.
        CSRError: bad signature, weak key, no usable name.
    """
    if profile not in LEAF_PROFILES:
        raise IssuanceError(f"--profile {profile!r} is not a leaf profile", "use server or client")
    chosen = LEAF_PROFILES[profile]
    review = review_csr(csr, chosen)
    sans = list(review.sans)
    for extra in parse_sans(extra_sans):
        if extra not in sans:
            sans.append(extra)
    if not sans:
        raise IssuanceError(
            f"the CSR has no subjectAltName and a {chosen.name} certificate needs one",
            "pass --san NAME (a DNS name, IP, spiffe:// URI or email)",
        )
    notes = tuple(f"dropped from the CSR: {d}" for d in review.dropped)
    return LeafRequest(chosen, review.subject, review.public_key, None, tuple(sans), notes)
