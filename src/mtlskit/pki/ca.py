"""The CertificateAuthority: a root and an issuing intermediate on disk, with its database."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TypedDict, Unpack

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.errors import IssuanceError, PKIError
from mtlskit.pki.builder import build_certificate, crl_distribution_points, plan_validity

# The file names live in cadir, with creating and opening a CA directory, and ED25519_NOTE
# in leaves, with the rest of what a leaf request decides; the CLI, the demo and the client
# import them from here, where they have always been.
from mtlskit.pki.cadir import (
    CA_FILES,
    DATABASE,
    DEFAULT_NAME,
    INTERMEDIATE_CERT,
    INTERMEDIATE_KEY,
    ROOT_CERT,
    ROOT_KEY,
    create_ca_directory,
    open_ca_directory,
)
from mtlskit.pki.crl import Revocation, build_crl, parse_reason
from mtlskit.pki.issued import IssuedCertificate
from mtlskit.pki.keys import DEFAULT_KEY_TYPE, KeyType, PrivateKey
from mtlskit.pki.leaves import ED25519_NOTE, LeafRequest, csr_request, new_key_request
from mtlskit.pki.pem import certs_to_pem
from mtlskit.pki.profiles import CLIENT, SERVER, Profile
from mtlskit.pki.store import CertRecord, CertStore, SerialInUseError, format_serial

__all__ = [
    "CA_FILES",
    "DATABASE",
    "DEFAULT_NAME",
    "ED25519_NOTE",
    "INTERMEDIATE_CERT",
    "INTERMEDIATE_KEY",
    "ROOT_CERT",
    "ROOT_KEY",
    "CertificateAuthority",
    "Deliver",
    "LeafOptions",
]

Deliver = Callable[[IssuedCertificate], object]
"""Called with a new certificate while its record is still uncommitted: if it raises
(say, an output file exists), the record is rolled back, so the database never lists a
certificate nobody received."""


class LeafOptions(TypedDict, total=False):
    """The keyword arguments of `issue_server` and `issue_client`, all optional.

    Attributes:
        validity: lifetime; the profile default (90 days) when None, capped at the CA's.
        key_type: the new key's type (default ec-p256).
        organization, unit: subject O and OU.
        now: issuing time, for tests.
        deliver: see `Deliver`.
    """

    validity: timedelta | None
    key_type: KeyType
    organization: str | None
    unit: str | None
    now: datetime | None
    deliver: Deliver | None


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


class CertificateAuthority:
    """A two-tier CA on disk: a root, an issuing intermediate, and a record of all issued.

    Create one with `CertificateAuthority.create(dir)`, open it with `.load(dir)`, then
    `issue_server`, `issue_client`, `sign_csr`, `revoke` and `crl`. Only the intermediate's
    key is loaded to issue; the root key stays on disk.
    """

    def __init__(
        self,
        directory: Path,
        root: x509.Certificate,
        intermediate: x509.Certificate,
        intermediate_key: PrivateKey | None,
        store: CertStore,
    ) -> None:
        self.directory = directory
        self.root = root
        self.intermediate = intermediate
        self._key = intermediate_key
        self.store = store

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        name: str = DEFAULT_NAME,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        password: bytes | None = None,
        organization: str | None = None,
        now: datetime | None = None,
        db_url: str | None = None,
        crl_urls: Sequence[str] = (),
    ) -> CertificateAuthority:
        """Create a root CA and an issuing intermediate CA in a new or empty directory.

        Writes root.crt, root.key, intermediate.crt, intermediate.key (keys 0600, encrypted
        when a password is given) and ca.db, or with `db_url` (postgresql://...) the schema
        there and the URL in database.url; every later leaf names `crl_urls` in its CRL
        Distribution Points. Never replaces an existing CA.

        Raises:
            PKIError: the directory already holds a CA or cannot be written, or a bad URL.
        """
        directory = Path(directory)
        if crl_urls:
            crl_distribution_points(crl_urls)  # refuse a bad URL before writing anything
        parts = create_ca_directory(
            directory,
            name=name,
            key_type=key_type,
            password=password,
            organization=organization,
            at=_now(now),
            db_url=db_url,
            crl_urls=tuple(crl_urls),
        )
        return cls(directory, *parts)

    @classmethod
    def load(
        cls,
        directory: Path | str,
        *,
        password: bytes | None = None,
        lock_timeout: float = 10.0,
        with_key: bool = True,
    ) -> CertificateAuthority:
        """Open an existing CA directory and check that its parts belong together.

        Args:
            directory: the CA directory made by `create`.
            password: the CA keys' password, when they are encrypted.
            lock_timeout: seconds to wait for another process holding the database.
            with_key: load the intermediate key; False for read-only uses (listing),
                which then need no password.

        Raises:
            PKIError: missing directory or files, a key that does not match, or a database
                that belongs to another CA.
            KeyPasswordError: the intermediate key is encrypted and the password is wrong.
        """
        directory = Path(directory)
        parts = open_ca_directory(
            directory, password=password, lock_timeout=lock_timeout, with_key=with_key
        )
        return cls(directory, *parts)

    def close(self) -> None:
        """Close the database."""
        self.store.close()

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- issuing ---------------------------------------------------------------------------
    @property
    def crl_urls(self) -> tuple[str, ...]:
        """The CRL URLs every new leaf names (`ca init --crl-url`), from the database."""
        return tuple(json.loads(self.store.meta("crl_urls") or "[]"))

    @property
    def _signing_key(self) -> PrivateKey:
        if self._key is None:
            raise PKIError("this CA was opened without its key", "load it with with_key=True")
        return self._key

    def _issue(
        self,
        request: LeafRequest,
        validity: timedelta | None,
        now: datetime | None,
        deliver: Deliver | None,
        event: str = "issued",
        detail: str = "",
    ) -> IssuedCertificate:
        at = _now(now)
        profile, notes = request.profile, request.notes
        detail = detail or profile.name
        plan = plan_validity(
            at,
            validity or profile.default_validity,
            self.intermediate.not_valid_after_utc,
            self.intermediate.not_valid_before_utc,
        )
        if plan.capped:
            notes = (*notes, plan.note)
        # The serial is the PRIMARY KEY: a collision (2**-159 odds) rolls back; draw again.
        for attempt in range(3):
            cert = build_certificate(
                profile=profile,
                subject=request.subject,
                public_key=request.public_key,
                issuer=self.intermediate,
                issuer_key=self._signing_key,
                validity=plan,
                serial=x509.random_serial_number(),
                sans=request.sans,
                crl_urls=self.crl_urls,
            )
            issued = IssuedCertificate(
                certificate=cert,
                private_key=request.private_key,
                intermediates=(self.intermediate,),
                root=self.root,
                profile=profile.name,
                notes=notes,
            )
            subject = cert.subject.rfc4514_string()
            try:
                with self.store.transaction() as tx:
                    self.store.add(tx, cert, profile.name, at)
                    self.store.audit(
                        event, serial=issued.serial, subject=subject, detail=detail, at=at
                    )
                    if deliver is not None:
                        deliver(issued)
                return issued
            except SerialInUseError:  # pragma: no cover - needs two equal random serials
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def issue_server(
        self, name: str, sans: Sequence[str] = (), **options: Unpack[LeafOptions]
    ) -> IssuedCertificate:
        """Issue a server leaf (EKU serverAuth) for the given DNS names and IPs.

        Args:
            name: the subject CN; also the SAN when no sans are given.
            sans: "api.example.com", "10.0.0.1", ... (see names.parse_san).
            **options: validity, key_type, organization, unit, now, deliver: see
                `LeafOptions`.
        """
        return self._issue_leaf(SERVER, name, sans, **options)

    def issue_client(
        self, name: str, sans: Sequence[str] = (), **options: Unpack[LeafOptions]
    ) -> IssuedCertificate:
        """Issue a client leaf (EKU clientAuth only); arguments as for `issue_server`."""
        return self._issue_leaf(CLIENT, name, sans, **options)

    def _issue_leaf(
        self,
        profile: Profile,
        name: str,
        sans: Sequence[str],
        *,
        validity: timedelta | None = None,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        organization: str | None = None,
        unit: str | None = None,
        now: datetime | None = None,
        deliver: Deliver | None = None,
    ) -> IssuedCertificate:
        # The one implementation behind issue_server and issue_client: only the profile
        # differs, and it alone decides the extensions.
        request = new_key_request(
            profile, name, sans, key_type=key_type, organization=organization, unit=unit
        )
        return self._issue(request, validity, now, deliver)

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        profile: str = "client",
        *,
        validity: timedelta | None = None,
        extra_sans: Sequence[str] = (),
        now: datetime | None = None,
        deliver: Deliver | None = None,
        event: str = "issued",
        detail: str = "",
    ) -> IssuedCertificate:
        """Sign a CSR a user supplies; the profile, never the CSR, decides the extensions.

        `event` and `detail` are its audit record ("renewed" for `ca serve`'s /renew).

        Raises:
            CSRError: bad signature, weak key, no usable name.
            IssuanceError: not a leaf profile, or no subjectAltName in the CSR or extra_sans.
        """
        request = csr_request(csr, profile, extra_sans)
        return self._issue(request, validity, now, deliver, event, detail)

    # -- revocation ------------------------------------------------------------------------
    def revoke(
        self, serial: int, reason: str = "unspecified", *, now: datetime | None = None
    ) -> CertRecord:
        """Record a certificate issued by this CA as revoked; the next CRL lists it.

        Raises:
            PKIError: unknown serial (exit 2), a CA certificate, or already revoked (exit 1).
        """
        reason = parse_reason(reason)
        record = self.store.get(serial)
        if record is None:
            raise PKIError(
                f"serial {format_serial(serial)} was not issued by the CA in {self.directory}",
                f"list the serials with 'mtlskit ca list --dir {self.directory}'",
            )
        if record.profile in ("root", "intermediate"):
            raise PKIError(
                f"serial {record.serial} is the {record.profile} CA itself",
                "to retire a CA, create a new one and move clients to it",
            )
        when = _now(now)
        with self.store.transaction() as tx:
            # The UPDATE checks again: another process may have revoked it a moment ago.
            done = record.revoked_at is None and self.store.revoke(tx, serial, reason, when)
            if done:
                self.store.audit(
                    "revoked", serial=record.serial, subject=record.subject, detail=reason, at=when
                )
        if not done:
            record = self.store.get(serial) or record
            raise PKIError(
                f"serial {record.serial} ({record.subject}) was already revoked on "
                f"{record.revoked_at:%Y-%m-%d %H:%M}Z ({record.revocation_reason})",
                "nothing to do; publish a fresh CRL with 'mtlskit ca crl'",
                exit_code=1,
            )
        updated = self.store.get(serial)
        assert updated is not None  # noqa: S101 - recorded above, in the same database
        return updated

    def crl(
        self, *, next_update: timedelta = timedelta(days=7), now: datetime | None = None
    ) -> x509.CertificateRevocationList:
        """Sign a fresh CRL with the issuing CA's key, listing every revoked leaf."""
        if next_update <= timedelta(0):
            raise IssuanceError("--next-update must be positive", "give e.g. --next-update 7d")
        at = _now(now)
        issuer = self.intermediate.subject.rfc4514_string()
        with self.store.transaction() as tx:
            revoked = [
                Revocation(int(r.serial, 16), r.revoked_at, r.revocation_reason or "unspecified")
                for r in self.store.revoked(issuer)
                if r.revoked_at is not None
            ]
            number = self.store.next_crl_number(tx)
            self.store.audit("crl_published", subject=issuer, detail=f"number {number}", at=at)
            return build_crl(
                issuer=self.intermediate,
                issuer_key=self._signing_key,
                revoked=revoked,
                number=number,
                this_update=at,
                next_update=at + next_update,
            )

    # -- trust -----------------------------------------------------------------------------
    def records(self) -> list[CertRecord]:
        """Everything this CA issued, oldest first."""
        return self.store.records()

    def chain_pem(self) -> bytes:
        """The intermediate, PEM: what every leaf of this CA sends after itself."""
        return certs_to_pem([self.intermediate])

    def root_pem(self) -> bytes:
        """The root certificate, PEM: what peers install to trust this CA."""
        return self.root.public_bytes(serialization.Encoding.PEM)

    def configure_trust(self, ctx: ssl.SSLContext) -> None:
        """Make an SSLContext trust certificates issued by this CA (the root only)."""
        ctx.load_verify_locations(cadata=self.root_pem().decode())
