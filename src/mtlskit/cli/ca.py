"""`mtlskit ca ...`: create a CA, issue, sign CSRs, revoke, publish CRLs, list what was issued."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.cli._common import (
    add_dir,
    add_key_type,
    add_password_file,
    check_out_dir,
    duration_arg,
    ensure_out_dir,
    key_type_arg,
    password_from,
    print_notes,
)
from mtlskit.cli.ca_list import register as register_list
from mtlskit.cli.ca_rotate import register_rotate
from mtlskit.cli.ca_serve import register_serve
from mtlskit.demo.browser import p12_hint
from mtlskit.durations import parse_duration
from mtlskit.errors import ConfigError, PKIError
from mtlskit.pki.ca import (
    DATABASE,
    ED25519_NOTE,
    INTERMEDIATE_CERT,
    INTERMEDIATE_KEY,
    ROOT_CERT,
    ROOT_KEY,
    CertificateAuthority,
)
from mtlskit.pki.crl import REASONS
from mtlskit.pki.files import PRIVATE, OutputFile, read_file, write_files
from mtlskit.pki.issued import IssuedCertificate
from mtlskit.pki.pem import load_certificates, load_csr
from mtlskit.pki.pkcs12 import P12_PROFILES, P12Profile, password_warning, to_pkcs12
from mtlskit.pki.root_crl import root_crl
from mtlskit.pki.store import parse_serial
from mtlskit.pki.store_pg import redact_url

__all__ = ["register"]


def register(groups: Any) -> None:
    """Add the `ca` command group."""
    ca = groups.add_parser(
        "ca", help="create and run a private CA (root -> intermediate -> leaves)"
    )
    sub = ca.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("init", help="create a root CA and an issuing intermediate CA")
    add_dir(p)
    p.add_argument("--name", default="mtlskit Root CA", help="root CA common name")
    p.add_argument("--org", help="organization (O) for both CA certificates")
    add_key_type(p)
    add_password_file(p, "encrypt both CA keys with the password in this file")
    p.add_argument(
        "--db",
        metavar="URL",
        help="keep the CA database in PostgreSQL (postgresql://USER@HOST/DB), e.g. for several "
        "'ca serve' replicas; recorded in DIR/database.url for later commands (default: "
        "SQLite in DIR/ca.db)",
    )
    p.add_argument(
        "--crl-url",
        action="append",
        default=[],
        metavar="URL",
        help="where the CRL will be published (http://...): every leaf issued names it in "
        "its CRL Distribution Points; repeat for mirrors",
    )
    p.set_defaults(handler=cmd_init)

    issue = sub.add_parser("issue", help="issue a server or client certificate with a new key")
    kinds = issue.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for kind in ("server", "client"):
        k = kinds.add_parser(kind, help=f"issue a {kind} leaf (EKU {kind}Auth)")
        k.add_argument("name", metavar="NAME", help="common name; also the file names NAME.*")
        add_dir(k)
        k.add_argument(
            "--out",
            required=True,
            metavar="OUT",
            help="directory for NAME.key/.crt/.chain.pem (created 0700 if missing)",
        )
        k.add_argument(
            "--san",
            action="append",
            default=[],
            metavar="NAME",
            help="DNS name, IP, URI (spiffe://...) or email; repeat for more"
            + ("" if kind == "client" else " (default: NAME)"),
        )
        k.add_argument("--org", help="organization (O)")
        k.add_argument("--ou", help="organizational unit (OU)")
        k.add_argument("--validity", metavar="DUR", help="lifetime, e.g. 90d (default 90d)")
        add_key_type(k)
        add_password_file(k, "password of the CA keys, if they are encrypted")
        k.add_argument("--p12", action="store_true", help="also write NAME.p12 (PKCS#12)")
        k.add_argument(
            "--p12-password-file",
            metavar="F",
            help="password for NAME.p12 (default: a random one, written to NAME.p12.pass)",
        )
        k.add_argument(
            "--p12-profile",
            choices=P12_PROFILES,
            help="modern (default: AES-256, PBKDF2) or legacy (3DES, SHA-1 MAC: Windows "
            "before 10 1709, macOS before 14, Java before 8u301)",
        )
        k.add_argument("--force", action="store_true", help="replace existing output files")
        k.add_argument(
            "--lock-timeout", default="10s", metavar="DUR", help="wait for the CA database"
        )
        k.set_defaults(handler=cmd_issue)

    p = sub.add_parser("sign", help="sign a CSR that a user supplies")
    p.add_argument("csr", metavar="CSR", help="the CSR file (PEM or DER)")
    add_dir(p)
    p.add_argument("--profile", required=True, choices=["server", "client"], help="leaf profile")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="the certificate; FILE's .chain.pem beside it"
    )
    p.add_argument(
        "--san", action="append", default=[], metavar="NAME", help="add a SAN to the CSR's"
    )
    p.add_argument("--validity", metavar="DUR", help="lifetime, e.g. 90d (default 90d)")
    add_password_file(p, "password of the CA keys, if they are encrypted")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--lock-timeout", default="10s", metavar="DUR", help="wait for the CA database")
    p.set_defaults(handler=cmd_sign)

    p = sub.add_parser("revoke", help="revoke a certificate this CA issued")
    p.add_argument(
        "serial", nargs="?", metavar="SERIAL", help="serial in hex (as 'ca list' shows it)"
    )
    p.add_argument("--cert", metavar="FILE", help="revoke the certificate in this file")
    add_dir(p)
    p.add_argument("--reason", default="unspecified", help=f"one of: {', '.join(REASONS)}")
    add_password_file(p, "password of the CA keys, if they are encrypted")
    p.add_argument("--lock-timeout", default="10s", metavar="DUR", help="wait for the CA database")
    p.set_defaults(handler=cmd_revoke)

    p = sub.add_parser("crl", help="publish a CRL signed by the issuing CA (or the root)")
    add_dir(p)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the CRL (PEM)")
    p.add_argument(
        "--next-update", default="7d", metavar="DUR", help="when peers should refetch (7d)"
    )
    p.add_argument(
        "--root",
        action="store_true",
        help="signed by the root (its revoked CAs, usually none): Istio/Envoy want a CRL "
        "for every CA of a chain once one has one",
    )
    add_password_file(p, "password of the CA keys, if they are encrypted")
    p.add_argument("--lock-timeout", default="10s", metavar="DUR", help="wait for the CA database")
    p.set_defaults(handler=cmd_crl)

    register_list(sub)  # cli/ca_list.py
    register_rotate(sub)  # cli/ca_rotate.py: rotate, status
    register_serve(sub)  # cli/ca_serve.py: serve, token


def _load(args: argparse.Namespace, *, with_key: bool = True) -> CertificateAuthority:
    timeout = parse_duration(
        getattr(args, "lock_timeout", "10s"), what="--lock-timeout", allow_zero=True
    )
    return CertificateAuthority.load(
        args.dir,
        password=password_from(getattr(args, "password_file", None)),
        lock_timeout=timeout.total_seconds(),
        with_key=with_key,
    )


def cmd_init(args: argparse.Namespace) -> int:
    """ca init."""
    key_type = key_type_arg(args.key_type)
    password = password_from(args.password_file)
    if key_type == "ed25519":
        print_notes([ED25519_NOTE])
    with CertificateAuthority.create(
        args.dir,
        name=args.name,
        key_type=key_type,
        password=password,
        organization=args.org,
        db_url=args.db,
        crl_urls=args.crl_url,
    ) as ca:
        d = Path(args.dir)
        database = f"{d / DATABASE}" if args.db is None else f"{redact_url(args.db)}"
        sealed = "0600, encrypted" if password else "0600"
        rows = [
            ("created root CA", ca.root.subject.rfc4514_string()),
            ("  certificate", f"{d / ROOT_CERT}   (install on every peer that must trust you)"),
            ("  key", f"{d / ROOT_KEY}   ({sealed}; keep offline)"),
            ("created intermediate CA", ca.intermediate.subject.rfc4514_string()),
            ("  certificate", f"{d / INTERMEDIATE_CERT}"),
            ("  key", f"{d / INTERMEDIATE_KEY}   ({sealed})"),
            ("database", database),
            *[("CRL distribution point", url) for url in ca.crl_urls],
        ]
        for label, value in rows:
            print(f"{label:<24} {value}")
        print(f"next: mtlskit ca issue server NAME --dir {d} --san NAME --out OUT")
    return 0


def _report(issued: IssuedCertificate, paths: list[Path]) -> None:
    cert = issued.certificate
    print(f"issued {issued.profile} certificate {cert.subject.rfc4514_string()}")
    print(f"  serial   {issued.serial}")
    print(f"  valid    until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z")
    for path in paths:
        print(f"  wrote    {path}")


def cmd_issue(args: argparse.Namespace) -> int:
    """ca issue server|client."""
    key_type = key_type_arg(args.key_type)
    validity = duration_arg(args.validity, "--validity")
    p12_password = password_from(args.p12_password_file, "--p12-password-file")
    generated = False
    if p12_password is None and (args.p12 or args.p12_profile):
        # 24 random bytes (32 characters): the MAC's 2,048 iterations cannot protect less.
        p12_password, generated = secrets.token_urlsafe(24).encode(), True
    elif p12_password is not None and (warning := password_warning(p12_password)):
        print(f"warning: {warning}", file=sys.stderr)
    out = check_out_dir(args.out)
    paths: list[Path] = []
    with _load(args) as ca:
        issue = ca.issue_server if args.kind == "server" else ca.issue_client
        issued = issue(
            args.name,
            args.san,
            validity=validity,
            key_type=key_type,
            organization=args.org,
            unit=args.ou,
            # The directory is made only now, with the certificate in hand: a refused
            # request (wrong password, bad SAN) leaves nothing behind.
            deliver=lambda c: paths.extend(
                write_files(
                    _issued_files(c, ensure_out_dir(out), args.name, p12_password, args, generated),
                    force=args.force,
                )
            ),
        )
    print_notes(issued.notes)
    _report(issued, paths)
    if generated:
        print(f"  password {args.name}.p12.pass (generated, 0600): give it apart from the .p12")
    if p12_password is not None:
        password_file = Path(f"{args.name}.p12.pass") if generated else None
        print(p12_hint(Path(f"{args.name}.p12"), password_file))
    return 0


def _issued_files(
    issued: IssuedCertificate,
    out: Path,
    name: str,
    p12_password: bytes | None,
    args: argparse.Namespace,
    generated: bool,
) -> list[OutputFile]:
    """NAME.key/.crt/.chain.pem, and NAME.p12 in the chosen profile (+ NAME.p12.pass)."""
    files = issued.output_files(out, name)
    if p12_password is None or issued.private_key is None:
        return files
    profile: P12Profile = args.p12_profile or "modern"
    key, cert, chain = issued.private_key, issued.certificate, issued.intermediates
    p12 = to_pkcs12(name, key, cert, chain, p12_password, profile=profile)
    files.append(OutputFile(out / f"{name}.p12", p12, PRIVATE))
    if generated:
        files.append(OutputFile(out / f"{name}.p12.pass", p12_password + b"\n", PRIVATE))
    return files


def _chain_path(out: Path) -> Path:
    stem = out.name.removesuffix(".pem").removesuffix(".crt")
    return out.with_name(f"{stem}.chain.pem")


def cmd_sign(args: argparse.Namespace) -> int:
    """ca sign CSR."""
    validity = duration_arg(args.validity, "--validity")
    csr = load_csr(read_file(args.csr, "a certificate signing request"), args.csr)
    out = Path(args.out)
    paths: list[Path] = []

    def deliver(issued: IssuedCertificate) -> None:
        paths.extend(
            write_files(
                [
                    OutputFile(out, issued.cert_pem()),
                    OutputFile(_chain_path(out), issued.chain_pem()),
                ],
                force=args.force,
            )
        )

    with _load(args) as ca:
        issued = ca.sign_csr(
            csr, args.profile, validity=validity, extra_sans=args.san, deliver=deliver
        )
    print_notes(issued.notes)
    _report(issued, paths)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """ca revoke."""
    if (args.serial is None) == (args.cert is None):
        raise ConfigError(
            "give either SERIAL or --cert FILE", "e.g. 'mtlskit ca revoke 3F2A... --dir DIR'"
        )
    with _load(args) as ca:
        if args.cert is not None:
            cert = load_certificates(read_file(args.cert, "a certificate"), args.cert)[0]
            if cert.issuer != ca.intermediate.subject and not _previous_issuer(ca, cert):
                raise PKIError(
                    f"{args.cert} was issued by {cert.issuer.rfc4514_string()}, not by this CA",
                    f"revoke it with the CA that issued it, not {args.dir}",
                )
            serial = cert.serial_number
        else:
            try:
                serial = parse_serial(args.serial)
            except ValueError as exc:
                raise ConfigError(
                    f"SERIAL {args.serial!r} is not a hex serial", "copy it from 'mtlskit ca list'"
                ) from exc
        record = ca.revoke(serial, args.reason)
    print(f"revoked {record.serial} ({record.subject}), reason {record.revocation_reason}")
    print(f"next: publish a CRL with 'mtlskit ca crl --dir {args.dir} --out crl.pem'")
    return 0


def _previous_issuer(ca: CertificateAuthority, cert: x509.Certificate) -> bool:
    """Whether a rotated-out intermediate of this CA (ca rotate) issued the certificate."""
    from mtlskit.pki.rotation import read_state

    state = read_state(ca.directory)
    for previous in state.previous if state is not None else ():
        path = ca.directory / previous.intermediate
        if load_certificates(read_file(path, "a previous intermediate"), path)[0].subject == (
            cert.issuer
        ):
            return True
    return False


def cmd_crl(args: argparse.Namespace) -> int:
    """ca crl."""
    next_update = parse_duration(args.next_update, what="--next-update")
    out = Path(args.out)
    with _load(args) as ca:
        if args.root:
            password = password_from(getattr(args, "password_file", None))
            crl = root_crl(ca, password, next_update=next_update)
        else:
            crl = ca.crl(next_update=next_update)
        write_files([OutputFile(out, crl.public_bytes(serialization.Encoding.PEM))], force=True)
    signer = crl.issuer.rfc4514_string()
    print(
        f"wrote CRL {out} ({signer}): {len(crl)} revoked, next update "
        f"{crl.next_update_utc:%Y-%m-%d %H:%M}Z"
    )
    return 0
