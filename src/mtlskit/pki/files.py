"""Files on disk: atomic writes that never clobber without --force, keys at 0600, clear reads."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlskit.errors import CertificateLoadError, ConfigError, OutputExistsError, PKIError

__all__ = ["OutputFile", "read_file", "read_password", "write_files"]

PRIVATE = 0o600
PUBLIC = 0o644


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file to write: where, what, and its permission bits."""

    path: Path
    data: bytes
    mode: int = PUBLIC


def read_file(path: Path | str, what: str) -> bytes:
    """Read a whole file, or say which file is missing and what was expected there.

    Raises:
        CertificateLoadError: the file is missing, a directory or unreadable.
    """
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise CertificateLoadError(p, "no such file", f"expected {what} there") from exc
    except IsADirectoryError as exc:
        raise CertificateLoadError(p, "is a directory", f"give the path of {what}") from exc
    except OSError as exc:
        raise CertificateLoadError(p, f"cannot read: {exc.strerror}", "check permissions") from exc


def read_password(path: Path | str, flag: str = "--password-file") -> bytes:
    """Read a password file; one trailing newline is not part of the password.

    Raises:
        ConfigError: missing, unreadable or empty file.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{flag} {p}: cannot read ({exc.strerror})", "give a file that holds the password"
        ) from exc
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise ConfigError(f"{flag} {p} is empty", "put the password in the file")
    return data


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_one(out: OutputFile, force: bool) -> None:
    tmp = out.path.with_name(f".{out.path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, out.mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), out.mode)  # the umask may have removed bits we want
            fh.write(out.data)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, out.path)
        else:
            # link() fails if the target appeared since we checked: never clobber a file.
            os.link(tmp, out.path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_files(outputs: Sequence[OutputFile], *, force: bool = False) -> list[Path]:
    """Write a group of files atomically: all of them, or none that were not there before.

    Each file is written to a temporary name, fsynced and renamed into place, so a reader
    never sees half a key. Without force, an existing file is never replaced.

    Raises:
        OutputExistsError: a target exists and force is False (nothing is written).
        PKIError: the directory is missing or not writable.
    """
    if not force:
        existing = [o.path for o in outputs if o.path.exists()]
        if existing:
            raise OutputExistsError(
                f"{existing[0]} already exists",
                "pass --force to replace it, or choose another --out",
            )
    written: list[Path] = []
    try:
        for out in outputs:
            if not out.path.parent.is_dir():
                raise PKIError(
                    f"{out.path.parent} is not a directory",
                    "create it first or choose another --out",
                )
            try:
                _write_one(out, force)
            except FileExistsError as exc:
                raise OutputExistsError(
                    f"{out.path} already exists",
                    "pass --force to replace it, or choose another --out",
                ) from exc
            except OSError as exc:
                raise PKIError(
                    f"cannot write {out.path}: {exc.strerror}", "check the directory's permissions"
                ) from exc
            written.append(out.path)
    except BaseException:
        if not force:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
        raise
    for directory in {o.path.parent for o in outputs}:
        _fsync_dir(directory)
    return written
