"""The root's own CRL: the CA certificates it revoked, signed with the root key from disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509

from mtlskit.errors import IssuanceError
from mtlskit.pki.ca import ROOT_KEY, CertificateAuthority
from mtlskit.pki.crl import Revocation, build_crl
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import load_private_key

__all__ = ["root_crl"]


def root_crl(
    ca: CertificateAuthority,
    password: bytes | None = None,
    *,
    next_update: timedelta = timedelta(days=30),
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """Sign a CRL with the root's key: the CA certificates it revoked (usually none).

    Envoy (an Istio ingress gateway) refuses every chain in which one CA has a CRL and
    another has none, so a root whose intermediate publishes a CRL needs one too.

    Raises:
        KeyPasswordError: the root key is encrypted and the password is wrong.
        CertificateLoadError: the root key cannot be read (kept offline?).
    """
    if next_update <= timedelta(0):
        raise IssuanceError("--next-update must be positive", "give e.g. --next-update 30d")
    path = ca.directory / ROOT_KEY
    root_key = load_private_key(read_file(path, "the root CA key"), path, password=password)
    at = now or datetime.now(UTC)
    issuer = ca.root.subject.rfc4514_string()
    store = ca.store
    with store.transaction() as tx:
        revoked = [
            Revocation(int(r.serial, 16), r.revoked_at, r.revocation_reason or "unspecified")
            for r in store.revoked(issuer)
            if r.revoked_at is not None and r.profile != "root"
        ]
        number = store.next_crl_number(tx)
        store.audit("crl_published", subject=issuer, detail=f"number {number}", at=at)
        return build_crl(
            issuer=ca.root,
            issuer_key=root_key,
            revoked=revoked,
            number=number,
            this_update=at,
            next_update=at + next_update,
        )
