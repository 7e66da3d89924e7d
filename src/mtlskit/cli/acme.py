"""`mtlskit acme issue`: a server certificate from an ACME CA over HTTP-01."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from mtlskit.config import parse_address
from mtlskit.errors import ConfigError

__all__ = ["cmd_issue", "register"]


def register(groups: Any) -> None:
    """Add `mtlskit acme issue`."""
    group = groups.add_parser(
        "acme",
        help="server certificates from an ACME CA (Let's Encrypt, Pebble, ...)",
        description="Obtain server certificates over ACME HTTP-01.",
    )
    sub = group.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser(
        "issue",
        help="obtain a server certificate over HTTP-01",
        description="Register (or reuse) an ACME account, answer HTTP-01 for each --domain "
        "with a responder on --http-01, and write NAME.key, NAME.crt and NAME.chain.pem "
        "into --out, as `ca issue` does. The account key is kept in OUT/acme-account.key.",
    )
    p.add_argument("--directory", required=True, metavar="URL", help="the ACME directory URL")
    p.add_argument(
        "--domain", required=True, action="append", metavar="NAME", help="DNS name (repeatable)"
    )
    p.add_argument("--email", metavar="E", help="account contact address")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for the files (created 0700 if missing)",
    )
    p.add_argument("--name", default="server", help="file stem (default server)")
    p.add_argument(
        "--http-01",
        dest="http01",
        default=":80",
        metavar="ADDR",
        help="where the HTTP-01 responder listens, host:port (default :80)",
    )
    p.add_argument(
        "--ca-bundle", metavar="F", help="CA certificates that verify the ACME server's TLS"
    )
    p.add_argument("--timeout", default="90s", metavar="DURATION", help="validation deadline")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(handler=cmd_issue)


def cmd_issue(args: argparse.Namespace) -> int:
    """acme issue."""
    from mtlskit.acme.client import AcmeSettings, load_or_create_account_key, obtain_certificate
    from mtlskit.cli._common import check_out_dir, duration_arg, ensure_out_dir

    out = check_out_dir(args.out)
    if not args.force:
        existing = [p for p in (out / f"{args.name}.key", out / f"{args.name}.crt") if p.exists()]
        if existing:  # checked before the CA is asked, so no certificate is wasted
            raise ConfigError(f"{existing[0]} already exists", "pass --force to replace it")
    settings = AcmeSettings(
        directory=args.directory,
        domains=tuple(d.strip().lower().rstrip(".") for d in args.domain),
        email=args.email,
        http01=parse_address(args.http01, "--http-01"),
        ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
        timeout=duration_arg(args.timeout, "--timeout") or timedelta(seconds=90),
    )
    # Made once every flag has been read; it holds the account key from here on.
    account_key = load_or_create_account_key(ensure_out_dir(out) / "acme-account.key")
    issued = obtain_certificate(settings, account_key)
    paths = issued.write(out, args.name, force=args.force)
    cert = issued.certificate
    print(f"issued server certificate {cert.subject.rfc4514_string()}")
    print(f"  issuer   {cert.issuer.rfc4514_string()}")
    print(f"  valid    until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z")
    for path in paths:
        print(f"  wrote    {path}")
    return 0
