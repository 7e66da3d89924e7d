"""The demo's flow: the chain of trust, the echo workload behind the gateway, three calls.

It prints as it goes (this is the demo's whole output); the gateway's own log goes to
stderr. `run()` returns the exit code: 0 when every call went as the seed predicts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mtlskit.client import ServerTrust, load_identity, request
from mtlskit.client.render import step_lines
from mtlskit.client.request import RequestResult
from mtlskit.config import load_gateway_config
from mtlskit.demo.browser import browser_lines
from mtlskit.demo.certs import prepare
from mtlskit.demo.echo import EchoServer
from mtlskit.errors import ConfigError
from mtlskit.gateway.embedded import embedded_gateway
from mtlskit.gateway.logs import EventLog
from mtlskit.pki.pem import load_certificates

__all__ = ["CALLS", "run"]

# who calls -> (heading, the outcome the seed's flow predicts)
CALLS = {
    "demo-client": ("demo-client, with a certificate from the trusted CA", "ok"),
    "no certificate": ("a client without a certificate", "client_cert_required"),
    "intruder": ("intruder, with a certificate from another CA", "client_cert_unknown_ca"),
}


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
    print("\n".join(step_lines(result.trace)))
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


def run(base: Path, port: int = 8443, *, once: bool = False, browser: bool = False) -> int:
    """The whole demo: files under `base`, the gateway on 127.0.0.1:`port` (0: any).

    Args:
        base: where the CAs and certificates live (made on first use, then reused).
        port: the gateway's port.
        once: stop after the three calls instead of serving until Ctrl-C.
        browser: skip the three calls; say how to make the call from a browser instead.

    Returns:
        0 when each call ended as predicted, else 1.

    Raises:
        ConfigError: the port is in use (the hint says how to pick another).
    """
    out = _Out()
    out.heading("1. the chain of trust (seed: root CA -> intermediate CA -> leaves)")
    files = prepare(base)
    _tree(files, out)
    print(f"files in {base}")
    with EchoServer() as echo:
        config = load_gateway_config(
            {
                "listen": f"127.0.0.1:{port}",
                "upstream": echo.url,
                "workers": 1,
                "tls": {
                    "cert": str(files["server.chain.pem"]),
                    "key": str(files["server.key"]),
                    "client_ca": str(files["root"]),
                },
                "policy": {"allow_ou": ["demo"]},
                "headers": {"X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
                "access_log": not once,
            }
        )
        # The gateway's own log goes to stderr while it runs for you; once keeps it quiet.
        log = EventLog(sys.stderr, level="error" if once else "info")
        try:
            with embedded_gateway(config, log) as gw:
                if browser:
                    return _browser(out, files, gw.port, echo.url, once=once)
                return _calls(out, files, gw.port, echo.url, once=once)
        except ConfigError as exc:
            if "in use" not in exc.message:
                raise
            hint = "pass --port 0 (any free port) or another --port"
            raise ConfigError(exc.message, hint) from exc


def _gateway(out: _Out, port: int, upstream: str) -> None:
    out.heading(f"2. the mTLS gateway on https://localhost:{port} -> echo workload {upstream}")
    print("   requires a client certificate from the demo root CA, admits OU 'demo',")
    print("   forwards the caller's identity as x-forwarded-client-cert and X-Client-Subject")


def _your_browser(out: _Out, files: dict[str, Path], port: int) -> None:
    out.heading("in your own browser")
    p12, password = files["demo-client.p12"], files["demo-client.p12.pass"]
    url = f"https://localhost:{port}/hello"
    print("\n".join(browser_lines(p12, password, files["root"], url)))


def _browser(out: _Out, files: dict[str, Path], port: int, upstream: str, *, once: bool) -> int:
    _gateway(out, port, upstream)
    _your_browser(out, files, port)
    return 0 if once else _serve(ok=True)


def _serve(*, ok: bool) -> int:
    print("\nthe gateway keeps running; Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped")
    return 0 if ok else 1


def _calls(out: _Out, files: dict[str, Path], port: int, upstream: str, *, once: bool) -> int:
    _gateway(out, port, upstream)
    url = f"https://localhost:{port}/hello"
    root = files["root"]
    anchors = tuple(load_certificates(root.read_bytes()))
    trust = ServerTrust(anchors, source=f"--ca {root}", ca_file=root)
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
    print(
        f"mtlskit request --trace {url} --ca {files['root']} "
        f"--cert {certs}/intruder.chain.pem --key {certs}/intruder.key"
    )
    _your_browser(out, files, port)
    if once:
        return 0 if all(results) else 1
    return _serve(ok=all(results))
