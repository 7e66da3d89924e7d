"""Reason codes as data: what each failure means, the seed step it breaks, and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from cryptography import x509

__all__ = [
    "CA_ROLES",
    "REASONS",
    "STEPS",
    "Finding",
    "Purpose",
    "Reason",
    "ReasonCode",
    "display_name",
    "explain",
]

Purpose = Literal["client", "server"]
"""What the certificate must prove: "client" (we are the server checking a client's
certificate, seed step 7) or "server" (we are the client checking a server's, step 5)."""

# The seed's 9-step mTLS flow (shared/seed): where each purpose's check happens.
STEPS: Mapping[Purpose, str] = {
    "server": "step 5: the client validates the server's certificate",
    "client": "step 7: the server validates the client's certificate",
}


class ReasonCode(StrEnum):
    """Stable reason codes (documented in docs/trust.md); the values are public API."""

    OK = "ok"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNKNOWN_ISSUER = "unknown_issuer"
    MISSING_INTERMEDIATE = "missing_intermediate"
    WRONG_PURPOSE = "wrong_purpose"
    NAME_MISMATCH = "name_mismatch"
    REVOKED = "revoked"
    CRL_STALE = "crl_stale"
    ISSUER_NOT_CA = "issuer_not_ca"
    PATH_TOO_LONG = "path_too_long"
    BAD_SIGNATURE = "bad_signature"
    SELF_SIGNED_UNTRUSTED = "self_signed_untrusted"
    MALFORMED = "malformed"
    POLICY_VIOLATION = "policy_violation"
    KEY_TOO_WEAK = "key_too_weak"
    SIGNATURE_TOO_WEAK = "signature_too_weak"
    KEY_UNSUPPORTED = "key_unsupported"


# Roles (Finding.role) of certificates that issue others: their fix also covers what they
# issued, so a Reason may give them a fix of their own (Reason.ca_fix).
CA_ROLES = frozenset({"intermediate CA", "root CA", "self-signed root"})


@dataclass(frozen=True, slots=True)
class Reason:
    """How to tell a person about one reason code.

    Attributes:
        code: the stable code.
        meaning: one line for the documentation table.
        explanation: template; fields {subject}, {role}, {detail}, {purpose}.
        fix: template; the same fields.
        ca_fix: the fix when the certificate at fault is a CA (CA_ROLES); "" uses fix.
    """

    code: ReasonCode
    meaning: str
    explanation: str
    fix: str
    ca_fix: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check found: the code, the certificate it concerns, and the specifics.

    Attributes:
        code: the reason code.
        subject: the concerned certificate's subject, as display_name() gives it.
        role: "client certificate", "intermediate CA", "root CA", "CRL of ...".
        detail: the specific fact (a date, a missing name, an EKU list) for the templates.
        details: machine-readable extras for --json (revocation reason and date, ...).
    """

    code: ReasonCode
    subject: str
    role: str
    detail: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


def display_name(cert: x509.Certificate | x509.Name) -> str:
    """A certificate's (or a name's) subject as RFC 4514 text, never empty."""
    name = cert.subject if isinstance(cert, x509.Certificate) else cert
    return name.rfc4514_string() or "(empty subject)"


def _r(code: ReasonCode, meaning: str, explanation: str, fix: str, ca_fix: str = "") -> Reason:
    return Reason(code, meaning, explanation, fix, ca_fix)


def explain(finding: Finding, purpose: Purpose) -> tuple[str, str]:
    """A finding's explanation and fix for people, from its Reason's templates.

    Args:
        finding: what a check found.
        purpose: what the chain was checked for.

    Returns:
        (explanation, fix); the explanation does not name the seed step.
    """
    reason = REASONS[finding.code]
    fields = {
        "subject": finding.subject,
        "role": finding.role,
        "detail": finding.detail,
        "purpose": purpose,
    }
    fix = reason.ca_fix if reason.ca_fix and finding.role in CA_ROLES else reason.fix
    return reason.explanation.format(**fields), fix.format(**fields)


REASONS: Mapping[ReasonCode, Reason] = {
    r.code: r
    for r in (
        _r(
            ReasonCode.OK,
            "the chain is valid for the purpose",
            "the {role} {subject} chains to a trusted root and is valid for {purpose} "
            "authentication{detail}",
            "nothing to do",
        ),
        _r(
            ReasonCode.EXPIRED,
            "a certificate in the path is past its notAfter",
            "the {role} {subject} expired on {detail}",
            "issue a new certificate for {subject} (e.g. 'mtlskit ca issue') and deploy it; "
            "for a CA, create a new CA and re-issue below it",
        ),
        _r(
            ReasonCode.NOT_YET_VALID,
            "a certificate in the path is before its notBefore",
            "the {role} {subject} is not valid until {detail}",
            "check the clock of the verifying host (NTP), or wait until {detail}",
        ),
        _r(
            ReasonCode.UNKNOWN_ISSUER,
            "no path leads to a trusted root",
            "the {role} {subject} does not chain to a trusted root: {detail}",
            "give --ca the root CA that issued this chain, or have the peer use a "
            "certificate from a CA you trust",
        ),
        _r(
            ReasonCode.MISSING_INTERMEDIATE,
            "the issuer is a known intermediate of a trusted root, but the peer did not send it",
            "the {role} {subject} was issued by the intermediate CA {detail}, which the "
            "peer did not send",
            "the peer must send its chain (leaf then {detail}), e.g. configure it with "
            "NAME.chain.pem instead of NAME.crt; or pass the intermediate with --chain",
        ),
        _r(
            ReasonCode.WRONG_PURPOSE,
            "key usage or extended key usage does not allow clientAuth/serverAuth",
            "the {role} {subject} may not be used for {purpose} authentication: {detail}",
            "issue a {purpose} certificate (mtlskit ca issue {purpose} ...); a CA's EKU, if "
            "present, must include {purpose}Auth",
            "reissue the CA {subject} with {purpose}Auth in its extendedKeyUsage (or without "
            "an extendedKeyUsage), then reissue the certificates below it; the fault is in "
            "this CA, not in the leaf",
        ),
        _r(
            ReasonCode.NAME_MISMATCH,
            "the server certificate does not name the host that was asked for",
            "the {role} {subject} does not match the host name: {detail}",
            "connect with a name the certificate lists, or re-issue it with --san for that name",
        ),
        _r(
            ReasonCode.REVOKED,
            "the issuing CA's CRL lists the certificate",
            "the {role} {subject} has been revoked: {detail}",
            "issue a new certificate for the peer and deploy it; the revoked one stays rejected",
        ),
        _r(
            ReasonCode.CRL_STALE,
            "the CRL is past its nextUpdate (or not yet valid)",
            "the CRL of {subject} is not current: {detail}",
            "publish a fresh CRL ('mtlskit ca crl') and give it with --crl",
        ),
        _r(
            ReasonCode.ISSUER_NOT_CA,
            "an issuing certificate is not a CA (basic constraints or keyCertSign)",
            "the {role} {subject} is used as an issuer but is not a CA: {detail}",
            "issue leaves only from a CA certificate (basicConstraints CA:TRUE, keyCertSign); "
            "mtlskit's intermediate is one",
            "reissue {subject} as a CA (basicConstraints CA:TRUE, keyUsage keyCertSign), "
            "then the certificates below it; or issue them from a CA that is one (mtlskit's "
            "intermediate is)",
        ),
        _r(
            ReasonCode.PATH_TOO_LONG,
            "the path is longer than a pathLenConstraint or --max-depth allows",
            "the path through the {role} {subject} is too long: {detail}",
            "shorten the chain (issue from a CA closer to the root), or raise --max-depth "
            "if you set it",
        ),
        _r(
            ReasonCode.BAD_SIGNATURE,
            "a signature does not verify with its issuer's key",
            "the signature on the {role} {subject} does not verify: {detail}",
            "the certificate (or CRL) was altered or comes from a different CA with the "
            "same name; get a genuine copy from its CA",
        ),
        _r(
            ReasonCode.SELF_SIGNED_UNTRUSTED,
            "the certificate is self-signed and not a trusted root",
            "the {role} {subject} is self-signed and is not one of the trusted roots",
            "issue the {purpose} certificate from your CA (mtlskit ca issue {purpose} ...), "
            "or, if you mean to pin it, add it to --ca",
        ),
        _r(
            ReasonCode.MALFORMED,
            "a certificate cannot be used as encoded (bad extension, no SAN on a client)",
            "the {role} {subject} is malformed for {purpose} authentication: {detail}",
            "re-issue the certificate with mtlskit; a client certificate needs a "
            "subjectAltName (--san, e.g. a spiffe:// URI or DNS name)",
        ),
        _r(
            ReasonCode.POLICY_VIOLATION,
            "the path breaks a rule of the validator's profile (name constraints, key "
            "algorithm, required extension, CRL profile)",
            "the {role} {subject} breaks the certificate profile: {detail}",
            "re-issue the certificate from a CA that follows the profile (mtlskit does, "
            "with EC P-256/P-384 or RSA keys)",
        ),
        _r(
            ReasonCode.KEY_TOO_WEAK,
            "a certificate's key is smaller than OpenSSL's default security level allows "
            "(RSA/DSA under 2048 bits, EC under 224 bits)",
            "the {role} {subject} has a key too weak for OpenSSL's default security level: "
            "{detail}",
            "reissue {subject} with a new ec-p256 key (or RSA of 2048 bits or more), e.g. "
            "'mtlskit ca issue {purpose} ...' or 'openssl req -newkey ec -pkeyopt "
            "ec_paramgen_curve:P-256'",
            "reissue the CA {subject} with a new ec-p256 key (or RSA of 2048 bits or more), "
            "then reissue every certificate below it (their signatures come from the old key)",
        ),
        _r(
            ReasonCode.SIGNATURE_TOO_WEAK,
            "a certificate is signed with a hash OpenSSL's default security level refuses "
            "(MD5, SHA-1)",
            "the {role} {subject} is signed with a hash too weak for OpenSSL's default "
            "security level: {detail}",
            "have its CA reissue {subject} signed with SHA-256 (openssl x509 -req -sha256, "
            "openssl ca -md sha256; mtlskit always signs with SHA-256 or better)",
            "have the issuer of the CA {subject} re-sign it with SHA-256 (the same key and "
            "name keep the certificates below it valid)",
        ),
        _r(
            ReasonCode.KEY_UNSUPPORTED,
            "a certificate's key is on an elliptic curve TLS peers do not sign with (only "
            "P-256, P-384 and P-521 are)",
            "the {role} {subject} has a key TLS cannot use: {detail}",
            "reissue {subject} with an ec-p256 key (or ec-p384 / RSA 2048+)",
            "reissue the CA {subject} with an ec-p256 key (or ec-p384 / RSA 2048+), then "
            "reissue every certificate below it",
        ),
    )
}
