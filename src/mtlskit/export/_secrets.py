"""The Secrets the ingress gateway reads: the client CA (`<name>-cacert`), a server chain (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509

from mtlskit.errors import CertificateLoadError, ExportError
from mtlskit.export._certs import dns_covers, is_ca
from mtlskit.export._manifest import ExportWarning, b64, meta
from mtlskit.export.istio import INGRESS_NAMESPACE
from mtlskit.pki.pem import certs_to_pem, load_certificates

__all__ = ["cacert_secret", "cover_warnings", "tls_secret"]


def _client_ca(pem: bytes, key: str) -> list[x509.Certificate]:
    try:
        certs = load_certificates(pem, key)
    except CertificateLoadError as exc:
        raise ExportError(exc.message, exc.hint) from exc
    for cert in certs:
        if not is_ca(cert):
            raise ExportError(
                f"{key} holds {cert.subject.rfc4514_string()!r}, which is not a CA",
                "the -cacert secret must hold the CA that issues client certificates, not a leaf",
            )
    return certs


def cacert_secret(credential: str, pem: bytes, key: str) -> dict[str, Any]:
    """Secret `<credential>-cacert` (key `cacert`): the client CA file, refused unless all CAs.

    The file goes in byte for byte when it is PEM, else re-encoded.

    Raises:
        ExportError: unreadable, or a certificate in it is not a CA (key names the file).
    """
    certs = _client_ca(pem, key)
    data = pem if pem.lstrip().startswith(b"-----BEGIN") else certs_to_pem(certs)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(f"{credential}-cacert", INGRESS_NAMESPACE),
        "type": "Opaque",
        "data": {"cacert": b64(data)},
    }


def tls_secret(credential: str, chain: bytes, key: bytes) -> dict[str, Any]:
    """Secret `<credential>` of type kubernetes.io/tls: the server chain and key."""
    # Never ca.crt here: Istio would validate clients with it and ignore <name>-cacert
    # (istio/istio#29856).
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(credential, INGRESS_NAMESPACE),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(chain), "tls.key": b64(key)},
    }


def cover_warnings(
    chain: bytes, hosts: Sequence[str], *, subject: str, key: str, fix: str
) -> list[ExportWarning]:
    """One warning when the chain's leaf does not cover every host (clients check it).

    Raises:
        ExportError: the chain is unreadable (key names the file).
    """
    try:
        leaf = load_certificates(chain, key)[0]
    except CertificateLoadError as exc:
        raise ExportError(exc.message, exc.hint) from exc
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    for host in hosts:
        if not any(dns_covers(n, host) for n in names):
            return [
                ExportWarning(
                    f"{subject} ({', '.join(names) or 'no DNS name'})",
                    f"is exported but does not cover {host}",
                    "clients check the server's name against its certificate",
                    fix,
                )
            ]
    return []
