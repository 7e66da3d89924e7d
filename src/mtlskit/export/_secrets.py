"""Secrets the ingress gateway reads: client CA + CRLs (`<name>-cacert`), server chain (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.errors import CertificateLoadError, ExportError
from mtlskit.export._certs import dns_covers, is_ca
from mtlskit.export._manifest import ExportWarning, b64, meta
from mtlskit.export.istio import INGRESS_NAMESPACE
from mtlskit.pki.pem import certs_to_pem, load_certificates, load_crl

__all__ = ["SECRET_MAX_BYTES", "cacert_secret", "cover_warnings", "crl_warnings", "tls_secret"]

# Kubernetes refuses a Secret whose data (decoded) exceeds 1 MiB (api.MaxSecretSize).
SECRET_MAX_BYTES: Final = 1024 * 1024


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


def _crls(crls: Sequence[bytes], key: str) -> list[x509.CertificateRevocationList]:
    try:
        return [load_crl(data, key) for data in crls]
    except CertificateLoadError as exc:
        raise ExportError(exc.message, exc.hint) from exc


def cacert_secret(
    credential: str, pem: bytes, key: str, crls: Sequence[bytes] = (), crl_key: str = "tls.crl"
) -> dict[str, Any]:
    """Secret `<credential>-cacert`: the client CA file (key `cacert`) and the CRLs (`ca.crl`).

    The CA file goes in byte for byte when it is PEM, else re-encoded; the CRLs (PEM or
    DER) go in as PEM, one after the other, where Istio's ingress gateway reads them.

    Raises:
        ExportError: unreadable, a certificate in it is not a CA (key names the file), a
            CRL that cannot be read, or more than Kubernetes' 1 MiB for one Secret.
    """
    certs = _client_ca(pem, key)
    data = pem if pem.lstrip().startswith(b"-----BEGIN") else certs_to_pem(certs)
    out = {"cacert": data}
    if crls:
        out["ca.crl"] = b"".join(crl.public_bytes(Encoding.PEM) for crl in _crls(crls, crl_key))
    size = sum(len(v) for v in out.values())
    if size > SECRET_MAX_BYTES:
        raise ExportError(
            f"{credential}-cacert would hold {size} bytes ({crl_key}: "
            f"{len(out.get('ca.crl', b''))} as PEM), more than the 1 MiB Kubernetes allows in "
            "one Secret",
            "make the CRL smaller: revoke less (short-lived certificates need no revocation), "
            "drop expired entries, or split the clients over several intermediates, each with "
            "its own CRL; Istio's ingress gateway has no OCSP for client certificates, and "
            "'mtlskit gateway' itself takes CRLs of any size (tls.crl, tls.crl_urls)",
        )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(f"{credential}-cacert", INGRESS_NAMESPACE),
        "type": "Opaque",
        "data": {name: b64(value) for name, value in out.items()},
    }


def crl_warnings(
    pem: bytes, crls: Sequence[bytes], *, key: str, crl_key: str
) -> list[ExportWarning]:
    """What the cluster does with the exported CRLs that the local gateway does not.

    Envoy checks the CRLs of every CA in a chain once any CRL is given (it refuses the
    whole chain when one CA has none), refuses every client of a CA whose CRL has passed
    its nextUpdate, and never fetches a fresher one.

    Raises:
        ExportError: unreadable CA file or CRL.
    """
    if not crls:
        return []
    loaded = _crls(crls, crl_key)
    issuers = {crl.issuer for crl in loaded}
    warnings = [
        ExportWarning(
            f"{key} ({ca.subject.rfc4514_string()})",
            "has no CRL in ca.crl: Istio's ingress gateway refuses every client whose chain "
            "leads to it",
            "Envoy requires a CRL for every CA of a chain once one CA has a CRL",
            f"add a CRL signed by {ca.subject.rfc4514_string()} to {crl_key} (a root's "
            "lists its revoked intermediates and may be empty: 'mtlskit ca crl --root')",
        )
        for ca in _client_ca(pem, key)
        if ca.subject not in issuers
    ]
    next_updates = [crl.next_update_utc for crl in loaded if crl.next_update_utc is not None]
    if next_updates:
        first = min(next_updates)
        warnings.append(
            ExportWarning(
                crl_key,
                f"is exported as it is now; after its nextUpdate ({first:%Y-%m-%d %H:%M}Z) "
                "Istio's ingress gateway refuses every client of that CA",
                "the cluster reads the CRL from the Secret and never fetches a fresher one",
                "publish fresh CRLs and re-render and apply the -cacert Secret before "
                "each nextUpdate (a CronJob, or your CD pipeline)",
            )
        )
    return warnings


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
