"""Fixtures for the CA database tests: a real PostgreSQL server, a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from mtlskit.pki import CertificateAuthority
from tests.pki.pg import PostgresServer, StartError, postgres_server

_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (skips, saying why, when it cannot start)."""
    try:
        with postgres_server() as server:
            yield server
    except StartError as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server."""
    name = f"ca_{next(_numbers)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the CA directory) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def backend_ca(tmp_path: Path, db_url: str | None) -> Iterator[CertificateAuthority]:
    """A new CA whose database is SQLite or PostgreSQL (the test runs once with each)."""
    authority = CertificateAuthority.create(tmp_path / "ca", name="Test Root CA", db_url=db_url)
    yield authority
    authority.close()
