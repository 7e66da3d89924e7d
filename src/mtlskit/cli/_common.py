"""Helpers shared by the command modules: flags that repeat, output dirs, notes, JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from mtlskit.durations import parse_duration
from mtlskit.errors import ConfigError
from mtlskit.pki.files import read_password
from mtlskit.pki.keys import KEY_TYPES, KeyType, parse_key_type

__all__ = [
    "add_dir",
    "add_key_type",
    "add_password_file",
    "check_out_dir",
    "duration_arg",
    "ensure_out_dir",
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


# A directory made for private keys: only the owner may list or enter it (keys are 0600).
KEY_DIR_MODE: Final = 0o700


def check_out_dir(text: str, flag: str = "--out") -> Path:
    """The directory an --out flag names, refused at once if it exists as something else.

    Nothing is created here: ensure_out_dir() does that when the files are about to be
    written, so a command that fails earlier (a wrong password, a bad flag) leaves no trace.

    Raises:
        ConfigError: the path exists and is not a directory.
    """
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"{flag} {path} is not a directory",
            f"give the directory the files go into (it is created if missing), not {path}",
        )
    return path


def ensure_out_dir(path: Path, flag: str = "--out") -> Path:
    """Create the --out directory, parents too, as `mkdir -p` would; 0700: it holds keys.

    Says so with a note on stderr. An existing directory is used as it is.

    Raises:
        ConfigError: it cannot be created (a parent is a file, no permission).
    """
    if path.is_dir():
        return path
    try:
        path.mkdir(parents=True, mode=KEY_DIR_MODE)
    except OSError as exc:
        if path.is_dir():  # made by someone else meanwhile: as good as ours
            return path
        raise ConfigError(
            f"{flag} {path}: cannot create the directory: {exc.strerror or exc}",
            "give a directory you can write to, or create it first",
        ) from exc
    # mkdir's mode passes through the umask, which could leave the owner without write
    # or search permission; set it exactly. (Parents keep the default mode, as with -p.)
    path.chmod(KEY_DIR_MODE)
    print_notes([f"created directory {path} (mode 0700: it holds private keys)"])
    return path


def print_notes(notes: tuple[str, ...] | list[str]) -> None:
    """Decisions taken on the user's behalf, on stderr so stdout stays parseable."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def print_json(value: Any) -> None:
    """Stable, sorted JSON on stdout."""
    print(json.dumps(value, indent=2, sort_keys=True))
