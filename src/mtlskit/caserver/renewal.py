"""Renew a certificate from `mtlskit ca serve`: new key, CSR, POST /renew, atomic files."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mtlskit.caserver.client import CAClient
from mtlskit.caserver.protocol import renewal_due
from mtlskit.errors import ConfigError, PKIError
from mtlskit.pki.files import PRIVATE, PUBLIC, OutputFile, read_file, write_files
from mtlskit.pki.keys import KeyType, PrivateKey, generate_key, signing_hash
from mtlskit.pki.pem import (
    certs_to_pem,
    key_matches_certificate,
    load_certificates,
    load_private_key,
    private_key_to_pem,
)
from mtlskit.tlsconfig import client_context

__all__ = ["Renewed", "build_csr", "due_at", "key_type_of", "renew_once", "run_exec"]


@dataclass(frozen=True, slots=True)
class Renewed:
    """A renewal that succeeded: the new leaf, when it arrived, the files written."""

    leaf: x509.Certificate
    received_at: datetime
    paths: tuple[Path, ...]


def key_type_of(key: PrivateKey) -> KeyType:
    """The key type of an existing key, so a renewal keeps it (ec-p256 for anything else)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return {2048: "rsa-2048", 3072: "rsa-3072", 4096: "rsa-4096"}.get(  # type: ignore[return-value]
            key.key_size, "rsa-3072"
        )
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return "ec-p384"
    return "ec-p256"


def build_csr(key: PrivateKey, subject: x509.Name, leaf: x509.Certificate) -> bytes:
    """A PEM CSR for `key` with the leaf's subject and subjectAltNames, nothing more."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(san, critical=False)
    except x509.ExtensionNotFound:
        pass
    csr = builder.sign(key, signing_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM)


def _current(cert: Path, key: Path) -> tuple[list[x509.Certificate], PrivateKey]:
    chain = load_certificates(read_file(cert, "the current certificate chain"), cert)
    private_key = load_private_key(read_file(key, "the current private key"), key)
    if not key_matches_certificate(private_key, chain[0]):
        raise PKIError(
            f"{key} does not match the first certificate in {cert}",
            "give the key and chain that belong together (leaf first)",
        )
    return chain, private_key


def due_at(cert: Path, received_at: datetime | None = None, jitter: float = 0.0) -> datetime:
    """When the certificate in `cert` is due (2/3 of its lifetime, minus jitter).

    Raises:
        CertificateLoadError: the file cannot be read.
    """
    leaf = load_certificates(read_file(cert, "the current certificate chain"), cert)[0]
    start = leaf.not_valid_before_utc
    if received_at is not None and received_at > start:
        start = received_at
    return renewal_due(start, leaf.not_valid_after_utc, jitter)


def renew_once(
    cert: Path,
    key: Path,
    ca_url: str,
    *,
    trust: Path | None,
    key_type: KeyType | None = None,
    timeout: float = 30.0,
) -> Renewed:
    """Renew now: a new key, a CSR for the same names, POST /renew over mTLS, then files.

    The chain goes to `cert` and the key to `key` (0600), each written to a temporary
    file and renamed over the old one; on any failure before that, the old files stay.

    Raises:
        PKIError: the current files are unusable, the CA refused or could not be reached,
            or it answered with a certificate that is not for the new key.
        TLSConfigError: the client context cannot be built.
    """
    chain, current_key = _current(cert, key)
    new_key = generate_key(key_type or key_type_of(current_key))
    csr = build_csr(new_key, chain[0].subject, chain[0])
    ctx = client_context(ca=trust, cert=cert, key=key)
    answer = CAClient(ca_url, ctx, timeout=timeout).post_csr("/renew", csr)
    received = datetime.now(UTC)
    try:
        issued = load_certificates(answer)
    except PKIError as exc:
        raise PKIError(
            f"the CA at {ca_url} answered /renew with no certificate: {exc.message}",
            "check --ca-url",
            exit_code=1,
        ) from exc
    if not key_matches_certificate(new_key, issued[0]) or issued[0].subject != chain[0].subject:
        raise PKIError(
            f"the CA at {ca_url} answered with a certificate for another key or subject "
            f"({issued[0].subject.rfc4514_string()})",
            "the old files were kept; check that --ca-url is the CA that issued them",
            exit_code=1,
        )
    # The chain first, then the key: each rename is atomic, and a reader that catches the
    # moment between them sees a pair that does not match and keeps what it had (the
    # gateway's reload does; the next change of the key file triggers it again).
    paths = write_files(
        [
            OutputFile(cert, certs_to_pem(issued), PUBLIC),
            OutputFile(key, private_key_to_pem(new_key), PRIVATE),
        ],
        force=True,
    )
    return Renewed(issued[0], received, tuple(paths))


def run_exec(command: str) -> int:
    """Run --exec after a renewal (no shell: the words of the command, shlex-split).

    Raises:
        ConfigError: the command is empty or cannot be started.
    """
    argv = shlex.split(command)
    if not argv:
        raise ConfigError("--exec is empty", "give a command, e.g. --exec 'systemctl reload app'")
    try:
        # S603: the operator's own command, run without a shell, as --exec asks.
        return subprocess.run(argv, check=False).returncode  # noqa: S603
    except OSError as exc:
        raise ConfigError(
            f"--exec {command!r} cannot be started: {exc.strerror or exc}",
            "give the full path of a program that exists",
        ) from exc
