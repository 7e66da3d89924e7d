"""`mtlskit ca list`: what the CA issued (or its audit records) as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mtlskit.cli._common import add_dir, duration_arg, print_json
from mtlskit.durations import format_duration
from mtlskit.errors import ConfigError
from mtlskit.pki.ca import CertificateAuthority
from mtlskit.pki.records import AuditRecord, CertRecord

__all__ = ["AUDIT_KEYS", "CERT_KEYS", "FORMATS", "register"]

FORMATS: Final = ("table", "json", "csv")

# The keys of one certificate, in the order of the CSV columns. Public API: scripts read
# them, so a key is only ever added, never renamed.
CERT_KEYS: Final = (
    "serial",
    "status",
    "profile",
    "subject",
    "sans",
    "issuer",
    "not_before",
    "not_after",
    "revoked",
    "revoked_at",
    "revocation_reason",
    "issued_at",
    "fingerprint_sha256",
)
AUDIT_KEYS: Final = ("at", "event", "serial", "subject", "detail")

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection,
# OWASP): subjects, SANs and details can come from a CSR, so such a cell gets a leading '.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def register(sub: Any) -> None:
    """Add `ca list` to the `ca` group's subparsers."""
    p = sub.add_parser("list", help="list what the CA issued, or its audit records")
    add_dir(p)
    p.add_argument(
        "--expiring-within", metavar="DUR", help="only valid certificates expiring this soon"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table (default), json (a list of objects) or csv (with a header row)",
    )
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument(
        "--audit",
        action="store_true",
        help="list the audit records (issued, renewed, revoked, tokens, CRLs) instead",
    )
    p.set_defaults(handler=cmd_list)


def _stamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def cert_row(record: CertRecord, now: datetime) -> dict[str, Any]:
    """One certificate as a JSON object with the keys of CERT_KEYS."""
    return {
        "serial": record.serial,
        "status": record.status(now),
        "profile": record.profile,
        "subject": record.subject,
        "sans": list(record.sans),
        "issuer": record.issuer,
        "not_before": _stamp(record.not_before),
        "not_after": _stamp(record.not_after),
        "revoked": record.revoked_at is not None,
        "revoked_at": _stamp(record.revoked_at),
        "revocation_reason": record.revocation_reason,
        "issued_at": _stamp(record.issued_at),
        "fingerprint_sha256": record.fingerprint_sha256,
    }


def audit_row(record: AuditRecord) -> dict[str, Any]:
    """One audit record as a JSON object with the keys of AUDIT_KEYS."""
    return {
        "at": _stamp(record.at),
        "event": record.event,
        "serial": record.serial,
        "subject": record.subject,
        "detail": record.detail,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = " ".join(value)  # a SAN never holds a space (RFC 5280 forms)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Rows as CSV on stdout: a header row of keys, then one line per row."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow([_cell(row[k]) for k in keys])


def cmd_list(args: argparse.Namespace) -> int:
    """ca list."""
    fmt = "json" if args.json else (args.format or "table")
    window = duration_arg(args.expiring_within, "--expiring-within")
    if args.audit and window is not None:
        raise ConfigError(
            "--expiring-within filters certificates, not --audit records",
            "leave out one of the two flags",
        )
    now = datetime.now(UTC)
    with CertificateAuthority.load(args.dir, with_key=False) as ca:
        if args.audit:
            return _show_audit([audit_row(r) for r in ca.store.audit_records()], fmt)
        records = ca.records()
    if window is not None:
        records = [r for r in records if r.status(now) == "valid" and r.not_after <= now + window]
    rows = [cert_row(r, now) for r in records]
    if fmt == "json":
        print_json(rows)
    elif fmt == "csv":
        write_csv(rows, CERT_KEYS)
    elif not rows:
        print("no certificates" + (f" expiring within {args.expiring_within}" if window else ""))
    else:
        _cert_table(records, rows, now)
    return 0


def _cert_table(records: list[CertRecord], rows: list[dict[str, Any]], now: datetime) -> None:
    width = max(len(r["serial"]) for r in rows)
    print(
        f"{'SERIAL':<{width}}  {'PROFILE':<12}  {'STATUS':<13}  {'NOT BEFORE':<17}  "
        f"{'NOT AFTER':<17}  {'EXPIRES':<12}  SUBJECT / SANS"
    )
    for record, row in zip(records, rows, strict=True):
        left = record.not_after - now
        when = f"in {format_duration(left)}" if left > timedelta(0) else "past"
        sans = f"  [{', '.join(record.sans)}]" if record.sans else ""
        revoked = ""
        if record.revoked_at is not None:
            revoked = f"  revoked {record.revoked_at:%Y-%m-%d %H:%M}Z ({record.revocation_reason})"
        print(
            f"{row['serial']:<{width}}  {row['profile']:<12}  {row['status']:<13}  "
            f"{record.not_before:%Y-%m-%d %H:%M}Z  {record.not_after:%Y-%m-%d %H:%M}Z  "
            f"{when:<12}  {row['subject']}{sans}{revoked}"
        )


def _show_audit(rows: list[dict[str, Any]], fmt: str) -> int:
    if fmt == "json":
        print_json(rows)
    elif fmt == "csv":
        write_csv(rows, AUDIT_KEYS)
    elif not rows:
        print("no audit records")
    else:
        serial = max(6, *(len(r["serial"]) for r in rows))
        subject = max(7, *(len(r["subject"]) for r in rows))
        print(f"{'AT':<20}  {'EVENT':<14}  {'SERIAL':<{serial}}  {'SUBJECT':<{subject}}  DETAIL")
        for row in rows:
            print(
                f"{row['at']:<20}  {row['event']:<14}  {row['serial'] or '-':<{serial}}  "
                f"{row['subject'] or '-':<{subject}}  {row['detail']}"
            )
    return 0
