"""`mtlskit cert verify`: read the files, call trust.verify_chain, print the answer."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mtlskit.cli._common import print_json, print_notes
from mtlskit.client.trustfiles import load_trust
from mtlskit.errors import ConfigError
from mtlskit.pki.files import CRL_MAX_BYTES, read_file
from mtlskit.pki.pem import load_certificates, load_crl
from mtlskit.trust import RevocationList, VerificationResult, load_crl_set, verify_chain

__all__ = ["cmd_verify", "parse_at", "register"]

_CODES = "every code and its fix: docs/trust.md"


def register(sub: Any) -> None:
    """Add `cert verify` to the `cert` group."""
    p = sub.add_parser(
        "verify",
        help="verify a certificate chain for client or server use, and explain failures",
        description="Verify LEAF (a bundle: leaf first, then intermediates) against the "
        "trusted roots in --ca. Exit 0 when valid, 1 when not (with the reason code, the "
        "certificate, the seed step it breaks and the fix), 2 on usage errors.",
    )
    p.add_argument("leaf", metavar="LEAF", help="the peer's certificate or chain (PEM/DER)")
    p.add_argument("--chain", metavar="FILE", help="intermediates the peer sends, if not in LEAF")
    p.add_argument(
        "--ca",
        required=True,
        metavar="ROOTS",
        help="trusted roots: a PEM bundle (self-signed certificates are the roots, the "
        "others known intermediates) or an mtlskit CA directory",
    )
    p.add_argument(
        "--purpose",
        required=True,
        choices=["client", "server"],
        help="client: we are the server checking a client (step 7); "
        "server: we are the client checking a server (step 5)",
    )
    p.add_argument("--host", metavar="NAME", help="server purpose: the name the leaf must match")
    p.add_argument(
        "--crl", action="append", default=[], metavar="FILE", help="a CRL to check (repeatable)"
    )
    p.add_argument(
        "--at", metavar="TIME", help="validation time, ISO 8601 (e.g. 2026-01-01T00:00:00Z)"
    )
    p.add_argument("--max-depth", type=int, metavar="N", help="most intermediates allowed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_verify)


def parse_at(text: str | None) -> datetime:
    """The validation time: --at as ISO 8601 (naive means UTC), or now.

    Raises:
        ConfigError: not an ISO 8601 date or time.
    """
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"--at {text!r} is not an ISO 8601 time", "write e.g. --at 2026-01-01T00:00:00Z"
        ) from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _load_crls(paths: list[str], candidates: list[x509.Certificate]) -> tuple[RevocationList, ...]:
    loaded = []
    for path in paths:
        crl = load_crl(read_file(path, "a CRL", max_bytes=CRL_MAX_BYTES), path)
        loaded.append(load_crl_set(crl, candidates))
    return tuple(loaded)


def _print(result: VerificationResult) -> None:
    if result.valid:
        print(f"ok: {result.subject} is valid for {result.purpose} authentication")
        print(f"  path         {' -> '.join(result.path)}")
        print(f"  checked      {result.step}")
        return
    print(f"invalid: {result.code.value}")
    rows = [
        ("certificate", result.subject),
        ("explanation", result.explanation),
        ("step", result.step),
        ("fix", result.fix),
    ]
    if result.path:
        rows.append(("path", " -> ".join(result.path)))
    rows.extend((key.replace("_", " "), value) for key, value in sorted(result.details.items()))
    for key, value in rows:
        print(f"  {key:<12} {value}")
    print(f"  {'codes':<12} {_CODES}")


def cmd_verify(args: argparse.Namespace) -> int:
    """cert verify."""
    if args.host is not None and args.purpose != "server":
        raise ConfigError(
            "--host applies to --purpose server only",
            "client certificates are matched by identity policy, not by host name",
        )
    if args.max_depth is not None and args.max_depth < 0:
        raise ConfigError(f"--max-depth {args.max_depth} is negative", "give 0 or more")
    now = parse_at(args.at)
    sent = load_certificates(read_file(args.leaf, "the peer's certificate"), args.leaf)
    if args.chain:
        sent += load_certificates(read_file(args.chain, "intermediate certificates"), args.chain)
    trust = load_trust(args.ca)
    crls = _load_crls(args.crl, [*trust.anchors, *trust.hints, *sent])
    result = verify_chain(
        sent[0],
        sent[1:],
        trust.anchors,
        purpose=args.purpose,
        now=now,
        host=args.host,
        hints=trust.hints,
        crls=crls,
        max_depth=args.max_depth,
    )
    print_notes(result.notes)
    if args.json:
        print_json(result.to_json())
    else:
        _print(result)
    return 0 if result.valid else 1
