"""An issued certificate with its key and chain: PEM, chain file, PKCS#12, or an SSLContext."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from mtlskit.errors import PKIError
from mtlskit.pki.files import PRIVATE, PUBLIC, OutputFile, write_files
from mtlskit.pki.keys import PrivateKey
from mtlskit.pki.pem import certs_to_pem, private_key_to_pem
from mtlskit.pki.pkcs12 import to_pkcs12
from mtlskit.pki.store import format_serial

__all__ = ["IssuedCertificate"]


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A leaf certificate as issued, with everything a peer needs to present it.

    Attributes:
        certificate: the leaf.
        private_key: its key, or None when the CA signed a CSR (the key stays with its owner).
        intermediates: the issuing chain below the root, leaf's issuer first.
        root: the trust anchor peers must already hold (never sent).
        profile: "server" or "client".
        notes: what the CA decided on the caller's behalf (capped validity, added or
            dropped names and extensions), one line each, for the user to read.
    """

    certificate: x509.Certificate
    private_key: PrivateKey | None
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate
    profile: str
    notes: tuple[str, ...] = ()

    @property
    def serial(self) -> str:
        """The serial as uppercase hex (as `openssl x509 -serial` prints it)."""
        return format_serial(self.certificate.serial_number)

    def cert_pem(self) -> bytes:
        """The leaf alone, PEM."""
        return certs_to_pem([self.certificate])

    def chain_pem(self) -> bytes:
        """Leaf then intermediates, root excluded: exactly what a peer must send."""
        return certs_to_pem([self.certificate, *self.intermediates])

    def key_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted when a password is given."""
        if self.private_key is None:
            raise PKIError("this certificate was signed from a CSR: its key is not here", "")
        return private_key_to_pem(self.private_key, password)

    def pkcs12(self, password: bytes, friendly_name: str = "") -> bytes:
        """Key, leaf and intermediates as an encrypted PKCS#12 (.p12) file."""
        if self.private_key is None:
            raise PKIError("a PKCS#12 needs the private key, which a CSR does not carry", "")
        name = friendly_name or self.serial
        return to_pkcs12(name, self.private_key, self.certificate, self.intermediates, password)

    def output_files(
        self, out_dir: Path, name: str, *, p12_password: bytes | None = None
    ) -> list[OutputFile]:
        """The files `write` would create: NAME.key, NAME.crt, NAME.chain.pem [, NAME.p12]."""
        files = []
        if self.private_key is not None:
            files.append(OutputFile(out_dir / f"{name}.key", self.key_pem(), PRIVATE))
        files.append(OutputFile(out_dir / f"{name}.crt", self.cert_pem(), PUBLIC))
        files.append(OutputFile(out_dir / f"{name}.chain.pem", self.chain_pem(), PUBLIC))
        if p12_password is not None:
            files.append(
                OutputFile(out_dir / f"{name}.p12", self.pkcs12(p12_password, name), PRIVATE)
            )
        return files

    def write(
        self,
        out_dir: Path | str,
        name: str,
        *,
        force: bool = False,
        p12_password: bytes | None = None,
    ) -> list[Path]:
        """Write the key (0600), leaf, chain and optional PKCS#12 into out_dir atomically.

        Raises:
            OutputExistsError: a file exists and force is False (nothing is written).
        """
        return write_files(
            self.output_files(Path(out_dir), name, p12_password=p12_password), force=force
        )

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        """Make an SSLContext present this certificate and its chain.

        The ssl module loads keys only from files, so the key passes through a private
        temporary directory (0700) that is removed before this returns.
        """
        with tempfile.TemporaryDirectory(prefix="mtlskit-") as tmp:
            cert_path = Path(tmp) / "chain.pem"
            key_path = Path(tmp) / "key.pem"
            write_files(
                [
                    OutputFile(cert_path, self.chain_pem()),
                    OutputFile(key_path, self.key_pem(), PRIVATE),
                ]
            )
            ctx.load_cert_chain(cert_path, key_path)
