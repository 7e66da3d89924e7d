"""The online CA's protocol decisions: refusals, renewal and enrolment checks, schedules (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from mtlskit.acme.renewal import RENEW_AT
from mtlskit.pki.names import describe_general_name

__all__ = [
    "JITTER",
    "MAX_BODY",
    "REFUSALS",
    "RecordView",
    "Refusal",
    "bearer_token",
    "check_names",
    "check_presented",
    "error_body",
    "refusal",
    "renewal_due",
    "sans_of",
    "token_hash",
]

# A CSR is 0.5-2 KiB of PEM (an RSA-4096 one near 1.7 KiB): 64 KiB is far above any.
MAX_BODY: Final = 64 * 1024
# Renewal happens between (2/3 - JITTER) and 2/3 of the lifetime, so a fleet issued at
# once does not come back at once; never later than 2/3.
JITTER: Final = 0.05


class RecordView(Protocol):
    """What the checks read of a CA database record (pki.store.CertRecord has it)."""

    @property
    def serial(self) -> str: ...
    @property
    def fingerprint_sha256(self) -> str: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def revocation_reason(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the CA said no, as the JSON error body carries it.

    Attributes:
        status: the HTTP status.
        code: the machine-readable code ("revoked", "token_used", ...).
        reason: one sentence for people.
        hint: how to fix it.
    """

    status: int
    code: str
    reason: str
    hint: str


# code -> (status, default hint). The reason is always specific to the request.
REFUSALS: Final[dict[str, tuple[int, str]]] = {
    "bad_request": (400, "send the request as the protocol describes (see docs/lifecycle.md)"),
    "bad_csr": (400, "create a CSR with the new key: 'openssl req -new -key KEY -subj ...'"),
    "names_widened": (403, "ask only for the names the certificate or token already has"),
    "client_certificate_required": (
        401,
        "present the current certificate and key over TLS (curl --cert CHAIN --key KEY)",
    ),
    "unknown_certificate": (
        403,
        "enrol again with a token ('mtlskit ca token NAME') from the CA that issued it",
    ),
    "expired": (403, "an expired certificate cannot renew itself: enrol again with a token"),
    "revoked": (403, "a revoked certificate cannot be renewed: enrol again with a new token"),
    "token_missing": (401, "send 'Authorization: Bearer TOKEN' (from 'mtlskit ca token')"),
    "token_unknown": (403, "copy the token exactly as 'mtlskit ca token' printed it"),
    "token_used": (403, "a token works once: create a new one with 'mtlskit ca token'"),
    "token_expired": (403, "create a new token with 'mtlskit ca token' and use it in time"),
    "not_found": (404, "GET /roots, /intermediates, /crl, /crl.pem; POST /renew, /sign"),
    "method_not_allowed": (405, "use GET for the trust files and POST for /renew and /sign"),
    "length_required": (411, "send the CSR with a Content-Length header"),
    "too_large": (413, f"a CSR is a few KiB; the limit is {MAX_BODY // 1024} KiB"),
    "unsupported_media_type": (415, "send the CSR as PEM with Content-Type application/pkcs10"),
    "issuance_failed": (500, "see the CA server's log"),
}


def refusal(code: str, reason: str, hint: str | None = None) -> Refusal:
    """The Refusal for a code of REFUSALS, with a specific reason (and hint, if given)."""
    status, default_hint = REFUSALS[code]
    return Refusal(status, code, reason, default_hint if hint is None else hint)


def error_body(refused: Refusal) -> bytes:
    """The JSON body of an error response: {"error", "reason", "hint"}."""
    body = {"error": refused.code, "reason": refused.reason, "hint": refused.hint}
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored: the token itself never is."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def sans_of(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    """The subjectAltNames as "DNS:a", "URI:spiffe://..." strings, in order."""
    try:
        ext = cert_or_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [describe_general_name(n) for n in ext.value]


def check_presented(
    leaf: x509.Certificate | None,
    record: RecordView | None,
    issuers: Sequence[x509.Certificate],
    now: datetime,
) -> Refusal | None:
    """May this certificate, presented over TLS, renew itself? None when it may.

    The TLS layer proved the caller holds the key; this decides the rest: issued by one
    of this CA's intermediates (its signature checked), recorded in the CA database with
    the same fingerprint, within its validity, and not revoked.
    """
    if leaf is None:
        return refusal("client_certificate_required", "/renew needs the current certificate")
    subject = leaf.subject.rfc4514_string()
    if not any(_issued_by(leaf, ca) for ca in issuers):
        return refusal(
            "unknown_certificate",
            f"{subject} was issued by {leaf.issuer.rfc4514_string()}, not by this CA",
        )
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex()
    if record is None or record.fingerprint_sha256 != fingerprint:
        return refusal(
            "unknown_certificate",
            f"{subject} (serial {leaf.serial_number:X}) is not in this CA's database",
        )
    if record.revoked_at is not None:
        return refusal(
            "revoked",
            f"{subject} (serial {record.serial}) was revoked on "
            f"{record.revoked_at:%Y-%m-%d %H:%M}Z, reason {record.revocation_reason}",
        )
    if now > leaf.not_valid_after_utc:
        return refusal(
            "expired", f"{subject} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z"
        )
    if now < leaf.not_valid_before_utc:
        return refusal(
            "expired",
            f"{subject} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z",
            "check the clocks of the client and the CA",
        )
    return None


def _issued_by(leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
    if leaf.issuer != issuer.subject:
        return False
    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_names(
    csr: x509.CertificateSigningRequest, subject: x509.Name, allowed: Sequence[str]
) -> Refusal | None:
    """The CSR asks for no name beyond `subject` and the `allowed` SANs; None when so.

    The issued certificate carries exactly the subject and the allowed SANs whatever the
    CSR says; a CSR that asks for more is refused rather than silently trimmed, so a
    caller never believes it got a name it did not.
    """
    if csr.subject != subject:
        return refusal(
            "names_widened",
            f"the CSR asks for subject {csr.subject.rfc4514_string() or '(empty)'}, "
            f"the certificate is for {subject.rfc4514_string()}",
            f"create the CSR with the subject {subject.rfc4514_string()}",
        )
    extra = [name for name in sans_of(csr) if name not in allowed]
    if extra:
        return refusal(
            "names_widened",
            f"the CSR asks for {', '.join(extra)}, beyond {', '.join(allowed) or 'no SANs'}",
        )
    return None


def renewal_due(
    not_before: datetime, not_after: datetime, jitter: float, fraction: float = RENEW_AT
) -> datetime:
    """When to renew: at (fraction - JITTER * jitter) of the lifetime, jitter in [0, 1).

    Pass as `not_before` the moment the certificate arrived when it is later than the
    certificate's notBefore (the CA backdates by minutes, which would make a
    certificate of a few minutes due at once).
    """
    share = fraction - JITTER * min(max(jitter, 0.0), 1.0)
    return not_before + (not_after - not_before) * share
