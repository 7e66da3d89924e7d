"""The CA database: SQLite in the CA directory by default, or PostgreSQL (store_pg) by URL."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlskit.errors import DatabaseError

# The interface and the records are shared with the PostgreSQL backend; they stay
# importable from here for the CA, the CLI and `ca serve`.
from mtlskit.pki.records import AuditRecord, CertRecord, TokenRecord
from mtlskit.pki.serials import format_serial, parse_serial
from mtlskit.pki.store_base import SCHEMA_VERSION, CertStore, SerialInUseError, Transaction
from mtlskit.pki.store_pg import PostgresStore, check_url

__all__ = [
    "DATABASE",
    "DB_URL_FILE",
    "SCHEMA_VERSION",
    "AuditRecord",
    "CertRecord",
    "CertStore",
    "SerialInUseError",
    "SqliteStore",
    "TokenRecord",
    "Transaction",
    "create_store",
    "format_serial",
    "open_store",
    "parse_serial",
]

DATABASE = "ca.db"
"""The SQLite file in the CA directory (the embedded default)."""
DB_URL_FILE = "database.url"
"""Where `ca init --db URL` records a PostgreSQL URL (0600: it may hold a password)."""
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY,          -- uppercase hex, as 'openssl x509 -serial' prints it
    profile TEXT NOT NULL,            -- root | intermediate | server | client
    subject TEXT NOT NULL,            -- RFC 4514
    issuer TEXT NOT NULL,
    sans TEXT NOT NULL,               -- JSON list of "DNS:..." strings
    not_before TEXT NOT NULL,         -- ISO 8601, UTC (sorts as text)
    not_after TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    pem TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    revocation_reason TEXT
);
CREATE INDEX IF NOT EXISTS certificates_not_after ON certificates(not_after);
"""
_SQLITE_V2 = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, event TEXT NOT NULL, serial TEXT NOT NULL,
    subject TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, sans TEXT NOT NULL,
    profile TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, used_at TEXT
);
"""


class SqliteStore(CertStore):
    """The SQLite file that records everything a CA issued (the embedded default).

    Writes take SQLite's write lock up front (BEGIN IMMEDIATE), so two processes issuing
    at once are serialised. A file without write permission bits is opened read-only,
    even for root.
    """

    def __init__(self, path: Path, *, lock_timeout: float = 10.0) -> None:
        super().__init__()
        self.path = path
        self.description = f"the CA database {path}"
        self.lock_timeout = lock_timeout
        self.read_only = path.exists() and not (
            path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        )
        uri = f"file:{path}?mode=ro" if self.read_only else f"file:{path}?mode=rw"
        try:
            # check_same_thread=False: the store's own lock serialises threads.
            self._conn = sqlite3.connect(
                uri, uri=True, timeout=lock_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._map(exc) from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._upgrade(self.meta("schema_version") or "1")
        except BaseException:
            self._conn.close()  # a locked or foreign file: do not leave the handle open
            raise

    def _upgrade(self, version: str) -> None:
        if version == SCHEMA_VERSION:
            return
        if version != "1":
            raise DatabaseError(
                f"{self.description} has schema {version}; this mtlskit knows {SCHEMA_VERSION}",
                "upgrade mtlskit: the database was written by a newer version",
            )
        if self.read_only:
            return  # readable as before; the audit log appears with the first write
        with self.transaction():
            for statement in _SQLITE_V2.split(";"):
                if statement.strip():
                    self._execute(statement)
            self.set_meta("schema_version", SCHEMA_VERSION)

    @classmethod
    def create(cls, path: Path, meta: dict[str, str]) -> SqliteStore:
        """Create a new database file (0600) with the schema and CA metadata."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.executescript("BEGIN;" + _SQLITE_SCHEMA + _SQLITE_V2 + "COMMIT;")
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema_version", SCHEMA_VERSION), ("crl_number", "0"), *meta.items()],
            )
        finally:
            conn.close()
        return cls(path)

    def _begin(self) -> None:
        self._execute("BEGIN IMMEDIATE")

    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._conn.execute(sql, tuple(params))
            rows = [dict(r) for r in cursor.fetchall()] if cursor.description else []
        except sqlite3.IntegrityError as exc:
            if "certificates.serial" in str(exc):
                raise SerialInUseError(f"serial in use: {exc}", "pick another serial") from exc
            raise self._map(exc) from exc
        except sqlite3.Error as exc:
            raise self._map(exc) from exc
        return rows

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
        if "no such table: audit" in text or "no such table: tokens" in text:
            return DatabaseError(
                f"the CA database {self.path} predates the audit log (schema 1, read-only)",
                f"give the file write permission (chmod u+w {self.path}) once to upgrade it",
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


def create_store(directory: Path, url: str | None, meta: dict[str, str]) -> CertStore:
    """Create the database of a new CA: DIR/ca.db, or the PostgreSQL database at `url`.

    A URL is recorded in DIR/database.url (0600), where `open_store` finds it.
    """
    if url is None:
        return SqliteStore.create(directory / DATABASE, meta)
    check_url(url)
    store = PostgresStore.create(url, meta)
    fd = os.open(directory / DB_URL_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(url + "\n")
    return store


def open_store(directory: Path, *, lock_timeout: float = 10.0) -> CertStore:
    """Open the database of the CA in `directory` (PostgreSQL when database.url says so).

    Raises:
        DatabaseError: no database, or it cannot be opened.
    """
    url_file = directory / DB_URL_FILE
    if url_file.exists():
        url = url_file.read_text(encoding="utf-8").strip()
        return PostgresStore(url, lock_timeout=lock_timeout, source=url_file)
    if not (directory / DATABASE).exists():
        raise DatabaseError(
            f"the CA in {directory} is incomplete: {DATABASE} is missing",
            "restore it from your backup; the CA cannot issue without it",
        )
    return SqliteStore(directory / DATABASE, lock_timeout=lock_timeout)
