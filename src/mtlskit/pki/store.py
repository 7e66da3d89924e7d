"""The CA database: SQLite, one record per certificate issued, transactional across processes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.errors import DatabaseError
from mtlskit.pki.names import describe_general_name

# The serials' text form lives in the pure core (identity and describe print it too); it
# stays importable from here for the CA and the CLI.
from mtlskit.pki.serials import format_serial, parse_serial

__all__ = ["CertRecord", "CertStore", "format_serial", "parse_serial"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY,          -- uppercase hex, as 'openssl x509 -serial' prints it
    profile TEXT NOT NULL,            -- root | intermediate | server | client
    subject TEXT NOT NULL,            -- RFC 4514
    issuer TEXT NOT NULL,
    sans TEXT NOT NULL,               -- JSON list of "DNS:..." strings
    not_before TEXT NOT NULL,         -- ISO 8601, UTC
    not_after TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    pem TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    revocation_reason TEXT
);
CREATE INDEX IF NOT EXISTS certificates_not_after ON certificates(not_after);
"""
SCHEMA_VERSION = "1"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dt(value: str) -> datetime:
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


def _record(row: sqlite3.Row) -> CertRecord:
    return CertRecord(
        serial=row["serial"],
        profile=row["profile"],
        subject=row["subject"],
        issuer=row["issuer"],
        sans=tuple(json.loads(row["sans"])),
        not_before=_dt(row["not_before"]),
        not_after=_dt(row["not_after"]),
        fingerprint_sha256=row["fingerprint_sha256"],
        issued_at=_dt(row["issued_at"]),
        revoked_at=_dt(row["revoked_at"]) if row["revoked_at"] else None,
        revocation_reason=row["revocation_reason"],
        pem=row["pem"],
    )


class CertStore:
    """The SQLite file that records everything a CA issued and revoked.

    Writes take SQLite's write lock up front (BEGIN IMMEDIATE), so two processes issuing
    at once are serialised: serials stay unique and no record is lost. A database file
    without write permission bits is opened read-only, even for root.
    """

    def __init__(self, path: Path, *, lock_timeout: float = 10.0) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.read_only = path.exists() and not (
            path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        )
        uri = f"file:{path}?mode=ro" if self.read_only else f"file:{path}?mode=rw"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=lock_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._map(exc) from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("SELECT count(*) FROM meta").fetchone()
        except sqlite3.Error as exc:
            self._conn.close()  # a locked or foreign file: do not leave the handle open
            raise self._map(exc) from exc

    @classmethod
    def create(cls, path: Path, meta: dict[str, str]) -> CertStore:
        """Create a new database file (0600) with the schema and CA metadata."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema_version", SCHEMA_VERSION), ("crl_number", "0"), *meta.items()],
            )
        finally:
            conn.close()
        return cls(path)

    def _map(self, exc: sqlite3.Error) -> DatabaseError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return DatabaseError(
                f"the CA database {self.path} is locked by another process",
                f"wait for the other mtlskit command to finish (waited {self.lock_timeout:g}s), "
                "or raise --lock-timeout",
            )
        if "readonly" in text or "read-only" in text:
            return DatabaseError(
                f"the CA database {self.path} is read-only",
                f"give the file write permission (chmod u+w {self.path}) to issue or revoke",
            )
        if "no such table" in text or "not a database" in text or "malformed" in text:
            return DatabaseError(
                f"{self.path} is not an mtlskit CA database ({text})",
                "restore it from a backup; it records every certificate the CA issued",
            )
        return DatabaseError(
            f"the CA database {self.path} failed: {text}", "check the file and disk"
        )

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def meta(self, key: str) -> str | None:
        """One metadata value (CA name, fingerprints, CRL number)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock for the block; commit at the end, roll back on any error."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._map(exc) from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise self._map(exc) from exc

    def serial_exists(self, conn: sqlite3.Connection, serial: int) -> bool:
        """True when the serial is already recorded (call inside a transaction)."""
        row = conn.execute(
            "SELECT 1 FROM certificates WHERE serial = ?", (format_serial(serial),)
        ).fetchone()
        return row is not None

    def add(
        self, conn: sqlite3.Connection, cert: x509.Certificate, profile: str, now: datetime
    ) -> None:
        """Record an issued certificate (call inside a transaction)."""
        try:
            sans = [
                describe_general_name(n)
                for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            ]
        except x509.ExtensionNotFound:
            sans = []
        try:
            conn.execute(
                "INSERT INTO certificates(serial, profile, subject, issuer, sans, not_before,"
                " not_after, fingerprint_sha256, pem, issued_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    format_serial(cert.serial_number),
                    profile,
                    cert.subject.rfc4514_string(),
                    cert.issuer.rfc4514_string(),
                    json.dumps(sans),
                    _iso(cert.not_valid_before_utc),
                    _iso(cert.not_valid_after_utc),
                    cert.fingerprint(hashes.SHA256()).hex(),
                    cert.public_bytes(serialization.Encoding.PEM).decode(),
                    _iso(now),
                ),
            )
        except sqlite3.Error as exc:
            raise self._map(exc) from exc

    def get(self, serial: int) -> CertRecord | None:
        """The record for a serial, or None."""
        row = self._conn.execute(
            "SELECT * FROM certificates WHERE serial = ?", (format_serial(serial),)
        ).fetchone()
        return None if row is None else _record(row)

    def revoke(self, serial: int, reason: str, when: datetime) -> None:
        """Mark a recorded certificate revoked (in its own transaction)."""
        with self.transaction() as conn:
            try:
                conn.execute(
                    "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
                    " WHERE serial = ?",
                    (_iso(when), reason, format_serial(serial)),
                )
            except sqlite3.Error as exc:
                raise self._map(exc) from exc

    def next_crl_number(self, conn: sqlite3.Connection) -> int:
        """Increment and return the CRL number (call inside a transaction)."""
        try:
            number = int(self.meta("crl_number") or "0") + 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'crl_number'", (str(number),))
        except sqlite3.Error as exc:
            raise self._map(exc) from exc
        return number

    def records(self, *, profile: str | None = None) -> list[CertRecord]:
        """All records, oldest first, optionally of one profile."""
        try:
            if profile is None:
                rows = self._conn.execute("SELECT * FROM certificates ORDER BY issued_at, rowid")
            else:
                rows = self._conn.execute(
                    "SELECT * FROM certificates WHERE profile = ? ORDER BY issued_at, rowid",
                    (profile,),
                )
            return [_record(r) for r in rows.fetchall()]
        except sqlite3.Error as exc:
            raise self._map(exc) from exc

    def revoked(self, issuer: str) -> list[CertRecord]:
        """Revoked records issued by the named issuer (RFC 4514 string)."""
        return [r for r in self.records() if r.revoked_at is not None and r.issuer == issuer]
