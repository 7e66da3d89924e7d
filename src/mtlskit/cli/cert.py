"""`mtlskit cert ...`: look inside certificate files and verify chains."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mtlskit.cli import verify
from mtlskit.cli._common import password_from, print_json
from mtlskit.pki.describe import CertificateInfo, arrange_chain, describe_certificate
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import Bundle, load_bundle

__all__ = ["register"]


def register(groups: Any) -> None:
    """Add the `cert` command group."""
    cert = groups.add_parser("cert", help="inspect and verify certificates")
    sub = cert.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "inspect", help="show certificates (PEM bundle, DER, PKCS#12) as a chain tree"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="certificate files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--password-file", metavar="F", help="password of a PKCS#12 file")
    p.set_defaults(handler=cmd_inspect)

    verify.register(sub)


def _lines(info: CertificateInfo) -> list[str]:
    bc = "absent" if info.is_ca is None else f"CA:{str(info.is_ca).upper()}"
    if info.path_length is not None:
        bc += f", pathlen:{info.path_length}"
    fields = [
        ("issuer", info.issuer),
        ("validity", f"{info.not_before} -> {info.not_after} ({info.remaining})"),
        ("SANs", ", ".join(info.sans) or "none"),
        ("key", info.key),
        ("basic", bc),
        ("key usage", ", ".join(info.key_usage) or "absent"),
        ("ext usage", ", ".join(info.extended_key_usage) or "absent (any)"),
        ("CRL", ", ".join(info.crl_urls) or "no distribution point"),
        ("serial", info.serial),
        ("sha256", info.fingerprint_sha256),
    ]
    return [f"{name:<10} {value}" for name, value in fields]


def _render(path: str, bundle: Bundle, now: datetime) -> list[str]:
    kind = bundle.kind + (", with private key" if bundle.key is not None else "")
    lines = [f"{path} ({kind}, {len(bundle.certificates)} certificate(s))"]
    for node in arrange_chain(bundle.certificates):
        info = describe_certificate(node.certificate, now)
        head = "   " * max(node.depth - 1, 0) + ("└─ " if node.depth else "")
        pad = "   " * node.depth + "   "
        lines.append(
            f"{head}{info.subject}  [{info.role}{', self-signed' if info.self_signed else ''}]"
        )
        lines.extend(pad + line for line in _lines(info))
        if node.depth == 0 and not info.self_signed:
            lines.append(f"{pad}(issued by {info.issuer}: not in this file)")
    return lines


def cmd_inspect(args: argparse.Namespace) -> int:
    """cert inspect."""
    now = datetime.now(UTC)
    password = password_from(args.password_file)
    loaded = [
        (f, load_bundle(read_file(f, "a certificate file"), f, password=password))
        for f in args.files
    ]
    if args.json:
        print_json(
            [
                {
                    "path": str(Path(f)),
                    "kind": b.kind,
                    "has_private_key": b.key is not None,
                    "certificates": [
                        {**describe_certificate(n.certificate, now).to_json(), "depth": n.depth}
                        for n in arrange_chain(b.certificates)
                    ],
                }
                for f, b in loaded
            ]
        )
        return 0
    for i, (f, bundle) in enumerate(loaded):
        if i:
            print()
        print("\n".join(_render(f, bundle, now)))
    return 0
