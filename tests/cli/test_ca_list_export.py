"""`mtlskit ca list --format table|json|csv` and `--audit`: every certificate, stable keys."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mtlskit.cli.ca_list import AUDIT_KEYS, CERT_KEYS, write_csv


@pytest.fixture
def made(tmp_path: Path, out_dir: Path, run_cli) -> Path:
    """A CA with alice (revoked, keyCompromise), bob (valid, 10d) and a server."""
    d = tmp_path / "ca"
    assert run_cli("ca", "init", "--dir", d, "--name", "Example Root CA").code == 0
    for argv in (
        ["client", "alice", "--san", "spiffe://example.org/ns/a/sa/alice", "--san", "a@x.org"],
        ["client", "bob", "--validity", "10d"],
        ["server", "api", "--san", "api.example.org", "--san", "127.0.0.1"],
    ):
        r = run_cli("ca", "issue", *argv, "--dir", d, "--out", out_dir)
        assert r.code == 0, r.err
    r = run_cli(
        "ca", "revoke", "--cert", out_dir / "alice.crt", "--dir", d, "--reason", "keyCompromise"
    )
    assert r.code == 0, r.err
    return d


def _serial(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "X")


def _json(run_cli, made: Path, *extra: str) -> list[dict[str, Any]]:
    r = run_cli("ca", "list", "--dir", made, *extra)
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_json_is_a_list_of_objects_with_stable_keys(made: Path, out_dir: Path, run_cli) -> None:
    rows = _json(run_cli, made, "--format", "json")
    assert isinstance(rows, list) and len(rows) == 5  # root, intermediate, three leaves
    for row in rows:
        assert set(row) == set(CERT_KEYS)
    by_subject = {row["subject"]: row for row in rows}
    alice, bob = by_subject["CN=alice"], by_subject["CN=bob"]
    assert alice["serial"] == _serial(out_dir / "alice.crt")
    assert alice["status"] == "revoked" and alice["revoked"] is True
    assert alice["revocation_reason"] == "keyCompromise" and alice["revoked_at"].endswith("Z")
    assert alice["sans"] == ["URI:spiffe://example.org/ns/a/sa/alice", "email:a@x.org"]
    assert alice["profile"] == "client" and alice["issuer"] == "CN=Example Intermediate CA"
    assert bob["status"] == "valid" and bob["revoked"] is False and bob["revoked_at"] is None
    cert = x509.load_pem_x509_certificate((out_dir / "bob.crt").read_bytes())
    assert bob["not_before"] == f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert bob["not_after"] == f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert by_subject["CN=api"]["profile"] == "server"
    profiles = sorted(r["profile"] for r in rows)
    assert profiles == ["client", "client", "intermediate", "root", "server"]
    # --json stays what it was: the same as --format json
    assert _json(run_cli, made, "--json") == rows


def test_csv_has_a_header_row_and_one_line_per_certificate(made: Path, run_cli) -> None:
    r = run_cli("ca", "list", "--dir", made, "--format", "csv")
    assert r.code == 0, r.err
    lines = list(csv.reader(io.StringIO(r.out)))
    assert lines[0] == list(CERT_KEYS)
    rows = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert len(rows) == 5
    alice = next(row for row in rows if row["subject"] == "CN=alice")
    assert alice["revoked"] == "true" and alice["status"] == "revoked"
    assert alice["sans"] == "URI:spiffe://example.org/ns/a/sa/alice email:a@x.org"
    bob = next(row for row in rows if row["subject"] == "CN=bob")
    assert bob["revoked"] == "false" and bob["revoked_at"] == ""
    # the CSV agrees with the JSON, cell by cell
    as_json = {row["serial"]: row for row in _json(run_cli, made, "--format", "json")}
    for row in rows:
        want = as_json[row["serial"]]
        assert row["not_after"] == want["not_after"] and row["profile"] == want["profile"]


def test_the_table_shows_status_dates_and_revocation(made: Path, out_dir: Path, run_cli) -> None:
    r = run_cli("ca", "list", "--dir", made)
    assert r.code == 0, r.err
    header, *lines = r.out.splitlines()
    for column in ("SERIAL", "PROFILE", "STATUS", "NOT BEFORE", "NOT AFTER", "SUBJECT"):
        assert column in header
    assert len(lines) == 5
    alice = next(line for line in lines if "CN=alice" in line)
    assert alice.startswith(_serial(out_dir / "alice.crt"))
    assert " revoked " in alice and "(keyCompromise)" in alice
    bob = next(line for line in lines if "CN=bob" in line)
    assert " valid " in bob and "in 9d 23h" in bob
    cert = x509.load_pem_x509_certificate((out_dir / "bob.crt").read_bytes())
    assert f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z" in bob
    assert f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z" in bob


def test_expiring_within_applies_to_every_format(made: Path, run_cli) -> None:
    rows = _json(run_cli, made, "--format", "json", "--expiring-within", "30d")
    assert [row["subject"] for row in rows] == ["CN=bob"]
    r = run_cli("ca", "list", "--dir", made, "--format", "csv", "--expiring-within", "30d")
    assert [line[3] for line in csv.reader(io.StringIO(r.out))] == ["subject", "CN=bob"]


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Subjects ("CN=...") and SANs ("email:...") always start with their type, but an audit
    # record's detail is free text: a cell a spreadsheet would run as a formula gets a '.
    write_csv(
        [
            {
                "at": "2026-12-01T00:00:00Z",
                "event": "token_refused",
                "serial": "",
                "subject": "",
                "detail": '=HYPERLINK("http://x")',
            },
            {
                "at": "2026-12-01T00:00:00Z",
                "event": "issued",
                "serial": "1A",
                "subject": "CN=a",
                "detail": "-1+2 and @SUM",
            },
        ],
        AUDIT_KEYS,
    )
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert lines[1][4] == '\'=HYPERLINK("http://x")'
    assert lines[2][4] == "'-1+2 and @SUM"
    assert lines[2][:4] == ["2026-12-01T00:00:00Z", "issued", "1A", "CN=a"]


def test_bad_flags(made: Path, run_cli) -> None:
    r = run_cli("ca", "list", "--dir", made, "--format", "xml")
    assert r.code == 2 and r.err.startswith("error: ") and "csv" in r.err
    r = run_cli("ca", "list", "--dir", made, "--audit", "--expiring-within", "1d")
    assert r.code == 2
    assert r.err.startswith("error: --expiring-within") and "\nhint: " in r.err


# -- --audit: the store's audit records ------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_audit_lists_issuance_and_revocation(made: Path, out_dir: Path, run_cli, fmt: str) -> None:
    r = run_cli("ca", "list", "--dir", made, "--audit", "--format", fmt)
    assert r.code == 0, r.err
    alice = _serial(out_dir / "alice.crt")
    if fmt == "json":
        rows = json.loads(r.out)
        assert all(set(row) == set(AUDIT_KEYS) for row in rows)
        events = {(row["event"], row["serial"]) for row in rows}
        assert ("issued", alice) in events and ("revoked", alice) in events
    elif fmt == "csv":
        lines = list(csv.reader(io.StringIO(r.out)))
        assert lines[0] == list(AUDIT_KEYS)
        assert any(line[1] == "revoked" and line[2] == alice for line in lines[1:])
    else:
        assert r.out.splitlines()[0].split()[:3] == ["AT", "EVENT", "SERIAL"]
        assert any("revoked" in line and alice in line for line in r.out.splitlines())
