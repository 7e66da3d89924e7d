"""Atomic writes, permissions, durations and PEM reading."""

from __future__ import annotations

import os
import socket
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from mtlskit.durations import format_duration, parse_duration
from mtlskit.errors import CertificateLoadError, ConfigError, OutputExistsError
from mtlskit.pki import CertificateAuthority
from mtlskit.pki.files import PRIVATE, OutputFile, read_file, read_password, write_files
from mtlskit.pki.pem import key_matches_certificate, load_certificates, load_private_key


def test_write_files_is_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("keep")
    with pytest.raises(OutputExistsError):
        write_files([OutputFile(tmp_path / "a", b"1"), OutputFile(tmp_path / "b", b"2")])
    assert not (tmp_path / "a").exists()
    assert (tmp_path / "b").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary files left


def test_write_files_modes_and_force(tmp_path: Path) -> None:
    write_files(
        [OutputFile(tmp_path / "k", b"secret", PRIVATE), OutputFile(tmp_path / "c", b"pub")]
    )
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o644
    write_files([OutputFile(tmp_path / "k", b"new", PRIVATE)], force=True)
    assert (tmp_path / "k").read_bytes() == b"new"
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "p").write_bytes(b"pass word\r\n")
    assert read_password(tmp_path / "p") == b"pass word"
    (tmp_path / "e").write_bytes(b"\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_password(tmp_path / "e")
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(tmp_path / "missing")


def test_read_file_reads_a_regular_file_up_to_its_limit(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100)
    assert read_file(tmp_path / "f", "a file", max_bytes=100) == b"x" * 100
    with pytest.raises(CertificateLoadError, match=r"is 100 bytes, over the 99 bytes limit") as e:
        read_file(tmp_path / "f", "a certificate", max_bytes=99)
    assert e.value.path == tmp_path / "f" and e.value.exit_code == 2
    # several read() pieces, and a limit that is not a whole unit
    (tmp_path / "g").write_bytes(b"y" * (3 * 1024 * 1024 + 5))
    assert len(read_file(tmp_path / "g", "a CRL", max_bytes=3 * 1024 * 1024 + 5)) == 3145733


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


@pytest.mark.timeout(10)  # a regression blocks in open() on the FIFO
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: Path("/dev/zero"), "is a character device"),  # was read until out of memory
        (_fifo, r"is a FIFO \(named pipe\)"),
        (lambda p: p, "is a directory"),
    ],
)
def test_read_file_refuses_what_is_not_a_regular_file(tmp_path: Path, make, kind: str) -> None:
    path = make(tmp_path)
    with pytest.raises(CertificateLoadError, match=kind) as e:
        read_file(path, "a certificate")
    assert e.value.path == path and "regular file" in e.value.hint


def test_read_file_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A permission error, as a non-root user gets it from a mode-000 file (root is let in).
    (tmp_path / "k").write_bytes(b"key")

    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(CertificateLoadError, match="cannot read: Permission denied") as e:
        read_file(tmp_path / "k", "a key")
    assert e.value.hint == "check the path and its permissions"


@pytest.mark.timeout(10)
def test_read_file_refuses_a_unix_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(CertificateLoadError, match="is a socket"):
            read_file(tmp_path / "s", "a certificate")


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90d", timedelta(days=90)),
        ("1y", timedelta(days=365)),
        ("12h30m", timedelta(hours=12, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "0d", "-1d", "5", "d5", "5 days", "1.5d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="--validity"):
        parse_duration(text, what="--validity")


def test_format_duration() -> None:
    assert format_duration(timedelta(days=89, hours=23, minutes=5)) == "89d 23h"
    assert format_duration(timedelta(minutes=5)) == "5m"
    assert format_duration(timedelta(days=3650)) == "10y"


def test_bundle_and_key_helpers(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue_client("alice", ["alice.example"])
    certs = load_certificates(issued.chain_pem())
    assert certs == [issued.certificate, ca.intermediate]
    key = load_private_key(issued.key_pem(b"pw"), password=b"pw")
    assert key_matches_certificate(key, issued.certificate)
    assert not key_matches_certificate(key, ca.intermediate)
    with pytest.raises(CertificateLoadError, match="no 'CERTIFICATE' PEM block"):
        load_certificates(issued.key_pem(), "x.pem")
