"""`mtlskit renew`: renew a certificate from `mtlskit ca serve`, once or as a daemon."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mtlskit.durations import format_duration
from mtlskit.errors import MtlsKitError

__all__ = ["register"]


def register(groups: Any) -> None:
    """Add `mtlskit renew`."""
    p = groups.add_parser(
        "renew",
        help="renew a certificate from 'mtlskit ca serve' (once, or as a daemon)",
        description="Make a new key and a CSR for the same names, POST it to CA_URL/renew "
        "over mTLS with the current certificate, and replace --cert (the chain) and --key "
        "(0600) atomically; on any failure the old files stay. Due at 2/3 of the lifetime.",
    )
    p.add_argument("--cert", required=True, metavar="F", help="the current chain (leaf first)")
    p.add_argument("--key", required=True, metavar="F", help="its private key (replaced)")
    p.add_argument("--ca-url", required=True, metavar="URL", help="https://... of 'ca serve'")
    p.add_argument("--ca", metavar="ROOT", help="root(s) to verify the CA server (default: system)")
    p.add_argument(
        "--daemon", action="store_true", help="keep renewing at 2/3 of each lifetime (jittered)"
    )
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD", help="run after each renewal")
    p.add_argument(
        "--key-type", metavar="TYPE", help="the new key's type (default: the current key's)"
    )
    p.add_argument("--force", action="store_true", help="renew now even if not due yet")
    p.set_defaults(handler=cmd_renew)


def _stamp(when: datetime) -> str:
    left = when - datetime.now(UTC)
    soon = f"in {format_duration(left)}" if left.total_seconds() > 0 else "now"
    return f"{when:%Y-%m-%d %H:%M:%S}Z ({soon})"


def cmd_renew(args: argparse.Namespace) -> int:
    """renew."""
    from mtlskit.caserver.renewal import due_at, renew_once, run_exec
    from mtlskit.cli._common import key_type_arg

    cert, key = Path(args.cert), Path(args.key)
    trust = Path(args.ca) if args.ca else None
    key_type = key_type_arg(args.key_type) if args.key_type else None

    def attempt() -> datetime:
        renewed = renew_once(cert, key, args.ca_url, trust=trust, key_type=key_type)
        leaf = renewed.leaf
        print(f"renewed {leaf.subject.rfc4514_string()}", flush=True)
        print(f"  serial   {leaf.serial_number:X}")
        print(f"  valid    until {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z")
        for path in renewed.paths:
            print(f"  wrote    {path}")
        if args.exec_cmd:
            code = run_exec(args.exec_cmd)
            print(f"  exec     {args.exec_cmd} (exit {code})", flush=True)
        jitter = random.random() if args.daemon else 0.0  # noqa: S311 - spreading, not secrets
        due = due_at(cert, renewed.received_at, jitter)
        print(f"next renewal due {_stamp(due)}", flush=True)
        return due

    if not args.daemon:
        due = due_at(cert)
        if datetime.now(UTC) < due and not args.force:
            print(f"not due yet: renewal due {_stamp(due)} (2/3 of its lifetime)")
            print("pass --force to renew now")
            return 0
        attempt()
        return 0
    return _daemon(cert, attempt)


def _daemon(cert: Path, attempt: Callable[[], datetime]) -> int:
    from mtlskit.acme.renewal import backoff
    from mtlskit.caserver.renewal import due_at

    due = due_at(cert, None, random.random())  # noqa: S311 - spreading, not secrets
    print(f"next renewal due {_stamp(due)}", flush=True)
    failures = 0
    while True:
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(min(wait, 3600.0))  # wake at least hourly: clocks drift, laptops sleep
            continue
        try:
            due = attempt()
            failures = 0
        except MtlsKitError as exc:
            failures += 1
            retry = backoff(failures)
            print(f"error: {exc.message}", file=sys.stderr, flush=True)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr, flush=True)
            print(
                f"renewal failed ({failures} in a row); the old files are kept; "
                f"retrying in {format_duration(retry)}",
                file=sys.stderr,
                flush=True,
            )
            due = datetime.now(UTC) + retry
