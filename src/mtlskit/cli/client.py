"""`mtlskit request` and `mtlskit probe`: flags, loading files, printing the nine steps."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mtlskit.cli._common import password_from, print_json
from mtlskit.client import ClientIdentity, load_identity, probe, request
from mtlskit.client.render import step_lines, verdict_lines
from mtlskit.client.request import parse_header
from mtlskit.client.trustfiles import server_trust
from mtlskit.errors import ConfigError
from mtlskit.pki.files import read_file

__all__ = ["cmd_probe", "cmd_request", "register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cert", metavar="F", help="client certificate (PEM, may hold the chain)")
    p.add_argument("--key", metavar="F", help="client private key (PEM)")
    p.add_argument(
        "--cert-type",
        choices=["pem", "p12"],
        default="pem",
        help="p12: --cert is a PKCS#12 holding key and chain",
    )
    p.add_argument("--password-file", metavar="F", help="password of the key or PKCS#12")
    p.add_argument(
        "--ca",
        metavar="F",
        help="roots that verify the server (PEM bundle or CA directory); default: the system store",
    )
    p.add_argument("--servername", metavar="NAME", help="SNI and the name to verify")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds for connect and handshake (default 10)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(groups: Any) -> None:
    """Add the `request` and `probe` commands."""
    r = groups.add_parser(
        "request",
        help="make one HTTP request with a client certificate (curl-like)",
        description="Send one HTTP/1.1 request over mTLS. The server is verified before "
        "anything is sent. Exit 0 when the exchange completed (any HTTP status but 403), "
        "1 with a failure code otherwise (docs/client.md).",
    )
    r.add_argument("url", metavar="URL", help="https://host[:port]/path")
    _common(r)
    r.add_argument("-X", "--request", dest="method", metavar="METHOD", help="HTTP method")
    r.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'K: V'",
        help="request header (repeatable)",
    )
    r.add_argument("-d", "--data", metavar="DATA", help="request body (@FILE reads a file)")
    r.add_argument("--trace", action="store_true", help="show the nine-step walk-through")
    r.set_defaults(handler=cmd_request)

    p = groups.add_parser(
        "probe",
        help="diagnose an mTLS server: chain, client CA names, preflight, nine steps",
        description="Connect to HOST:PORT, record the handshake, verify the server chain, "
        "list the client CA names it accepts and say what fails and how to fix it. Sends no "
        "application data. Exit 0 for ok, 1 with a failure code (docs/client.md).",
    )
    p.add_argument("target", metavar="HOST:PORT")
    _common(p)
    p.set_defaults(handler=cmd_probe)


def _identity(args: argparse.Namespace) -> ClientIdentity | None:
    if args.cert is None:
        if args.key is not None:
            raise ConfigError("--key needs --cert", "give the client certificate with --cert")
        return None
    return load_identity(
        args.cert, args.key, cert_type=args.cert_type, password=password_from(args.password_file)
    )


def _split_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{text!r} is not HOST:PORT", "write e.g. localhost:8443")
    return host.strip("[]"), int(port)


def cmd_probe(args: argparse.Namespace) -> int:
    """probe."""
    host, port = _split_target(args.target)
    report = probe(
        host,
        port,
        trust=server_trust(args.ca),
        identity=_identity(args),
        servername=args.servername,
        timeout=args.timeout,
    )
    if args.json:
        print_json(report.to_json())
        return 0 if report.code == "ok" else 1
    data = report.to_json()
    tls, server, auth = data["tls"], data["server"], data["client_auth"]
    out = sys.stdout
    print(f"probe {report.target} (servername {report.servername})", file=out)
    if tls["version"]:
        print(
            f"tls       {tls['version']}, {tls['cipher']}, ALPN {tls['alpn'] or 'none'}, "
            f"session tickets {'offered' if tls['session_resumption'] else 'not seen'}",
            file=out,
        )
    if server["chain"]:
        print(
            f"server chain as sent ({server['chain_source']}, "
            f"{'complete' if server['complete'] else 'INCOMPLETE'}):",
            file=out,
        )
        for i, c in enumerate(server["chain"]):
            eku = ", ".join(c["eku"]) or "any"
            print(f"  [{i}] {c['subject']}  issuer {c['issuer']}", file=out)
            print(
                f"      {c['not_before']} -> {c['not_after']}"
                f"{' EXPIRED' if c['expired'] else ''}; EKU {eku}",
                file=out,
            )
        verdict = "verified" if server["verified"] else f"NOT verified: {server['reason']}"
        print(f"  {verdict} against {server['trust']}", file=out)
        if server["fix"]:
            print(f"  {server['explanation']}", file=out)
            print(f"  fix: {server['fix']}", file=out)
    print(f"client certificate: {auth['requested']}", file=out)
    for name in auth["ca_names"]:
        print(f"  accepts CA {name}", file=out)
    if auth["requested"] != "none" and auth["ca_names_source"] != "not_requested":
        print(f"  (CA names from: {auth['ca_names_source']})", file=out)
    if report.preflight:
        pre = report.preflight
        print(f"preflight of {pre.certificate}:", file=out)
        print(
            f"  chains to an accepted CA  {_yes(pre.chains_to_accepted_ca)}"
            + (f" ({pre.accepted_via})" if pre.accepted_via else ""),
            file=out,
        )
        print(f"  clientAuth                {_yes(pre.client_auth)}", file=out)
        print(
            f"  valid now                 {_yes(pre.valid_now)} (until {pre.not_after})", file=out
        )
        print(f"  intermediate included     {_yes(pre.intermediate_included)}", file=out)
        for problem in pre.problems:
            print(f"  problem: {problem}", file=out)
        if pre.fix:
            print(f"  fix ({pre.code}, {pre.at_fault}): {pre.fix}", file=out)
    print("steps:", file=out)
    for line in [*step_lines(report.trace), *verdict_lines(report.trace)]:
        print(line, file=out)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0 if report.code == "ok" else 1


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "NO"


# --data @file is held in memory and sent with a Content-Length, as curl does: 1 GiB is
# more than any API call carries, and still stops a wrong path (a disk image) early.
_BODY_MAX_BYTES = 1024**3


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        return read_file(data[1:], "the request body", max_bytes=_BODY_MAX_BYTES)
    return data.encode()


def cmd_request(args: argparse.Namespace) -> int:
    """request."""
    headers = [parse_header(h) for h in args.header]
    body = _body(args.data)
    method = (args.method or ("POST" if args.data is not None else "GET")).upper()
    result = request(
        args.url,
        trust=server_trust(args.ca),
        identity=_identity(args),
        method=method,
        headers=headers,
        data=body,
        servername=args.servername,
        timeout=args.timeout,
    )
    if args.json:
        print_json(result.to_json())
        return 0 if result.code == "ok" else 1
    if args.trace:
        print("steps:", *step_lines(result.trace), sep="\n", file=sys.stderr)
    if result.response is not None:
        sys.stdout.buffer.write(result.response.body)
        sys.stdout.flush()
    if result.code != "ok":
        print(f"error: {result.code}: {result.trace.explanation}", file=sys.stderr)
        print(f"hint: {result.trace.fix}", file=sys.stderr)
        return 1
    return 0
