"""The `mtlskit` command line: argument wiring, error printing and exit codes only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from mtlskit import __version__
from mtlskit.errors import MtlsKitError, UsageError

__all__ = ["build_parser", "main"]


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one `error:` line and one `hint:` line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see '{self.prog} --help'")


def build_parser() -> Parser:
    """The whole command tree; each group registers its own subcommands."""
    from mtlskit.cli import acme, ca, cert, client, demo, echo, gateway, kyma, renew

    parser = Parser(
        prog="mtlskit",
        description="Mutual TLS made real: chain of trust, gateway, client and probe.",
    )
    parser.add_argument("--version", action="version", version=f"mtlskit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    groups.required = True
    ca.register(groups)
    cert.register(groups)
    gateway.register(groups)
    client.register(groups)
    demo.register(groups)
    echo.register(groups)
    kyma.register(groups)
    acme.register(groups)
    renew.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (0 ok, 1 failed check, 2 usage or config)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        args = build_parser().parse_args(args_list)
        return int(args.handler(args))
    except MtlsKitError as exc:
        if debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
