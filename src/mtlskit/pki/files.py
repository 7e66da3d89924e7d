"""Files on disk: atomic writes that never clobber without --force, keys at 0600, clear reads."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlskit.errors import CertificateLoadError, ConfigError, OutputExistsError, PKIError

__all__ = ["CRL_MAX_BYTES", "MAX_BYTES", "OutputFile", "read_file", "read_password", "write_files"]

PRIVATE = 0o600
PUBLIC = 0o644
# read_file's default bound. A certificate is 1-2 KiB, a chain under 10 KiB, a key under
# 4 KiB, and even a system trust store (about 150 roots) is near 220 KiB: 1 MiB is far
# above any of them and small enough to read at once.
MAX_BYTES = 1024 * 1024
# CRLs are the exception: each revoked certificate takes 30-40 bytes of DER, so the
# million-entry CRL of bench/crl_lookup.py is about 40 MB (54 MB as PEM). 256 MiB leaves
# room for several million entries.
CRL_MAX_BYTES = 256 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One file to write: where, what, and its permission bits."""

    path: Path
    data: bytes
    mode: int = PUBLIC


def read_file(path: Path | str, what: str, *, max_bytes: int = MAX_BYTES) -> bytes:
    """Read a whole regular file of at most max_bytes, or say what is wrong with it.

    Only regular files are read: a FIFO would block until a writer comes (forever, at
    start-up), a device such as /dev/zero never ends, and a directory has no bytes. The
    size bound keeps a wrong path (a disk image, a log) from being read into memory.

    Args:
        path: the file.
        what: what is expected there, for the messages ("the server private key").
        max_bytes: the largest file accepted; the default suits certificates and keys.

    Raises:
        CertificateLoadError: the file is missing, unreadable, not a regular file, or
            larger than max_bytes (exit 2).
    """
    p = Path(path)
    try:
        # stat before open: opening a device can act (a tape rewinds, a watchdog arms).
        _check_regular(p, os.stat(p).st_mode, what)
        # O_NONBLOCK: if a FIFO replaced the file since the stat, open() must not wait for
        # a writer; on a regular file the flag changes nothing.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise CertificateLoadError(p, "no such file", f"expected {what} there") from exc
    except OSError as exc:
        raise CertificateLoadError(
            p, f"cannot read: {exc.strerror}", "check the path and its permissions"
        ) from exc
    with os.fdopen(fd, "rb", buffering=0) as fh:
        # fstat the open file: that is what is read, whatever the path points at now.
        st = os.fstat(fh.fileno())
        _check_regular(p, st.st_mode, what)
        _check_size(p, st.st_size, max_bytes, what)
        data = bytearray()
        try:
            # Read up to one byte past the limit, which tells a file that grew since the
            # fstat (or a /proc file, whose size reads as 0). In pieces: read(limit + 1)
            # would allocate the whole limit (256 MiB for a CRL) for a 1 KiB file.
            while chunk := fh.read(min(_CHUNK, max_bytes + 1 - len(data))):
                data += chunk
        except OSError as exc:
            raise CertificateLoadError(p, f"cannot read: {exc.strerror}", "check the file") from exc
    _check_size(p, len(data), max_bytes, what)
    return bytes(data)


_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(path: Path, mode: int, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), None)
    message = f"is {kind}, not a regular file" if kind else "is not a regular file"
    raise CertificateLoadError(path, message, f"give the path of a regular file with {what}")


def _check_size(path: Path, size: int, max_bytes: int, what: str) -> None:
    if size > max_bytes:
        approx = f" ({size / 1024**2:.1f} MiB)" if size >= 1024**2 else ""
        raise CertificateLoadError(
            path,
            f"is {size} bytes{approx}, over the {_amount(max_bytes)} limit for {what}",
            "check that this is the right file (larger ones are refused, not read into memory)",
        )


def _amount(size: int) -> str:
    """1 MiB, 64 KiB, 1000 bytes: limits are written as people set them."""
    for unit, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


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
