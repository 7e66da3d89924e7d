"""What the CA database holds, as frozen dataclasses: certificates, audit entries, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["AUDIT_EVENTS", "AuditRecord", "CertRecord", "TokenRecord", "dt", "iso"]

AUDIT_EVENTS = (
    "issued",
    "renewed",
    "revoked",
    "token_created",
    "token_used",
    "token_refused",
    "crl_published",
    "rotated",
)
"""The audit events the CA and `ca serve` write."""


def iso(value: datetime) -> str:
    """The database's time format: ISO 8601 in UTC to the second, which sorts as text."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dt(value: str) -> datetime:
    """Parse a time written by `iso`."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CertRecord:
    """One certificate the CA issued, as the database knows it."""

    serial: str
    profile: str
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    issued_at: datetime
    revoked_at: datetime | None
    revocation_reason: str | None
    pem: str

    def status(self, now: datetime) -> str:
        """ "revoked", "expired", "not-yet-valid" or "valid" at the given time."""
        if self.revoked_at is not None:
            return "revoked"
        if now > self.not_after:
            return "expired"
        if now < self.not_before:
            return "not-yet-valid"
        return "valid"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the audit log: what happened, when, to which certificate or name."""

    at: datetime
    event: str  # one of AUDIT_EVENTS
    serial: str  # hex, "" when the event concerns no certificate
    subject: str
    detail: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A single-use enrolment token, by its hash: the name and SANs it allows, its expiry."""

    token_hash: str
    name: str
    sans: tuple[str, ...]
    profile: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
