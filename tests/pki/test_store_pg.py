"""The CA database under concurrency, on SQLite and on a real PostgreSQL server, and its errors."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from mtlskit.errors import DatabaseError
from mtlskit.pki import CertificateAuthority
from mtlskit.pki.store import DB_URL_FILE, SerialInUseError, open_store
from tests.pki.pg import PostgresServer

# Each worker opens the CA, waits for the go file (so all four issue at the same time),
# then issues its share and prints the serials it got.
ISSUER = """
import sys, time
from pathlib import Path
from mtlskit.pki import CertificateAuthority
ca_dir, go, prefix, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with CertificateAuthority.load(ca_dir, lock_timeout=60) as ca:
    while not go.exists():
        time.sleep(0.01)
    for i in range(count):
        print(ca.issue_client(f"{prefix}-{i}").serial, flush=True)
"""

CRL_PUBLISHER = """
import sys, time
from pathlib import Path
from mtlskit.pki import CertificateAuthority
ca_dir, go, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
with CertificateAuthority.load(ca_dir, lock_timeout=60) as ca:
    while not go.exists():
        time.sleep(0.01)
    for _ in range(count):
        print(ca.crl().extensions.get_extension_for_class(
            __import__("cryptography").x509.CRLNumber).value.crl_number, flush=True)
"""


def _race(script: str, go: Path, *argvs: list[str]) -> list[str]:
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    try:
        time.sleep(0.5)  # let every worker open its connection first
        go.touch()
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs)
    return [line for out in outs for line in out.split()]


def test_four_processes_issue_100_distinct_serials(
    backend_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca_dir = backend_ca.directory
    argvs = [[str(ca_dir), str(tmp_path / "go"), f"w{w}", "25"] for w in range(4)]
    serials = _race(ISSUER, tmp_path / "go", *argvs)
    assert len(serials) == 100
    assert len(set(serials)) == 100
    with CertificateAuthority.load(ca_dir, with_key=False) as ca:
        recorded = {r.serial for r in ca.records() if r.profile == "client"}
        audited = [a.serial for a in ca.store.audit_records(event="issued")]
    assert recorded == set(serials)
    # 100 leaves, plus the root and the intermediate recorded by `ca init`
    assert len(audited) == 102
    assert set(serials) <= set(audited)


def test_crl_numbers_are_unique_across_processes(
    backend_ca: CertificateAuthority, tmp_path: Path
) -> None:
    argvs = [[str(backend_ca.directory), str(tmp_path / "go"), "10"] for _ in range(3)]
    numbers = sorted(int(n) for n in _race(CRL_PUBLISHER, tmp_path / "go", *argvs))
    assert numbers == list(range(1, 31))
    assert len(backend_ca.store.audit_records(event="crl_published")) == 30


def test_the_database_refuses_a_second_record_with_one_serial(
    backend_ca: CertificateAuthority,
) -> None:
    issued = backend_ca.issue_client("alice")
    with pytest.raises(SerialInUseError), backend_ca.store.transaction() as tx:
        backend_ca.store.audit("issued", serial=issued.serial, detail="duplicate")
        backend_ca.store.add(
            tx, issued.certificate, "client", issued.certificate.not_valid_before_utc
        )
    assert [r.serial for r in backend_ca.records()].count(issued.serial) == 1
    # the audit row written in the rolled-back transaction is gone with it
    assert [a.detail for a in backend_ca.store.audit_records()].count("duplicate") == 0


def test_init_with_db_records_the_url_for_later_commands(
    tmp_path: Path, pg_url: str, run_cli, out_dir: Path
) -> None:
    d = tmp_path / "ca"
    r = run_cli("ca", "init", "--dir", d, "--db", pg_url)
    assert r.code == 0, r.err
    assert "postgresql://mtlskit:***@127.0.0.1" in r.out
    assert pg_url.split("@")[0].split(":")[-1] not in r.out  # the password is not printed
    assert not (d / "ca.db").exists()
    url_file = d / DB_URL_FILE
    assert url_file.read_text().strip() == pg_url
    assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
    assert run_cli("ca", "issue", "client", "bob", "--dir", d, "--out", out_dir).code == 0
    r = run_cli("ca", "list", "--dir", d, "--json")
    assert r.code == 0, r.err
    bob = x509.load_pem_x509_certificate((out_dir / "bob.crt").read_bytes())
    rows = [row for row in json.loads(r.out) if row["profile"] == "client"]
    assert [int(row["serial"], 16) for row in rows] == [bob.serial_number]
    # the rows are in PostgreSQL itself, not only visible through mtlskit
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT subject FROM certificates WHERE profile = 'client'")
        assert found.fetchall() == [("CN=bob",)]


def test_a_database_holding_a_ca_is_not_reused(tmp_path: Path, pg_url: str, run_cli) -> None:
    assert run_cli("ca", "init", "--dir", tmp_path / "one", "--db", pg_url).code == 0
    r = run_cli("ca", "init", "--dir", tmp_path / "two", "--db", pg_url)
    assert r.code == 2
    assert "already holds a CA" in r.err
    assert "hint: give each CA its own database" in r.err
    assert not (tmp_path / "two" / "root.key").exists()  # all or nothing


@pytest.mark.parametrize(
    ("case", "message", "hint"),
    [
        ("password", "PostgreSQL refused the login", "check the user and password"),
        ("database", 'database "no_such_db" does not exist', "create it first"),
        ("port", "cannot reach PostgreSQL", "start the server"),
        ("scheme", "is not a postgresql:// URL", "give postgresql://USER@HOST"),
    ],
)
def test_database_errors_say_what_to_do(
    pg_server: PostgresServer, tmp_path: Path, run_cli, case: str, message: str, hint: str
) -> None:
    closed = _free_port()
    url = {
        "password": pg_server.url(password="wrong"),
        "database": pg_server.url("no_such_db"),
        "port": f"postgresql://mtlskit@127.0.0.1:{closed}/ca",
        "scheme": "mysql://mtlskit@127.0.0.1/ca",
    }[case]
    r = run_cli("ca", "init", "--dir", tmp_path / "ca", "--db", url)
    assert r.code == 2
    assert r.err.startswith("error: ")
    assert message in r.err
    assert f"hint: {hint}" in r.err
    assert "Traceback" not in r.err
    assert "wrong" not in r.err  # never echo a password
    assert not (tmp_path / "ca" / "root.key").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_psycopg_is_an_error_with_a_hint(tmp_path: Path) -> None:
    # A Python without psycopg: the import is blocked in the child interpreter only.
    script = (
        "import sys; sys.modules['psycopg'] = None; from mtlskit.cli import main; "
        f"sys.exit(main(['ca', 'init', '--dir', {str(tmp_path / 'ca')!r}, "
        "'--db', 'postgresql://u@127.0.0.1/ca']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "error: PostgreSQL support needs the psycopg package" in done.stderr
    assert "hint: install it: pip install 'psycopg[binary]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_store_reconnects_after_the_server_dropped_it(
    tmp_path: Path, pg_server: PostgresServer, pg_url: str
) -> None:
    with CertificateAuthority.create(tmp_path / "ca", db_url=pg_url) as ca:
        ca.issue_client("before")
        database = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_server.url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
        assert ca.store.meta("name") == "mtlskit Root CA"  # a read is sent again
        ca.issue_client("after")
        assert [r.subject for r in ca.records() if r.profile == "client"] == [
            "CN=before",
            "CN=after",
        ]


def test_a_url_file_naming_an_empty_database_is_reported(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / DB_URL_FILE).write_text(pg_url + "\n")
    with pytest.raises(DatabaseError, match="holds no mtlskit CA") as caught:
        open_store(tmp_path)
    assert str(tmp_path / DB_URL_FILE) in caught.value.hint
