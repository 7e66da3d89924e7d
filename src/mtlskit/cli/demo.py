"""`mtlskit demo`: the seed's whole flow on one machine: CA, gateway, three real clients."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mtlskit.cli.client import print_steps
from mtlskit.client import ServerTrust, load_identity, request
from mtlskit.client.request import RequestResult
from mtlskit.config import load_gateway_config
from mtlskit.echo import EchoServer
from mtlskit.errors import ConfigError
from mtlskit.gateway.embedded import embedded_gateway
from mtlskit.gateway.logs import EventLog
from mtlskit.pki import CertificateAuthority
from mtlskit.pki.pem import load_certificates

__all__ = ["register"]

# who calls -> (heading, the outcome the seed's flow predicts)
CALLS = {
    "demo-client": ("demo-client, with a certificate from the trusted CA", "ok"),
    "no certificate": ("a client without a certificate", "client_cert_required"),
    "intruder": ("intruder, with a certificate from another CA", "client_cert_unknown_ca"),
}


def register(groups: Any) -> None:
    """Add `mtlskit demo`."""
    p = groups.add_parser(
        "demo",
        help="show the whole mTLS flow working on this machine",
        description="Create a CA and certificates, start a workload and the mTLS gateway, "
        "make three real calls, then keep the gateway running until Ctrl-C.",
    )
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="where the demo's CA and certificates live (default: ~/.local/share/mtlskit/demo)",
    )
    p.add_argument("--port", type=int, default=8443, help="gateway port (default 8443; 0: any)")
    p.add_argument(
        "--once",
        action="store_true",
        help="stop after the three calls; exit 0 only if each went as expected",
    )
    p.set_defaults(handler=cmd_demo)


class _Out:
    """Headings and colour when stdout is a terminal; plain text otherwise."""

    def __init__(self) -> None:
        self.color = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def heading(self, text: str) -> None:
        print("\n" + self._paint(f"== {text}", "1"))

    def good(self, text: str) -> str:
        return self._paint(text, "32")

    def bad(self, text: str) -> str:
        return self._paint(text, "31")


def _default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mtlskit" / "demo"


def _fresh(path: Path) -> bool:
    """True when the certificate file exists and is valid for at least another day."""
    try:
        cert = load_certificates(path.read_bytes(), path)[0]
    except (OSError, ValueError, Exception):
        return False
    return cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)


def prepare(base: Path) -> dict[str, Path]:
    """Create (or reuse) the demo's two CAs and four certificates under `base`."""
    certs = base / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    ca_dir, other_dir = base / "ca", base / "intruder-ca"
    ca = (CertificateAuthority.load(ca_dir) if (ca_dir / "root.crt").exists()
          else CertificateAuthority.create(ca_dir, name="mtlskit Demo Root CA"))  # fmt: skip
    with ca:
        if not _fresh(certs / "server.crt"):
            server = ca.issue_server("localhost", ["localhost", "127.0.0.1"])
            server.write(certs, "server", force=True)
        if not _fresh(certs / "demo-client.crt"):
            ca.issue_client("demo-client", ["spiffe://demo.mtlskit.local/ns/demo/sa/client"],
                            organization="mtlskit demo", unit="demo").write(
                certs, "demo-client", force=True)  # fmt: skip
    other = (CertificateAuthority.load(other_dir) if (other_dir / "root.crt").exists()
             else CertificateAuthority.create(other_dir, name="Untrusted Root CA"))  # fmt: skip
    with other:
        if not _fresh(certs / "intruder.crt"):
            other.issue_client("intruder", ["spiffe://elsewhere.example/sa/intruder"],
                               unit="demo").write(certs, "intruder", force=True)  # fmt: skip
    return {
        "root": ca_dir / "root.crt",
        "intermediate": ca_dir / "intermediate.crt",
        "other_root": other_dir / "root.crt",
        **{
            f"{n}.{e}": certs / f"{n}.{e}"
            for n in ("server", "demo-client", "intruder")
            for e in ("crt", "key", "chain.pem")
        },
    }


def _cn(path: Path) -> str:
    cert = load_certificates(path.read_bytes(), path)[0]
    return cert.subject.rfc4514_string()


def _tree(files: dict[str, Path], out: _Out) -> None:
    rows = [
        ("", files["root"], "root CA: the gateway trusts it (--client-ca)"),
        ("└─ ", files["intermediate"], "intermediate CA: signs every leaf below"),
        ("   ├─ ", files["server.crt"], "server leaf: localhost, 127.0.0.1"),
        ("   └─ ", files["demo-client.crt"], "client leaf, OU demo"),
        ("", files["other_root"], out.bad("another root CA: NOT trusted by the gateway")),
        ("└─ ... ", files["intruder.crt"], "client leaf, OU demo"),
    ]
    width = max(len(prefix + _cn(path)) for prefix, path, _ in rows) + 2
    for prefix, path, what in rows:
        print(f"{prefix + _cn(path):<{width}}{what}")


def _call(url: str, trust: ServerTrust, files: dict[str, Path], who: str) -> RequestResult:
    identity = None
    if who != "no certificate":
        identity = load_identity(str(files[f"{who}.chain.pem"]), str(files[f"{who}.key"]))
    return request(url, trust=trust, identity=identity, timeout=10)


def _show(result: RequestResult, who: str, out: _Out) -> bool:
    print_steps(result.trace, sys.stdout)
    expected = CALLS[who][1]
    ok = result.code == expected
    mark = out.good("as expected") if ok else out.bad(f"UNEXPECTED (wanted {expected})")
    print(f"outcome: {result.code} ({mark})")
    if result.code != "ok":
        step = f" at step {result.trace.failed_step}" if result.trace.failed_step else ""
        print(f"  why{step}: {result.trace.explanation}")
        print(f"  fix: {result.trace.fix}")
    elif result.response is not None:
        seen = json.loads(result.response.body)
        identity = seen.get("identity") or {}
        xfcc = [v for k, v in seen["headers"] if k.lower() == "x-forwarded-client-cert"]
        status = result.response.status
        print(f"  HTTP {status}; the workload saw subject {identity.get('subject')}")
        print(f"  SPIFFE ID {identity.get('spiffe_id')}")
        print(f"  x-forwarded-client-cert: {xfcc[0][:110] + '...' if xfcc else 'MISSING'}")
    return ok


def cmd_demo(args: argparse.Namespace) -> int:
    """mtlskit demo."""
    out = _Out()
    base = Path(args.dir) if args.dir else _default_dir()
    out.heading("1. the chain of trust (seed: root CA -> intermediate CA -> leaves)")
    files = prepare(base)
    _tree(files, out)
    print(f"files in {base}")
    with EchoServer() as echo:
        config = load_gateway_config({
            "listen": f"127.0.0.1:{args.port}", "upstream": echo.url, "workers": 1,
            "tls": {"cert": str(files["server.chain.pem"]), "key": str(files["server.key"]),
                    "client_ca": str(files["root"])},
            "policy": {"allow_ou": ["demo"]},
            "headers": {"X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
            "access_log": not args.once,
        })  # fmt: skip
        # The gateway's own log goes to stderr while it runs for you; --once keeps it quiet.
        log = EventLog(sys.stderr, level="error" if args.once else "info")
        try:
            with embedded_gateway(config, log) as gw:
                return _run(args, out, files, gw.port, echo.url)
        except ConfigError as exc:
            if "in use" not in exc.message:
                raise
            hint = "pass --port 0 (any free port) or another --port"
            raise ConfigError(exc.message, hint) from exc


def _run(
    args: argparse.Namespace, out: _Out, files: dict[str, Path], port: int, upstream: str
) -> int:
    out.heading(f"2. the mTLS gateway on https://localhost:{port} -> echo workload {upstream}")
    print("   requires a client certificate from the demo root CA, admits OU 'demo',")
    print("   forwards the caller's identity as x-forwarded-client-cert and X-Client-Subject")
    url = f"https://localhost:{port}/hello"
    trust = ServerTrust(tuple(load_certificates(files["root"].read_bytes())), (),
                        f"--ca {files['root']}", files["root"])  # fmt: skip
    results = []
    for number, (who, (heading, _)) in enumerate(CALLS.items(), start=3):
        out.heading(f"{number}. {heading}")
        sys.stdout.flush()
        results.append(_show(_call(url, trust, files, who), who, out))
    out.heading("try it yourself (in another terminal)")
    certs = files["demo-client.key"].parent
    print(
        f"curl --cacert {files['root']} --cert {certs}/demo-client.chain.pem \\\n"
        f"     --key {certs}/demo-client.key https://localhost:{port}/hello"
    )
    print(
        f"mtlskit probe localhost:{port} --ca {files['root']} "
        f"--cert {certs}/demo-client.chain.pem --key {certs}/demo-client.key"
    )
    print(f"mtlskit request --trace {url} --ca {files['root']} "
          f"--cert {certs}/intruder.chain.pem --key {certs}/intruder.key")  # fmt: skip
    if args.once:
        return 0 if all(results) else 1
    print("\nthe gateway keeps running; Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped")
    return 0 if all(results) else 1
