"""The demo's two CAs and four certificates under one directory: made once, reused while fresh."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mtlskit.errors import MtlsKitError
from mtlskit.pki.ca import INTERMEDIATE_CERT, ROOT_CERT, CertificateAuthority
from mtlskit.pki.files import PRIVATE, OutputFile, write_files
from mtlskit.pki.pem import load_certificates

__all__ = ["default_dir", "prepare"]


def default_dir() -> Path:
    """Where the demo keeps its files: $XDG_DATA_HOME/mtlskit/demo (~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mtlskit" / "demo"


def _fresh(path: Path) -> bool:
    """True when the certificate file exists and is valid for at least another day."""
    try:
        cert = load_certificates(path.read_bytes(), path)[0]
    except (OSError, ValueError, IndexError, MtlsKitError):
        return False  # missing, unreadable or not a certificate: make a new one
    return cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)


def _authority(directory: Path, name: str) -> CertificateAuthority:
    if (directory / ROOT_CERT).exists():
        return CertificateAuthority.load(directory)
    return CertificateAuthority.create(directory, name=name)


def prepare(base: Path) -> dict[str, Path]:
    """Create (or reuse) the demo's two CAs and four certificates under `base`.

    Returns:
        The files by role: "root", "intermediate", "other_root", and NAME.crt, NAME.key,
        NAME.chain.pem for NAME in server, demo-client, intruder; and "demo-client.p12"
        with its password in "demo-client.p12.pass" (generated, 0600) for a browser.
    """
    certs = base / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    ca_dir, other_dir = base / "ca", base / "intruder-ca"
    with _authority(ca_dir, "mtlskit Demo Root CA") as ca:
        if not _fresh(certs / "server.crt"):
            server = ca.issue_server("localhost", ["localhost", "127.0.0.1"])
            server.write(certs, "server", force=True)
        p12 = [certs / "demo-client.p12", certs / "demo-client.p12.pass"]
        if not _fresh(certs / "demo-client.crt") or not all(p.exists() for p in p12):
            spiffe = "spiffe://demo.mtlskit.local/ns/demo/sa/client"
            client = ca.issue_client(
                "demo-client", [spiffe], organization="mtlskit demo", unit="demo"
            )
            # For a browser: demo-client.p12 and its generated password beside it (0600).
            password = secrets.token_urlsafe(24).encode()
            client.write(certs, "demo-client", force=True, p12_password=password)
            write_files([OutputFile(p12[1], password + b"\n", PRIVATE)], force=True)
    with _authority(other_dir, "Untrusted Root CA") as other:
        if not _fresh(certs / "intruder.crt"):
            spiffe = "spiffe://elsewhere.example/sa/intruder"
            intruder = other.issue_client("intruder", [spiffe], unit="demo")
            intruder.write(certs, "intruder", force=True)
    return {
        "root": ca_dir / ROOT_CERT,
        "intermediate": ca_dir / INTERMEDIATE_CERT,
        "other_root": other_dir / ROOT_CERT,
        **{
            f"{n}.{e}": certs / f"{n}.{e}"
            for n in ("server", "demo-client", "intruder")
            for e in ("crt", "key", "chain.pem")
        },
        "demo-client.p12": p12[0],
        "demo-client.p12.pass": p12[1],
    }
