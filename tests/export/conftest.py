"""The demo setup for the export tests: an mtlskit CA, a localhost server cert, a gateway.toml."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtlskit.errors import MtlsKitError
from mtlskit.pki import CertificateAuthority

DEMO_HEADERS = {
    "X-CLIENT-SSL-CN": "%DOWNSTREAM_PEER_SUBJECT%",
    "X-CLIENT-SSL-ISSUER": "%DOWNSTREAM_PEER_ISSUER%",
    "X-CLIENT-SSL-SAN": "%DOWNSTREAM_PEER_URI_SAN%",
}


@dataclass
class Demo:
    """The files of the demo gateway."""

    dir: Path
    toml: Path
    client_ca: Path
    cert: Path
    key: Path


def write_gateway_toml(
    directory: Path, *, policy: str, upstream: str = "http://127.0.0.1:8080", extra: str = ""
) -> Path:
    """A gateway.toml next to demo files server.chain.pem, server.key and client-ca.pem."""
    headers = "\n".join(f'{k} = "{v}"' for k, v in DEMO_HEADERS.items())
    text = f"""listen = "127.0.0.1:8443"
upstream = "{upstream}"
{extra}
[tls]
cert = "server.chain.pem"
key = "server.key"
client_ca = "client-ca.pem"

[policy]
{policy}

[headers]
{headers}
"""
    path = directory / "gateway.toml"
    path.write_text(text)
    return path


@pytest.fixture
def demo(ca: CertificateAuthority, tmp_path: Path) -> Demo:
    """client CA = the CA's root; server cert for localhost; allow_ou = ["demo"]."""
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "client-ca.pem").write_bytes(ca.root_pem())
    ca.issue_server("localhost").write(directory, "server")
    toml = write_gateway_toml(directory, policy='allow_ou = ["demo"]')
    return Demo(
        directory,
        toml,
        directory / "client-ca.pem",
        directory / "server.chain.pem",
        directory / "server.key",
    )


@dataclass
class Result:
    """What one in-process `mtlskit` run printed and returned."""

    code: int
    out: str
    err: str


def command_parser(*modules: object) -> argparse.ArgumentParser:
    """The real `mtlskit` parser when it already registers these groups, else a small one."""
    from mtlskit.cli import Parser, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = {getattr(m, "__name__", "").rsplit(".", 1)[-1] for m in modules}
    if names <= set(sub.choices):
        return parser
    small = Parser(prog="mtlskit")
    groups = small.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    groups.required = True
    for module in modules:
        module.register(groups)  # type: ignore[attr-defined]
    return small


@pytest.fixture
def kyma_cli(capsys: pytest.CaptureFixture[str]):
    """Run `mtlskit kyma ...` in-process, with main()'s error handling."""
    from mtlskit.cli import kyma

    def run(*argv: str | Path) -> Result:
        capsys.readouterr()
        try:
            args = command_parser(kyma).parse_args([str(a) for a in argv])
            code = int(args.handler(args))
        except MtlsKitError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr)
            code = exc.exit_code
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
