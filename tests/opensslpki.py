"""Certificates made with the openssl command, never with mtlskit: the outside world's PKI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from cryptography import x509

CA_EXT = (
    "basicConstraints=critical,CA:TRUE\n"
    "keyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\n"
)
CLIENT_EXT = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=clientAuth\n"
    "subjectAltName=URI:spiffe://example.org/app\n"
    "authorityKeyIdentifier=keyid\n"
)


def server_ext(*names: str) -> str:
    """Extensions of a server leaf for these DNS names and IP addresses."""
    sans = ",".join(f"IP:{n}" if n[:1].isdigit() else f"DNS:{n}" for n in names)
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={sans}\n"
        "authorityKeyIdentifier=keyid\n"
    )


class KeySpec(TypedDict, total=False):
    """The key and digest options of root() and issue(), for tables of cases."""

    key: str
    md: str


class RootSpec(KeySpec, total=False):
    """root()'s options: a key spec and the extensions."""

    ext: str


@dataclass(frozen=True, slots=True)
class Made:
    """One certificate openssl made: its files and the parsed certificate."""

    name: str
    cert: Path
    key: Path

    @property
    def x509(self) -> x509.Certificate:
        """The certificate, parsed."""
        return x509.load_pem_x509_certificate(self.cert.read_bytes())


def _run(*argv: str | Path) -> None:
    proc = subprocess.run(["openssl", *map(str, argv)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, argv))}: {proc.stderr.strip()}")


def _newkey(spec: str) -> list[str]:
    """'ec:P-256', 'ec:secp192k1', 'rsa:1024', 'ed25519' -> openssl req -newkey arguments."""
    kind, _, size = spec.partition(":")
    if kind == "ec":
        return ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{size}"]
    if kind == "rsa":
        return ["-newkey", f"rsa:{size}"]
    return ["-newkey", kind]


class OpenSSLPKI:
    """Make roots, intermediates and leaves with `openssl req` and `openssl x509 -req`.

    Args:
        root: the directory the files go into.
    """

    def __init__(self, root: Path) -> None:
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self._serial = 1000

    def _files(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def root(
        self, name: str, *, key: str = "ec:P-256", md: str = "sha256", ext: str = CA_EXT
    ) -> Made:
        """A self-signed root CA with CN=name."""
        cert, keyfile = self._files(name)
        extfile = self.dir / f"{name}.ext"
        extfile.write_text("[v3]\n" + ext)
        _run(
            "req",
            "-x509",
            *_newkey(key),
            "-nodes",
            "-keyout",
            keyfile,
            "-out",
            cert,
            "-subj",
            f"/CN={name}",
            "-days",
            "30",
            f"-{md}",
            "-config",
            extfile,
            "-extensions",
            "v3",
        )
        return Made(name, cert, keyfile)

    def issue(
        self,
        name: str,
        issuer: Made,
        *,
        ext: str,
        key: str = "ec:P-256",
        md: str = "sha256",
        days: int = 30,
    ) -> Made:
        """A certificate for CN=name signed by issuer; days=-1 makes it already expired."""
        cert, keyfile = self._files(name)
        csr, extfile = self.dir / f"{name}.csr", self.dir / f"{name}.ext"
        extfile.write_text(ext)
        _run(
            "req",
            "-new",
            *_newkey(key),
            "-nodes",
            "-keyout",
            keyfile,
            "-out",
            csr,
            "-subj",
            f"/CN={name}",
        )
        self._serial += 1
        _run(
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            issuer.cert,
            "-CAkey",
            issuer.key,
            "-out",
            cert,
            "-days",
            str(days),
            f"-{md}",
            "-extfile",
            extfile,
            "-set_serial",
            str(self._serial),
        )
        return Made(name, cert, keyfile)

    def bundle(self, name: str, *parts: Made) -> Path:
        """The certificates of parts, in order, in one PEM file (a chain or a CA bundle)."""
        path = self.dir / f"{name}.pem"
        path.write_text("".join(p.cert.read_text() for p in parts))
        return path
