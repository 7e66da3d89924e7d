"""What every CA database offers (certificates, meta, audit, tokens), in SQL both backends run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.errors import DatabaseError
from mtlskit.pki.names import describe_general_name
from mtlskit.pki.records import AuditRecord, CertRecord, TokenRecord, dt, iso
from mtlskit.pki.serials import format_serial

__all__ = ["SCHEMA_VERSION", "CertStore", "SerialInUseError", "Transaction"]

SCHEMA_VERSION = "2"  # 1: certificates and meta; 2: + audit and tokens


class SerialInUseError(Exception):
    """The database already holds a certificate with this serial (its PRIMARY KEY).

    Internal: the CA draws another serial and tries again; never shown to a person.
    """


class Transaction:
    """An open write transaction: pass it back to the store's methods; opaque otherwise."""

    __slots__ = ("store",)

    def __init__(self, store: CertStore) -> None:
        self.store = store


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _record(row: Mapping[str, Any]) -> CertRecord:
    return CertRecord(
        serial=row["serial"],
        profile=row["profile"],
        subject=row["subject"],
        issuer=row["issuer"],
        sans=tuple(json.loads(row["sans"])),
        not_before=dt(row["not_before"]),
        not_after=dt(row["not_after"]),
        fingerprint_sha256=row["fingerprint_sha256"],
        issued_at=dt(row["issued_at"]),
        revoked_at=dt(row["revoked_at"]) if row["revoked_at"] else None,
        revocation_reason=row["revocation_reason"],
        pem=row["pem"],
    )


def _token(row: Mapping[str, Any]) -> TokenRecord:
    return TokenRecord(
        token_hash=row["token_hash"],
        name=row["name"],
        sans=tuple(json.loads(row["sans"])),
        profile=row["profile"],
        created_at=dt(row["created_at"]),
        expires_at=dt(row["expires_at"]),
        used_at=dt(row["used_at"]) if row["used_at"] else None,
    )


class CertStore:
    """What every CA database offers; `SqliteStore` and `PostgresStore` implement it.

    One connection per store, used under a lock, so a store may be shared by threads
    (`ca serve`). Writes that belong together run in `transaction()`; a single `audit`,
    `set_meta` or token call outside one is its own transaction. Uniqueness of serials
    and the single use of tokens are decided by the database itself (a PRIMARY KEY and an
    atomic UPDATE), so they hold across processes and across `ca serve` replicas.
    """

    description: str = "the CA database"
    _ORDER: ClassVar[str] = "rowid"  # insertion order of the certificates table

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tx: Transaction | None = None

    # -- what a backend provides -----------------------------------------------------------
    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def _begin(self) -> None:
        self._execute("BEGIN")

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: committed at the end, rolled back on any error.

        SQLite takes its write lock up front (BEGIN IMMEDIATE), PostgreSQL locks rows as
        they are written; either way two issuers never lose a record.
        """
        with self._lock:
            if self._tx is not None:
                raise DatabaseError("nested CA database transaction", "this is a bug in mtlskit")
            self._begin()
            self._tx = tx = Transaction(self)
            try:
                yield tx
            except BaseException:
                self._tx = None
                with suppress(DatabaseError):
                    self._execute("ROLLBACK")
                raise
            self._tx = None
            try:
                self._execute("COMMIT")
            except DatabaseError:
                with suppress(DatabaseError):
                    self._execute("ROLLBACK")
                raise

    def _check(self, tx: Transaction) -> None:
        if tx is not self._tx:
            raise DatabaseError("not inside this store's transaction", "this is a bug in mtlskit")

    def _one(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        with self._lock:
            rows = self._execute(sql, params)
        return rows[0] if rows else None

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._execute(sql, params)

    # -- metadata --------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """One metadata value (CA name, fingerprints, CRL number, CRL URLs)."""
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Set one metadata value (inside a transaction, or on its own)."""
        self._all(
            "INSERT INTO meta(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- certificates ----------------------------------------------------------------------
    def add(self, tx: Transaction, cert: x509.Certificate, profile: str, now: datetime) -> None:
        """Record an issued certificate.

        Raises:
            SerialInUseError: the serial is recorded already (the caller picks another).
        """
        self._check(tx)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = [describe_general_name(n) for n in san]
        except x509.ExtensionNotFound:
            sans = []
        self._all(
            "INSERT INTO certificates(serial, profile, subject, issuer, sans, not_before,"
            " not_after, fingerprint_sha256, pem, issued_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                format_serial(cert.serial_number),
                profile,
                cert.subject.rfc4514_string(),
                cert.issuer.rfc4514_string(),
                json.dumps(sans),
                iso(cert.not_valid_before_utc),
                iso(cert.not_valid_after_utc),
                cert.fingerprint(hashes.SHA256()).hex(),
                cert.public_bytes(serialization.Encoding.PEM).decode(),
                iso(now),
            ),
        )

    def get(self, serial: int) -> CertRecord | None:
        """The record for a serial, or None."""
        row = self._one("SELECT * FROM certificates WHERE serial = ?", (format_serial(serial),))
        return None if row is None else _record(row)

    def revoke(self, tx: Transaction, serial: int, reason: str, when: datetime) -> bool:
        """Mark a recorded certificate revoked; False when it was revoked already."""
        self._check(tx)
        rows = self._all(
            "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
            " WHERE serial = ? AND revoked_at IS NULL RETURNING serial",
            (iso(when), reason, format_serial(serial)),
        )
        return bool(rows)

    def next_crl_number(self, tx: Transaction) -> int:
        """Increment and return the CRL number, atomically in the database."""
        self._check(tx)
        row = self._one(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT)"
            " WHERE key = 'crl_number' RETURNING value"
        )
        if row is None:
            raise DatabaseError(f"{self.description} has no crl_number", "restore it from a backup")
        return int(row["value"])

    def records(self, *, profile: str | None = None) -> list[CertRecord]:
        """All records, oldest first, optionally of one profile."""
        where, params = ("", ()) if profile is None else (" WHERE profile = ?", (profile,))
        rows = self._all(
            f"SELECT * FROM certificates{where} ORDER BY issued_at, {self._ORDER}",  # noqa: S608
            params,
        )
        return [_record(r) for r in rows]

    def revoked(self, issuer: str) -> list[CertRecord]:
        """Revoked records issued by the named issuer (RFC 4514 string)."""
        return [r for r in self.records() if r.revoked_at is not None and r.issuer == issuer]

    # -- audit -----------------------------------------------------------------------------
    def audit(
        self,
        event: str,
        *,
        serial: str = "",
        subject: str = "",
        detail: str = "",
        at: datetime | None = None,
    ) -> None:
        """Append an audit record; inside a transaction it commits (or not) with it.

        Args:
            event: issued, renewed, revoked, token_created, token_used, token_refused,
                crl_published, rotated.
            serial: the certificate's serial (hex), when there is one.
            subject: whom it is about (RFC 4514 subject or token name).
            detail: a short free text (profile, reason, CRL number).
            at: when; now when None.
        """
        self._all(
            "INSERT INTO audit(at, event, serial, subject, detail) VALUES (?, ?, ?, ?, ?)",
            (iso(at or _now()), event, serial, subject, detail),
        )

    def audit_records(self, *, event: str | None = None) -> list[AuditRecord]:
        """The audit log, oldest first, optionally of one event."""
        where, params = ("", ()) if event is None else (" WHERE event = ?", (event,))
        rows = self._all(f"SELECT * FROM audit{where} ORDER BY seq", params)  # noqa: S608
        return [
            AuditRecord(dt(r["at"]), r["event"], r["serial"], r["subject"], r["detail"])
            for r in rows
        ]

    # -- enrolment tokens ------------------------------------------------------------------
    def create_token(
        self,
        token_hash: str,
        name: str,
        sans: Sequence[str],
        profile: str,
        expires_at: datetime,
        *,
        created_at: datetime | None = None,
    ) -> TokenRecord:
        """Store a new single-use token (only its hash: the token itself is never kept)."""
        created = created_at or _now()
        self._all(
            "INSERT INTO tokens(token_hash, name, sans, profile, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (token_hash, name, json.dumps(list(sans)), profile, iso(created), iso(expires_at)),
        )
        return TokenRecord(token_hash, name, tuple(sans), profile, created, expires_at, None)

    def use_token(self, token_hash: str, now: datetime) -> TokenRecord | None:
        """Mark a token used and return it; None when unknown, used or expired.

        One UPDATE decides, so of two callers racing with one token exactly one wins, in
        one process or in several replicas (see `token_state` for why one lost).
        """
        row = self._one(
            "UPDATE tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
            " AND expires_at > ? RETURNING *",
            (iso(now), token_hash, iso(now)),
        )
        return None if row is None else _token(row)

    def token_state(self, token_hash: str, now: datetime | None = None) -> str:
        """ "unknown", "used", "expired" or "valid" (at `now`, default the clock)."""
        row = self._one("SELECT * FROM tokens WHERE token_hash = ?", (token_hash,))
        if row is None:
            return "unknown"
        token = _token(row)
        if token.used_at is not None:
            return "used"
        return "expired" if token.expires_at <= (now or _now()) else "valid"
