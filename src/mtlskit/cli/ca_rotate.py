"""`mtlskit ca rotate` and `mtlskit ca status`: rotating the CA with an overlap, and its phase."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from mtlskit.cli._common import add_dir, add_password_file, password_from, print_json
from mtlskit.durations import parse_duration
from mtlskit.errors import ConfigError, PKIError
from mtlskit.pki.files import OutputFile, write_files
from mtlskit.pki.rotation import TRANSITION_BUNDLE, read_state, retire, rotate
from mtlskit.pki.rotation_status import previous_crl, status

__all__ = ["register_rotate"]

_PHASES = {"old_only": "old only", "overlap": "overlap", "new_only": "new only"}


def register_rotate(sub: Any) -> None:
    """Add `rotate` and `status` to the `ca` command group's subparsers."""
    p = sub.add_parser(
        "rotate",
        help="new intermediate (or root) with an overlap; --retire ends the overlap",
        description="Make a new intermediate signed by the root (with --root: a new root, "
        "cross-signed by the old one, and a new intermediate under it) and start an overlap: "
        f"DIR/{TRANSITION_BUNDLE} holds old and new for client_ca files, the old intermediate "
        "stays in DIR/previous/ (its leaves stay valid and revocable), and new certificates "
        "come from the new intermediate. --retire ends the overlap.",
    )
    add_dir(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--root", action="store_true", help="also a new root, cross-signed")
    mode.add_argument(
        "--retire", action="store_true", help="end the overlap: the bundle holds the new CA only"
    )
    mode.add_argument(
        "--previous-crl",
        metavar="FILE",
        help="only publish a fresh CRL of the previous intermediate to FILE (PEM)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="--retire even though the old intermediate still has valid leaves",
    )
    p.add_argument(
        "--next-update", default="7d", metavar="DUR", help="with --previous-crl: refetch (7d)"
    )
    add_password_file(p, "password of the CA keys, if they are encrypted")
    p.add_argument("--lock-timeout", default="10s", metavar="DUR", help="wait for the CA database")
    p.set_defaults(handler=cmd_rotate)

    p = sub.add_parser("status", help="rotation phase, CA expiry, leaves per intermediate")
    add_dir(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--lock-timeout", default="10s", metavar="DUR", help="wait for the CA database")
    p.set_defaults(handler=cmd_status)


def _timeout(args: argparse.Namespace) -> float:
    return parse_duration(args.lock_timeout, what="--lock-timeout", allow_zero=True).total_seconds()


def cmd_rotate(args: argparse.Namespace) -> int:
    """ca rotate [--root | --retire | --previous-crl FILE]."""
    directory = Path(args.dir)
    if args.force and not args.retire:
        raise ConfigError("--force goes with --retire only", "drop --force, or add --retire")
    if args.previous_crl:
        crl = previous_crl(
            directory,
            password=password_from(args.password_file),
            next_update=parse_duration(args.next_update, what="--next-update"),
            lock_timeout=_timeout(args),
        )
        out = Path(args.previous_crl)
        write_files([OutputFile(out, crl.public_bytes(serialization.Encoding.PEM))], force=True)
        print(
            f"wrote CRL {out} of {crl.issuer.rfc4514_string()}: {len(crl)} revoked, "
            f"next update {crl.next_update_utc:%Y-%m-%d %H:%M}Z"
        )
        return 0
    if args.retire:
        return _retire(directory, args)
    done = rotate(
        directory,
        new_root=args.root,
        password=password_from(args.password_file),
        lock_timeout=_timeout(args),
    )
    old = done.state.last
    if done.cross is not None:
        print(f"new root CA              {done.root.subject.rfc4514_string()}")
        print(f"  cross-signed by        {done.cross.issuer.rfc4514_string()}")
        print(f"  cross certificate      {directory / done.state.cross}")
        print(f"  old root kept          {directory / old.root}")
    print(f"new intermediate CA      {done.intermediate.subject.rfc4514_string()}")
    print(f"  valid until            {done.intermediate.not_valid_after_utc:%Y-%m-%d %H:%M}Z")
    print(f"old intermediate kept    {directory / old.intermediate} (its leaves stay valid)")
    print(f"transition bundle        {directory / TRANSITION_BUNDLE} (old and new)")
    print("phase                    overlap: new certificates come from the new intermediate")
    print(
        f"next: put {directory / TRANSITION_BUNDLE} in the gateway's client_ca and reload "
        f"(see 'mtlskit ca status --dir {directory}')"
    )
    return 0


def _retire(directory: Path, args: argparse.Namespace) -> int:
    state = read_state(directory)
    if state is not None and state.phase == "overlap" and not args.force:
        shown = status(directory, lock_timeout=_timeout(args))
        old = next(c for c in shown.certificates if c.role == "previous intermediate")
        if old.valid_leaves:
            raise PKIError(
                f"the old intermediate ({old.subject}) still has {old.valid_leaves} valid "
                "leaves; retiring it refuses them wherever only the new CA is trusted",
                "renew them first (or wait until they expire), or pass --force",
                exit_code=1,
            )
    retire(directory)
    print(f"retired the old intermediate; {directory / TRANSITION_BUNDLE} holds the new CA only")
    print("phase                    new only")
    print(f"next: put {directory / TRANSITION_BUNDLE} in the gateway's client_ca and reload")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """ca status."""
    now = datetime.now(UTC)
    shown = status(Path(args.dir), now=now, lock_timeout=_timeout(args))
    if args.json:
        data = asdict(shown)
        for cert in data["certificates"]:
            cert["not_after"] = cert["not_after"].strftime("%Y-%m-%dT%H:%M:%SZ")
        print_json(data)
        return 0
    kind = f" (last rotation: {shown.kind})" if shown.kind else ""
    print(f"phase: {_PHASES[shown.phase]}{kind}")
    width = max(len(c.role) for c in shown.certificates)
    for cert in shown.certificates:
        leaves = "" if cert.valid_leaves is None else f", {cert.valid_leaves} valid leaves"
        days = (cert.not_after - now).days
        print(
            f"  {cert.role:<{width}}  {cert.subject}  (serial {cert.serial}, notAfter "
            f"{cert.not_after:%Y-%m-%d %H:%M}Z, {days}d left{leaves})  {cert.file}"
        )
    for step in shown.next_steps:
        print(f"next: {step}")
    return 0
