"""`mtlskit ca serve` and `mtlskit ca token`: the online CA and its enrolment tokens."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from mtlskit.cli._common import add_dir, add_password_file, password_from
from mtlskit.durations import format_duration, parse_duration
from mtlskit.errors import ConfigError

__all__ = ["register_serve"]


def register_serve(sub: Any) -> None:
    """Add `serve` and `token` to the `ca` command group's subparsers."""
    p = sub.add_parser(
        "serve",
        help="serve the CA online: /roots, /intermediates, /crl, POST /renew and /sign",
        description="Serve this CA over HTTPS: GET /roots, /intermediates, /crl (DER) and "
        "/crl.pem; POST /renew (mTLS with the current certificate, body a PEM CSR) and "
        "POST /sign (Authorization: Bearer TOKEN from 'mtlskit ca token', body a PEM "
        "CSR). Certificates it issues are short-lived and never outlive the intermediate.",
    )
    add_dir(p)
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="e.g. 0.0.0.0:9443")
    p.add_argument(
        "--cert", required=True, metavar="F", help="this server's certificate chain (PEM)"
    )
    p.add_argument("--key", required=True, metavar="F", help="its private key")
    p.add_argument(
        "--crl-next-update", default="1h", metavar="DUR", help="CRL lifetime (1h); renewed at half"
    )
    p.add_argument(
        "--client-ttl", default="24h", metavar="DUR", help="client certificate lifetime (24h)"
    )
    p.add_argument(
        "--server-ttl", default="24h", metavar="DUR", help="server certificate lifetime (24h)"
    )
    p.add_argument(
        "--timeout", default="10s", metavar="DUR", help="per handshake and read or write (10s)"
    )
    p.add_argument(
        "--max-connections", type=int, default=128, metavar="N", help="served at once (128)"
    )
    add_password_file(p, "password of the CA keys, if they are encrypted")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser(
        "token",
        help="print a single-use enrolment token for POST /sign",
        description="Create a single-use token bound to NAME and its SANs; print it once "
        "(only its SHA-256 is stored). POST /sign with 'Authorization: Bearer TOKEN' and a "
        "CSR for exactly those names returns the certificate.",
    )
    p.add_argument("name", metavar="NAME", help="the certificate's common name")
    add_dir(p)
    p.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="a SAN the certificate gets (repeatable; default: NAME as a DNS name)",
    )
    p.add_argument("--ttl", default="10m", metavar="DUR", help="how long the token lasts (10m)")
    p.add_argument("--profile", default="client", choices=["client", "server"], help="(client)")
    p.set_defaults(handler=cmd_token)


def cmd_serve(args: argparse.Namespace) -> int:
    """ca serve."""
    from mtlskit.caserver.server import CAServer, ServeOptions
    from mtlskit.config import parse_address

    host, port = parse_address(args.listen, "--listen")
    ttls = {
        "client": parse_duration(args.client_ttl, what="--client-ttl"),
        "server": parse_duration(args.server_ttl, what="--server-ttl"),
    }
    if args.max_connections < 1:
        raise ConfigError("--max-connections must be at least 1", "e.g. --max-connections 128")
    options = ServeOptions(
        directory=Path(args.dir),
        host=host,
        port=port,
        cert=Path(args.cert),
        key=Path(args.key),
        password=password_from(args.password_file),
        crl_next_update=parse_duration(args.crl_next_update, what="--crl-next-update"),
        ttls=ttls,
        timeout=parse_duration(args.timeout, what="--timeout").total_seconds(),
        max_connections=args.max_connections,
    )
    try:
        server = CAServer(options)
    except OSError as exc:
        raise ConfigError(
            f"--listen {args.listen}: cannot listen: {exc.strerror or exc}",
            "choose a free port, or stop what holds it",
        ) from exc
    capped = server.service.intermediates[0].not_valid_after_utc
    print(f"serving the CA in {args.dir} on {server.url}", flush=True)
    print(
        f"  certificates: client {format_duration(ttls['client'])}, "
        f"server {format_duration(ttls['server'])}, "
        f"never past the intermediate's expiry {capped:%Y-%m-%d %H:%M}Z",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    finally:
        server.close()
    print("stopped", flush=True)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """ca token."""
    from mtlskit.caserver.service import create_token
    from mtlskit.pki.ca import CertificateAuthority

    ttl = parse_duration(args.ttl, what="--ttl")
    if ttl > timedelta(days=7):
        raise ConfigError(
            f"--ttl {args.ttl} is over 7 days: an enrolment token is meant to be short-lived",
            "give e.g. --ttl 10m, and a new token for each enrolment",
        )
    with CertificateAuthority.load(args.dir, with_key=False) as ca:
        token, expires, sans = create_token(ca, args.name, args.san, profile=args.profile, ttl=ttl)
    print(token)
    print(
        f"note: single-use {args.profile} token for CN={args.name} [{', '.join(sans)}], "
        f"expires {expires:%Y-%m-%d %H:%M:%S}Z; it is shown only once",
        file=sys.stderr,
    )
    return 0
