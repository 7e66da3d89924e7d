"""An online CA on 127.0.0.1 (`CAServer` on a thread), and curl and openssl to talk to it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from mtlskit.caserver.server import CAServer, ServeOptions
from mtlskit.pki import CertificateAuthority


@dataclass
class OnlineCA:
    """A running `ca serve`, the CA behind it, and the lines it logged."""

    server: CAServer
    ca: CertificateAuthority
    dir: Path
    work: Path
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def root(self) -> Path:
        return self.dir / "root.crt"

    def client(self, name: str, sans: list[str], **options: object) -> tuple[Path, Path]:
        """Issue a client leaf with the offline CA; return (chain, key) paths."""
        issued = self.ca.issue_client(name, sans, **options)  # type: ignore[arg-type]
        out = self.work / "issued"
        out.mkdir(exist_ok=True)
        issued.write(out, name, force=True)
        return out / f"{name}.chain.pem", out / f"{name}.key"


def start(ca: CertificateAuthority, ca_dir: Path, work: Path, **options: object) -> OnlineCA:
    """A CAServer for this CA with its own server certificate for 127.0.0.1."""
    srv = work / "srv"
    srv.mkdir(exist_ok=True)
    ca.issue_server("ca.test", ["127.0.0.1"]).write(srv, "server", force=True)
    lines: list[str] = []
    server = CAServer(
        ServeOptions(
            directory=ca_dir,
            host="127.0.0.1",
            port=0,
            cert=srv / "server.chain.pem",
            key=srv / "server.key",
            **options,  # type: ignore[arg-type]
        ),
        log=lines.append,
    )
    return OnlineCA(server, ca, ca_dir, work, lines)


@pytest.fixture
def online(ca: CertificateAuthority, ca_dir: Path, tmp_path: Path) -> Iterator[OnlineCA]:
    """`ca serve` for the `ca` fixture's CA, with a 1-hour CRL and 24h certificates."""
    running = start(ca, ca_dir, tmp_path, crl_next_update=timedelta(hours=1))
    with running.server:
        yield running


@dataclass
class Answer:
    """What curl got: the status and the body."""

    status: int
    body: bytes

    def json(self) -> dict[str, str]:
        return dict(json.loads(self.body))


def curl(url: str, *args: str | Path) -> Answer:
    """curl with the status code appended after the body (-w), failing on transport errors."""
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", *map(str, args), url],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    body, _, status = proc.stdout.rpartition(b"\n")
    return Answer(int(status), body)


def openssl_csr(work: Path, name: str, subject: str, *sans: str) -> tuple[Path, Path]:
    """A new P-256 key and a CSR made by `openssl req`; returns (csr, key)."""
    key, csr = work / f"{name}.new.key", work / f"{name}.csr"
    argv = [
        "openssl",
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        subject,
    ]
    if sans:
        argv += ["-addext", "subjectAltName=" + ",".join(sans)]
    subprocess.run(argv, check=True, capture_output=True)
    return csr, key
