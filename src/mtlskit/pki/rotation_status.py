"""After a rotation: `ca status` (phase, CA certificates, next steps) and the old CRL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from mtlskit.errors import PKIError
from mtlskit.pki.cadir import INTERMEDIATE_CERT, ROOT_CERT, open_ca_directory
from mtlskit.pki.crl import Revocation, build_crl
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import load_certificates, load_private_key
from mtlskit.pki.rotation import TRANSITION_BUNDLE, Phase, RotationState, read_state
from mtlskit.pki.store import CertStore, format_serial

__all__ = ["CACertificate", "CAStatus", "previous_crl", "status", "valid_leaves"]


def valid_leaves(store: CertStore, issuer: x509.Certificate, now: datetime) -> int:
    """How many leaves the issuer signed are still usable (not expired, not revoked)."""
    name = issuer.subject.rfc4514_string()
    return sum(
        1
        for r in store.records()
        if r.profile in ("server", "client") and r.issuer == name and r.status(now) == "valid"
    )


@dataclass(frozen=True, slots=True)
class CACertificate:
    """One CA certificate of the directory, as `ca status` shows it.

    Attributes:
        role: "root", "intermediate", "cross", "previous root", "previous intermediate".
        subject: RFC 4514.
        serial: hex, as `ca list` prints it.
        not_after: its expiry.
        file: its file, relative to the CA directory.
        valid_leaves: for intermediates, the unexpired, unrevoked leaves it signed.
    """

    role: str
    subject: str
    serial: str
    not_after: datetime
    file: str
    valid_leaves: int | None = None


@dataclass(frozen=True, slots=True)
class CAStatus:
    """The rotation phase, the CA certificates, and what to do next."""

    phase: Phase
    kind: str
    certificates: tuple[CACertificate, ...]
    next_steps: tuple[str, ...]


def status(directory: Path, *, now: datetime | None = None, lock_timeout: float = 10.0) -> CAStatus:
    """Where the CA is in its rotation: phase, certificates, leaves per intermediate, next steps.

    Raises:
        PKIError: the directory holds no CA, or its files do not belong together.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC)
    state = read_state(directory)
    parts = open_ca_directory(directory, password=None, lock_timeout=lock_timeout, with_key=False)
    try:

        def entry(role: str, file: str, count: bool = False) -> CACertificate:
            cert = _cert_at(directory, file)
            return CACertificate(
                role,
                cert.subject.rfc4514_string(),
                format_serial(cert.serial_number),
                cert.not_valid_after_utc,
                file,
                valid_leaves(parts.store, cert, at) if count else None,
            )

        certs = [entry("root", ROOT_CERT)]
        if state is not None and state.cross and (directory / state.cross).exists():
            certs.append(entry("cross", state.cross))
        certs.append(entry("intermediate", INTERMEDIATE_CERT, count=True))
        if state is not None:
            last = state.last
            if last.root:
                certs.append(entry("previous root", last.root))
            certs.append(entry("previous intermediate", last.intermediate, count=True))
    finally:
        parts.store.close()
    phase: Phase = "old_only" if state is None else state.phase
    return CAStatus(
        phase, state.kind if state else "", tuple(certs), _next_steps(directory, state, certs)
    )


def _next_steps(
    directory: Path, state: RotationState | None, certs: list[CACertificate]
) -> tuple[str, ...]:
    d = directory
    current = next(c for c in certs if c.role == "intermediate")
    if state is None:
        return (
            f"nothing to do until the intermediate nears its expiry "
            f"({current.not_after:%Y-%m-%d}); then 'mtlskit ca rotate --dir {d}' "
            "(or --root for a new root, cross-signed by this one)",
        )
    old = next(c for c in certs if c.role == "previous intermediate")
    if state.phase == "overlap":
        steps = [
            f"put {d / TRANSITION_BUNDLE} (old and new CA) in the gateway's client_ca and "
            "reload; new certificates are issued by the new intermediate",
        ]
        if state.kind == "root":
            steps.append(
                f"install the new root {d / ROOT_CERT} on every peer that verifies this CA; "
                f"until then give new leaves the chain {INTERMEDIATE_CERT} + {state.cross} "
                "(the new root cross-signed by the old one)"
            )
        steps.append(
            f"renew the {old.valid_leaves} valid leaves of the old intermediate "
            f"({old.subject}); then retire it with 'mtlskit ca rotate --dir {d} --retire' "
            "(once its leaves are renewed or expired)"
        )
        return tuple(steps)
    steps = [
        f"put {d / TRANSITION_BUNDLE} (now the new CA only) in the gateway's client_ca and "
        "reload: leaves of the old intermediate are then refused",
        f"publish the old intermediate's CRL while its leaves are valid: 'mtlskit ca rotate "
        f"--dir {d} --previous-crl FILE'",
    ]
    if state.kind == "intermediate":
        # Same root: a peer that trusts the root still accepts the old intermediate's leaves.
        steps[0] = (
            f"put {d / TRANSITION_BUNDLE} (now the new CA only) in the gateway's client_ca and "
            "reload; the root did not change, so peers trusting it accept the old "
            f"intermediate's {old.valid_leaves} valid leaves until they expire: revoke them "
            f"('mtlskit ca revoke SERIAL --dir {d}') to cut them off sooner"
        )
    return tuple(steps)


def _cert_at(directory: Path, file: str) -> x509.Certificate:
    path = directory / file
    return load_certificates(read_file(path, "a CA certificate"), path)[0]


def previous_crl(
    directory: Path,
    *,
    password: bytes | None,
    next_update: timedelta = timedelta(days=7),
    now: datetime | None = None,
    lock_timeout: float = 10.0,
) -> x509.CertificateRevocationList:
    """A fresh CRL of the last rotated-out intermediate, signed with its kept key.

    Its leaves stay revocable after the rotation (`CertificateAuthority.revoke` finds
    them by serial in ca.db); this publishes what was revoked among them.

    Raises:
        PKIError: the CA was never rotated.
        KeyPasswordError: the key is encrypted and the password is wrong.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    state = read_state(directory)
    if state is None:
        raise PKIError(
            f"the CA in {directory} was never rotated: it has no previous intermediate",
            f"publish the current CRL with 'mtlskit ca crl --dir {directory} --out FILE'",
        )
    issuer = _cert_at(directory, state.last.intermediate)
    key_path = directory / state.last.intermediate_key
    key = load_private_key(read_file(key_path, "a CA key"), key_path, password=password)
    store = open_ca_directory(
        directory, password=None, lock_timeout=lock_timeout, with_key=False
    ).store
    try:
        name = issuer.subject.rfc4514_string()
        revoked = [
            Revocation(int(r.serial, 16), r.revoked_at, r.revocation_reason or "unspecified")
            for r in store.revoked(name)
            if r.revoked_at is not None
        ]
        with store.transaction() as conn:
            number = store.next_crl_number(conn)
            store.audit(
                "crl_published",
                subject=name,
                detail=f"number {number}, {len(revoked)} revoked (previous intermediate)",
                at=at,
            )
            return build_crl(
                issuer=issuer,
                issuer_key=key,
                revoked=revoked,
                number=number,
                this_update=at,
                next_update=at + next_update,
            )
    finally:
        store.close()
