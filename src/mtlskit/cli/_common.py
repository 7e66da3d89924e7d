"""Helpers shared by the command modules: flags that repeat, output of notes, JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from mtlskit.durations import parse_duration
from mtlskit.pki.files import read_password
from mtlskit.pki.keys import KEY_TYPES, KeyType, parse_key_type

__all__ = [
    "add_dir",
    "add_key_type",
    "add_password_file",
    "duration_arg",
    "key_type_arg",
    "password_from",
    "print_json",
    "print_notes",
]


def add_dir(parser: argparse.ArgumentParser) -> None:
    """--dir DIR (required): the CA directory."""
    parser.add_argument("--dir", required=True, metavar="DIR", help="the CA directory")


def add_password_file(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--password-file F."""
    parser.add_argument("--password-file", metavar="F", help=help_text)


def add_key_type(parser: argparse.ArgumentParser) -> None:
    """--key-type, validated with a clear error."""
    parser.add_argument(
        "--key-type",
        default="ec-p256",
        metavar="TYPE",
        help=f"key type: {', '.join(KEY_TYPES)} (default ec-p256)",
    )


def key_type_arg(text: str) -> KeyType:
    """Validate --key-type (ConfigError names the flag and the choices)."""
    return parse_key_type(text)


def duration_arg(text: str | None, flag: str) -> timedelta | None:
    """Parse an optional duration flag such as --validity."""
    return None if text is None else parse_duration(text, what=flag)


def password_from(path: str | None, flag: str = "--password-file") -> bytes | None:
    """Read a password file when the flag was given."""
    return None if path is None else read_password(path, flag)


def print_notes(notes: tuple[str, ...] | list[str]) -> None:
    """Decisions taken on the user's behalf, on stderr so stdout stays parseable."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def print_json(value: Any) -> None:
    """Stable, sorted JSON on stdout."""
    print(json.dumps(value, indent=2, sort_keys=True))
