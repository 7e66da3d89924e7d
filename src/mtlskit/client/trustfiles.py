"""Reading what --ca names: a PEM bundle of roots, or an mtlskit CA directory (files in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from mtlskit.errors import ConfigError
from mtlskit.pki.ca import INTERMEDIATE_CERT, ROOT_CERT
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import load_certificates
from mtlskit.trust import split_trust

if TYPE_CHECKING:
    from mtlskit.client.connect import ServerTrust

__all__ = ["TrustSource", "load_trust", "server_trust"]


@dataclass(frozen=True, slots=True)
class TrustSource:
    """What --ca gave: trust anchors, and intermediates known as hints.

    Attributes:
        anchors: the self-signed certificates: the only ones trusted.
        hints: the other certificates: known intermediates, used to build or explain a
            path, never trusted.
        file: the file the anchors came from (the CA directory's root certificate).
    """

    anchors: tuple[x509.Certificate, ...]
    hints: tuple[x509.Certificate, ...]
    file: Path


def load_trust(path: str | Path, flag: str = "--ca") -> TrustSource:
    """Read a bundle (self-signed = anchor, others = hints) or a CA directory.

    A CA directory trusts its root certificate; its intermediate, when present, is a hint.

    Args:
        path: the bundle or directory.
        flag: the option that named it, for the error message.

    Raises:
        CertificateLoadError: unreadable files.
        ConfigError: no self-signed certificate to trust.
    """
    where = Path(path)
    if where.is_dir():
        root = where / ROOT_CERT
        anchors = tuple(load_certificates(read_file(root, "the root CA certificate"), root))
        hints: tuple[x509.Certificate, ...] = ()
        inter = where / INTERMEDIATE_CERT
        if inter.exists():
            hints = tuple(load_certificates(read_file(inter, "an intermediate CA"), inter))
        return TrustSource(anchors, hints, root)
    certs = load_certificates(read_file(where, "trusted root certificates"), where)
    anchors, hints = split_trust(certs)
    if not anchors:
        raise ConfigError(
            f"{flag} {path} holds no self-signed root certificate to trust",
            f"give the root CA (e.g. CA_DIR/{ROOT_CERT}, or the CA directory itself); "
            "intermediates alone are not trust anchors",
        )
    return TrustSource(anchors, hints, where)


def server_trust(path: str | Path | None, flag: str = "--ca") -> ServerTrust:
    """The trust a client verifies the server with: `path` read by load_trust, or the system's.

    Raises:
        CertificateLoadError: unreadable files.
        ConfigError: no self-signed certificate to trust.
    """
    # Here, not at the top: `cert verify` reads --ca too and needs no sockets or ssl.
    from mtlskit.client.connect import ServerTrust, system_trust

    if path is None:
        return system_trust()
    src = load_trust(path, flag)
    return ServerTrust(src.anchors, src.hints, f"{flag} {path}", src.file)
