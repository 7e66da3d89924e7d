"""Shared fixtures: a CA of our own (dogfooding), and the CLI run in-process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtlskit.cli import main
from mtlskit.pki import CertificateAuthority


@dataclass
class CliResult:
    """What one in-process `mtlskit` run printed and returned."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `mtlskit ARGS...` in-process; returns CliResult(code, out, err)."""

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    """Where the `ca` fixture lives: tmp_path/ca."""
    return tmp_path / "ca"


@pytest.fixture
def ca(ca_dir: Path) -> Iterator[CertificateAuthority]:
    """A fresh EC P-256 CA (root + intermediate) named 'Test Root CA'."""
    authority = CertificateAuthority.create(ca_dir, name="Test Root CA")
    yield authority
    authority.close()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty directory for issued files."""
    path = tmp_path / "out"
    path.mkdir()
    return path
