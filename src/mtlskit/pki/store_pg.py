"""The CA database in PostgreSQL (psycopg 3): one database shared by several `ca serve` replicas."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from mtlskit.errors import ConfigError, DatabaseError
from mtlskit.pki.store_base import SCHEMA_VERSION, CertStore, SerialInUseError

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "check_url", "redact_url"]

# The same tables as in SQLite, with the same TEXT columns (times as ISO 8601 in UTC,
# which sort as text), so one set of SQL statements serves both backends.
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE certificates (
    serial TEXT PRIMARY KEY, profile TEXT NOT NULL, subject TEXT NOT NULL,
    issuer TEXT NOT NULL, sans TEXT NOT NULL, not_before TEXT NOT NULL,
    not_after TEXT NOT NULL, fingerprint_sha256 TEXT NOT NULL, pem TEXT NOT NULL,
    issued_at TEXT NOT NULL, revoked_at TEXT, revocation_reason TEXT,
    seq BIGSERIAL NOT NULL
);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE TABLE audit (
    seq BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL,
    serial TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, sans TEXT NOT NULL,
    profile TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, used_at TEXT
)
"""
_SAFE = ("SELECT", "BEGIN")  # statements that may be sent again on a new connection
_PSYCOPG_HINT = "install it: pip install 'psycopg[binary]' (a dependency of mtlskit)"


def check_url(url: str) -> None:
    """Refuse what is not a postgresql:// URL, before anything is written.

    Raises:
        ConfigError: another scheme, or no host and no database name.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"--db {redact_url(url)!r} is not a postgresql:// URL",
            "give postgresql://USER@HOST:5432/DBNAME, or leave --db out for SQLite in --dir",
        )
    if not parts.path.strip("/"):
        raise ConfigError(
            f"--db {redact_url(url)} names no database",
            "add the database name: postgresql://USER@HOST:5432/DBNAME (createdb DBNAME)",
        )


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages and output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise DatabaseError("PostgreSQL support needs the psycopg package", _PSYCOPG_HINT) from exc
    return psycopg


class PostgresStore(CertStore):
    """The CA database in PostgreSQL.

    Each write is one transaction; rows are locked as they are written (READ COMMITTED),
    the serial is the PRIMARY KEY, the CRL number and a token's use are single atomic
    UPDATEs. The connection is opened again when the server dropped it between calls.
    """

    _ORDER: ClassVar[str] = "seq"

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = 10.0,
        source: Path | None = None,
        expect_ca: bool = True,
    ) -> None:
        super().__init__()
        self.url = url
        self.lock_timeout = lock_timeout
        self.source = source
        self.description = f"the CA database {redact_url(url)}"
        self._conn: psycopg.Connection[Any] | None = None
        self._connect()
        if expect_ca:
            try:
                version = self.meta("schema_version")
            except BaseException:
                self.close()
                raise
            if version != SCHEMA_VERSION:
                self.close()
                raise DatabaseError(
                    f"{self.description} has schema {version}; this mtlskit knows {SCHEMA_VERSION}",
                    "use the mtlskit version that created it",
                )

    @classmethod
    def create(cls, url: str, meta: dict[str, str], *, lock_timeout: float = 10.0) -> PostgresStore:
        """Create the schema and metadata in an empty database, in one transaction.

        Raises:
            DatabaseError: unreachable, refused login, or the database holds a CA already.
        """
        store = cls(url, lock_timeout=lock_timeout, expect_ca=False)
        try:
            with store.transaction():
                for statement in _SCHEMA.split(";"):
                    store._execute(statement)
                rows = [("schema_version", SCHEMA_VERSION), ("crl_number", "0"), *meta.items()]
                for key, value in rows:
                    store.set_meta(key, value)
        except BaseException:
            store.close()
            raise
        return store

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> None:
        psycopg = _psycopg()
        from psycopg.rows import dict_row

        try:
            self._conn = psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
            # Wait for another writer's row lock as long as SQLite waits for its file lock.
            self._conn.execute(
                "SELECT set_config('lock_timeout', %s, false)",
                (f"{int(self.lock_timeout * 1000)}ms",),
            )
        except psycopg.Error as exc:
            raise self._map(exc) from exc

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        psycopg = _psycopg()
        if self._conn is None or (self._conn.broken and self._tx is None):
            self._connect()  # the server restarted between two calls: carry on
        assert self._conn is not None  # noqa: S101 - set by _connect
        # One set of statements for both backends: SQLite's ? placeholders become %s.
        query, args = sql.replace("?", "%s"), tuple(params)
        try:
            try:
                cursor = self._conn.execute(query, args)
            except psycopg.OperationalError:
                # A connection the server dropped since the last call (a restart, an idle
                # timeout) shows only now. Only what changed nothing yet is sent again: a
                # read, or the BEGIN of a transaction; a write may have been applied.
                if not (self._conn.broken and self._tx is None and sql.startswith(_SAFE)):
                    raise
                self._connect()
                cursor = self._conn.execute(query, args)
            return list(cursor.fetchall()) if cursor.description else []
        except psycopg.errors.UniqueViolation as exc:
            if "certificates_pkey" in str(exc):
                raise SerialInUseError(f"serial in use: {exc}", "pick another serial") from exc
            raise self._map(exc) from exc
        except psycopg.Error as exc:
            raise self._map(exc) from exc

    def _map(self, exc: Exception) -> DatabaseError:
        text = str(exc).strip()
        where = self.description
        recorded = f" (recorded in {self.source})" if self.source else ""
        psycopg = _psycopg()
        if isinstance(exc, psycopg.errors.DuplicateTable):
            return DatabaseError(
                f"{where} already holds a CA (its tables exist)",
                "give each CA its own database: createdb NAME, then --db .../NAME",
            )
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return DatabaseError(
                f"{where} is busy: another writer held a lock for {self.lock_timeout:g}s",
                "wait for the other mtlskit command to finish, or raise --lock-timeout",
            )
        if isinstance(exc, psycopg.errors.UndefinedTable):
            return DatabaseError(
                f"{where} holds no mtlskit CA ({text})",
                f"check the URL{recorded}; create a CA with 'mtlskit ca init --db URL'",
            )
        if "password authentication failed" in text or "no password supplied" in text:
            return DatabaseError(
                f"PostgreSQL refused the login to {where}: {text.splitlines()[0]}",
                f"check the user and password in the URL{recorded}, or set PGPASSWORD or "
                "~/.pgpass; the server's pg_hba.conf decides who may connect",
            )
        if "does not exist" in text and "database" in text:
            return DatabaseError(
                f"{where}: {text.splitlines()[0]}",
                "create it first (createdb -h HOST -U USER NAME) or fix the name in the URL",
            )
        if isinstance(exc, psycopg.OperationalError):
            return DatabaseError(
                f"cannot reach PostgreSQL for {where}: {text.splitlines()[0]}",
                f"start the server, or fix the host and port in the URL{recorded}",
            )
        return DatabaseError(f"{where} failed: {text}", "check the server's log")
