"""What `ca serve` does for each request: renew, enrol with a token, publish the CRL, audit."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.caserver.protocol import (
    Refusal,
    check_names,
    check_presented,
    refusal,
    sans_of,
    token_hash,
)
from mtlskit.errors import IssuanceError, MtlsKitError
from mtlskit.pki.builder import make_name
from mtlskit.pki.ca import CertificateAuthority
from mtlskit.pki.names import describe_general_name, parse_san, parse_sans
from mtlskit.pki.pem import certs_to_pem, load_csr
from mtlskit.pki.profiles import LEAF_PROFILES
from mtlskit.pki.serials import format_serial

__all__ = ["DEFAULT_TTLS", "CAService", "CRLFiles", "Outcome", "create_token"]

T = TypeVar("T")

# Short-lived by default: a stolen key is good for a day at most, and renewal is automatic.
DEFAULT_TTLS: Final = {"client": timedelta(hours=24), "server": timedelta(hours=24)}


@dataclass(frozen=True, slots=True)
class CRLFiles:
    """The current CRL in both encodings, and when it was made and must be replaced."""

    der: bytes
    pem: bytes
    this_update: datetime
    next_update: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a /renew or /sign request came to: a chain, or a refusal; and what to log."""

    chain: bytes | None
    refused: Refusal | None
    subject: str = ""
    serial: str = ""
    notes: tuple[str, ...] = ()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def create_token(
    ca: CertificateAuthority,
    name: str,
    sans: Sequence[str],
    *,
    profile: str = "client",
    ttl: timedelta = timedelta(minutes=10),
    now: datetime | None = None,
) -> tuple[str, datetime, tuple[str, ...]]:
    """Make a single-use enrolment token for NAME and SANs; only its SHA-256 is stored.

    Returns:
        The token (shown once), its expiry, and the SANs it allows ("DNS:...", ...).

    Raises:
        IssuanceError: an unknown profile, a SAN that does not parse, or no SAN at all.
    """
    if profile not in LEAF_PROFILES:
        raise IssuanceError(f"--profile {profile!r} is not a leaf profile", "use client or server")
    make_name(name)  # an empty name is refused here, not at /sign
    names = parse_sans(sans)
    if not names:
        try:
            names = [parse_san(name)]
        except IssuanceError as exc:
            raise IssuanceError(
                f"{name!r} is not a DNS name, so the token needs a subjectAltName",
                "add --san (a DNS name, IP, spiffe:// URI or email)",
            ) from exc
    allowed = tuple(describe_general_name(n) for n in names)
    at = now or _now()
    token = secrets.token_urlsafe(32)  # 256 bits
    expires = at + ttl
    ca.store.create_token(token_hash(token), name, allowed, profile, expires)
    ca.store.audit(
        "token_created",
        subject=f"CN={name}",
        detail=f"profile {profile}, SANs {', '.join(allowed)}, "
        f"expires {expires:%Y-%m-%dT%H:%M:%SZ}",
        at=at,
    )
    return token, expires, allowed


class CAService:
    """The CA behind `ca serve`: one thread owns the CA and its database connection.

    Request threads hand their work to that thread (`_run`), so SQLite's connection is
    only ever used where it was opened and issuing stays serialised.

    Args:
        directory: the CA directory.
        password: the CA keys' password, when they are encrypted.
        crl_next_update: the CRL's lifetime; a new one is made at half of it, and at once
            when the set of revoked certificates changes.
        ttls: lifetime per profile ("client", "server"); capped at the intermediate's
            expiry by the CA (a certificate never outlives its issuer).
    """

    def __init__(
        self,
        directory: Path,
        *,
        password: bytes | None = None,
        crl_next_update: timedelta = timedelta(hours=1),
        ttls: dict[str, timedelta] | None = None,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtlskit-ca")
        self.crl_next_update = crl_next_update
        self.ttls = {**DEFAULT_TTLS, **(ttls or {})}
        self._ca = self._pool.submit(
            CertificateAuthority.load, directory, password=password
        ).result()
        self._crl: CRLFiles | None = None
        self._revoked: frozenset[str] = frozenset()
        self.root_pem = self._ca.root_pem()
        self.intermediates = self._run(self._load_intermediates)
        self.intermediates_pem = certs_to_pem(self.intermediates)

    def _run(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()

    def close(self) -> None:
        """Close the database and stop the CA thread."""
        self._pool.submit(self._ca.close).result()
        self._pool.shutdown()

    def _load_intermediates(self) -> tuple[x509.Certificate, ...]:
        # The current intermediate first, then any other this CA recorded (a rotation
        # leaves clients of the old one able to renew onto the new one).
        current = self._ca.intermediate
        found = [current]
        for record in self._ca.store.records(profile="intermediate"):
            cert = x509.load_pem_x509_certificate(record.pem.encode())
            if cert.fingerprint(hashes.SHA256()) != current.fingerprint(hashes.SHA256()):
                found.append(cert)
        return tuple(found)

    # -- the CRL ---------------------------------------------------------------------------
    def crl(self, now: datetime | None = None) -> CRLFiles:
        """The current CRL, made anew at half its lifetime or when a revocation came."""
        return self._run(lambda: self._crl_now(now or _now()))

    def _crl_now(self, now: datetime) -> CRLFiles:
        issuer = self._ca.intermediate.subject.rfc4514_string()
        revoked = frozenset(r.serial for r in self._ca.store.revoked(issuer))
        current = self._crl
        if (
            current is not None
            and revoked == self._revoked
            and now < current.this_update + (current.next_update - current.this_update) / 2
        ):
            return current
        crl = self._ca.crl(next_update=self.crl_next_update, now=now)
        files = CRLFiles(
            der=crl.public_bytes(serialization.Encoding.DER),
            pem=crl.public_bytes(serialization.Encoding.PEM),
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc or now + self.crl_next_update,
        )
        self._crl, self._revoked = files, revoked
        self._ca.store.audit(
            "crl_published",
            subject=issuer,
            detail=f"{len(revoked)} revoked, next update {files.next_update:%Y-%m-%dT%H:%M:%SZ}",
            at=now,
        )
        return files

    # -- renewal ---------------------------------------------------------------------------
    def renew(self, leaf: x509.Certificate | None, body: bytes) -> Outcome:
        """POST /renew: the presented leaf renews itself with the CSR's key."""
        return self._run(lambda: self._renew(leaf, body, _now()))

    def _renew(self, leaf: x509.Certificate | None, body: bytes, now: datetime) -> Outcome:
        record = self._ca.store.get(leaf.serial_number) if leaf is not None else None
        refused = check_presented(leaf, record, self.intermediates, now)
        if refused is not None or leaf is None or record is None:
            return Outcome(None, refused, *_who(leaf))
        csr = _parse_csr(body)
        if isinstance(csr, Refusal):
            return Outcome(None, csr, *_who(leaf))
        allowed = sans_of(leaf)
        refused = check_names(csr, leaf.subject, allowed)
        if refused is not None:
            return Outcome(None, refused, *_who(leaf))
        # One audit record, in the issuing transaction: "renewed", naming the old serial.
        detail = f"renewal of serial {record.serial} ({record.profile})"
        return self._issue(csr, record.profile, allowed, now, event="renewed", detail=detail)

    def _issue(
        self,
        csr: x509.CertificateSigningRequest,
        profile: str,
        sans: Sequence[str],
        now: datetime,
        *,
        event: str = "issued",
        detail: str = "",
    ) -> Outcome:
        try:
            issued = self._ca.sign_csr(
                csr,
                profile,
                validity=self.ttls[profile],
                extra_sans=sans,
                now=now,
                event=event,
                detail=detail,
            )
        except MtlsKitError as exc:
            code = "bad_csr" if exc.exit_code == 2 else "issuance_failed"
            return Outcome(None, refusal(code, exc.message, exc.hint or None))
        subject = issued.certificate.subject.rfc4514_string()
        # The notes say what the CA decided: a lifetime capped at the intermediate's expiry
        # (a certificate never outlives its issuer), extensions of the CSR it dropped.
        return Outcome(issued.chain_pem(), None, subject, issued.serial, issued.notes)

    # -- enrolment -------------------------------------------------------------------------
    def sign(self, token: str | None, body: bytes) -> Outcome:
        """POST /sign: a single-use token and a CSR for exactly the token's names."""
        return self._run(lambda: self._sign(token, body, _now()))

    def _sign(self, token: str | None, body: bytes, now: datetime) -> Outcome:
        if token is None:
            return Outcome(None, refusal("token_missing", "/sign needs an enrolment token"))
        csr = _parse_csr(body)  # checked first: a malformed CSR does not spend the token
        if isinstance(csr, Refusal):
            return Outcome(None, csr)
        digest = token_hash(token)
        store = self._ca.store
        record = store.use_token(digest, now)
        if record is None:
            state = store.token_state(digest, now)
            code = {"used": "token_used", "expired": "token_expired"}.get(state, "token_unknown")
            reason = {
                "token_used": "this token was already used; a token works once",
                "token_expired": "this token has expired",
            }.get(code, "no such token")
            store.audit("token_refused", detail=f"{code} ({digest[:12]}...)", at=now)
            return Outcome(None, refusal(code, reason))
        subject = make_name(record.name)
        store.audit(
            "token_used", subject=subject.rfc4514_string(), detail=f"{digest[:12]}...", at=now
        )
        refused = check_names(csr, subject, record.sans)
        if refused is not None:
            store.audit(
                "token_refused",
                subject=subject.rfc4514_string(),
                detail=f"names_widened: {refused.reason}",
                at=now,
            )
            return Outcome(None, refused, subject.rfc4514_string())
        outcome = self._issue(csr, record.profile, record.sans, now)
        if outcome.chain is not None:
            store.audit(
                "issued",
                serial=outcome.serial,
                subject=outcome.subject,
                detail=f"enrolled with a token ({record.profile})",
                at=now,
            )
        return outcome


def _who(leaf: x509.Certificate | None) -> tuple[str, str]:
    if leaf is None:
        return "", ""
    return leaf.subject.rfc4514_string(), format_serial(leaf.serial_number)


def _parse_csr(body: bytes) -> x509.CertificateSigningRequest | Refusal:
    try:
        csr = load_csr(body)
    except MtlsKitError as exc:
        return refusal("bad_csr", f"the body is not a CSR: {exc.message}")
    if not csr.is_signature_valid:
        return refusal(
            "bad_csr",
            "the CSR's signature does not verify: it was altered or signed with another key",
        )
    return csr
