"""The CertificateAuthority: a root and an issuing intermediate on disk, with its database."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from mtlskit.errors import DatabaseError, IssuanceError, PKIError
from mtlskit.pki.builder import build_certificate, make_name, plan_validity
from mtlskit.pki.crl import Revocation, build_crl, parse_reason
from mtlskit.pki.csr import review_csr
from mtlskit.pki.files import PRIVATE, PUBLIC, OutputFile, read_file, write_files
from mtlskit.pki.issued import IssuedCertificate
from mtlskit.pki.keys import DEFAULT_KEY_TYPE, KeyType, PrivateKey, PublicKey, generate_key
from mtlskit.pki.names import describe_general_name, parse_san, parse_sans
from mtlskit.pki.pem import (
    certs_to_pem,
    key_matches_certificate,
    load_certificates,
    load_private_key,
    private_key_to_pem,
)
from mtlskit.pki.profiles import CLIENT, INTERMEDIATE, LEAF_PROFILES, ROOT, SERVER, Profile
from mtlskit.pki.store import CertRecord, CertStore, format_serial

__all__ = ["CertificateAuthority", "Deliver"]

ROOT_CERT, ROOT_KEY = "root.crt", "root.key"
INTERMEDIATE_CERT, INTERMEDIATE_KEY = "intermediate.crt", "intermediate.key"
DATABASE = "ca.db"
CA_FILES = (ROOT_CERT, ROOT_KEY, INTERMEDIATE_CERT, INTERMEDIATE_KEY, DATABASE)
DEFAULT_NAME = "mtlskit Root CA"

ED25519_NOTE = (
    "Ed25519 leaves work with OpenSSL peers (curl, nginx, the mtlskit gateway) but WebPKI "
    "verifiers (browsers, Go, cryptography and so 'mtlskit cert verify') refuse them; "
    "use ec-p256 unless every peer is OpenSSL-based"
)

Deliver = Callable[[IssuedCertificate], object]
"""Called with a new certificate while its record is still uncommitted: if it raises
(say, an output file exists), the record is rolled back, so the database never lists a
certificate nobody received."""


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def _intermediate_name(root_name: str) -> str:
    if "Root" in root_name:
        return root_name.replace("Root", "Intermediate", 1)
    return f"{root_name} Intermediate"[:64]


def _default_san(name: str, profile: Profile) -> tuple[list[x509.GeneralName], tuple[str, ...]]:
    try:
        san = parse_san(name)
    except IssuanceError as exc:
        raise IssuanceError(
            f"a {profile.name} certificate needs a subjectAltName and {name!r} is not a DNS name",
            "add --san (a DNS name, IP, spiffe:// URI or email)",
        ) from exc
    note = (
        f"no --san given: added {describe_general_name(san)} "
        "(verifiers match SANs, and cryptography's client verifier requires one)"
    )
    return [san], (note,)


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
    ) -> CertificateAuthority:
        """Create a root CA and an issuing intermediate CA in a new or empty directory.

        Writes root.crt, root.key, intermediate.crt, intermediate.key (keys 0600, encrypted
        when a password is given) and ca.db. Never replaces an existing CA.

        Raises:
            PKIError: the directory already holds a CA or cannot be written.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise PKIError(
                f"--dir {directory} is a file, not a directory", "choose a directory path"
            )
        existing = [f for f in CA_FILES if (directory / f).exists()]
        if existing:
            raise PKIError(
                f"a CA already exists in {directory} ({existing[0]} is there)",
                "mtlskit never overwrites a CA; choose another --dir or use this one",
            )
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise PKIError(
                f"cannot create {directory}: {exc.strerror}", "check permissions"
            ) from exc
        at = _now(now)
        root_key = generate_key(key_type)
        root = build_certificate(
            profile=ROOT,
            subject=make_name(name, organization),
            public_key=root_key.public_key(),
            issuer=None,
            issuer_key=root_key,
            validity=plan_validity(at, ROOT.default_validity, None),
            serial=x509.random_serial_number(),
        )
        int_key = generate_key(key_type)
        intermediate = build_certificate(
            profile=INTERMEDIATE,
            subject=make_name(_intermediate_name(name), organization),
            public_key=int_key.public_key(),
            issuer=root,
            issuer_key=root_key,
            validity=plan_validity(
                at,
                INTERMEDIATE.default_validity,
                root.not_valid_after_utc,
                root.not_valid_before_utc,
            ),
            serial=x509.random_serial_number(),
        )
        written = write_files(
            [
                OutputFile(directory / ROOT_KEY, private_key_to_pem(root_key, password), PRIVATE),
                OutputFile(directory / ROOT_CERT, certs_to_pem([root]), PUBLIC),
                OutputFile(
                    directory / INTERMEDIATE_KEY, private_key_to_pem(int_key, password), PRIVATE
                ),
                OutputFile(directory / INTERMEDIATE_CERT, certs_to_pem([intermediate]), PUBLIC),
            ]
        )
        try:
            store = CertStore.create(
                directory / DATABASE,
                {
                    "name": name,
                    "key_type": key_type,
                    "encrypted": "yes" if password else "no",
                    "intermediate_sha256": intermediate.fingerprint(hashes.SHA256()).hex(),
                },
            )
            with store.transaction() as conn:
                store.add(conn, root, "root", at)
                store.add(conn, intermediate, "intermediate", at)
        except BaseException:
            for path in [*written, directory / DATABASE]:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return cls(directory, root, intermediate, int_key, store)

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
        init_hint = f"create one with 'mtlskit ca init --dir {directory}', or give the right --dir"
        if not directory.is_dir():
            raise PKIError(f"--dir {directory} does not exist or is not a directory", init_hint)
        if not (directory / ROOT_CERT).exists():
            raise PKIError(f"{directory} holds no CA ({ROOT_CERT} is missing)", init_hint)
        for needed in (INTERMEDIATE_CERT, INTERMEDIATE_KEY, DATABASE):
            if not (directory / needed).exists():
                raise PKIError(
                    f"the CA in {directory} is incomplete: {needed} is missing",
                    "restore it from your backup; the CA cannot issue without it",
                )
        root = load_certificates(
            read_file(directory / ROOT_CERT, "the root CA certificate"), directory / ROOT_CERT
        )[0]
        intermediate = load_certificates(
            read_file(directory / INTERMEDIATE_CERT, "the intermediate CA certificate"),
            directory / INTERMEDIATE_CERT,
        )[0]
        key = None
        if with_key:
            key = load_private_key(
                read_file(directory / INTERMEDIATE_KEY, "the intermediate CA key"),
                directory / INTERMEDIATE_KEY,
                password=password,
            )
        if key is not None and not key_matches_certificate(key, intermediate):
            raise PKIError(
                f"{directory / INTERMEDIATE_KEY} does not match {directory / INTERMEDIATE_CERT}",
                "put back the key that belongs to this certificate (compare "
                "'openssl pkey -pubout' with 'openssl x509 -pubkey')",
            )
        try:
            intermediate.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PKIError(
                f"{directory / INTERMEDIATE_CERT} was not issued by {directory / ROOT_CERT}",
                "the two files come from different CAs; restore the matching pair",
            ) from exc
        store = CertStore(directory / DATABASE, lock_timeout=lock_timeout)
        try:
            recorded = store.meta("intermediate_sha256")
        except BaseException:
            store.close()
            raise
        if recorded != intermediate.fingerprint(hashes.SHA256()).hex():
            store.close()
            raise DatabaseError(
                f"{directory / DATABASE} belongs to another CA than {INTERMEDIATE_CERT}",
                "restore the database that was created with this CA",
            )
        return cls(directory, root, intermediate, key, store)

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
    def _signing_key(self) -> PrivateKey:
        if self._key is None:
            raise PKIError("this CA was opened without its key", "load it with with_key=True")
        return self._key

    def _issue(
        self,
        *,
        profile: Profile,
        subject: x509.Name,
        public_key: PublicKey,
        private_key: PrivateKey | None,
        sans: Sequence[x509.GeneralName],
        validity: timedelta | None,
        now: datetime | None,
        notes: tuple[str, ...],
        deliver: Deliver | None,
    ) -> IssuedCertificate:
        at = _now(now)
        plan = plan_validity(
            at,
            validity or profile.default_validity,
            self.intermediate.not_valid_after_utc,
            self.intermediate.not_valid_before_utc,
        )
        if plan.capped:
            notes = (*notes, plan.note)
        # The write lock is held from choosing the serial to recording it, so two processes
        # issuing at once can never pick the same serial or lose a record.
        with self.store.transaction() as conn:
            serial = x509.random_serial_number()
            while self.store.serial_exists(conn, serial):
                serial = x509.random_serial_number()  # pragma: no cover - 2**-159 odds
            cert = build_certificate(
                profile=profile,
                subject=subject,
                public_key=public_key,
                issuer=self.intermediate,
                issuer_key=self._signing_key,
                validity=plan,
                serial=serial,
                sans=sans,
            )
            self.store.add(conn, cert, profile.name, at)
            issued = IssuedCertificate(
                certificate=cert,
                private_key=private_key,
                intermediates=(self.intermediate,),
                root=self.root,
                profile=profile.name,
                notes=notes,
            )
            if deliver is not None:
                deliver(issued)
        return issued

    def issue_server(
        self,
        name: str,
        sans: Sequence[str] = (),
        *,
        validity: timedelta | None = None,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        organization: str | None = None,
        unit: str | None = None,
        now: datetime | None = None,
        deliver: Deliver | None = None,
    ) -> IssuedCertificate:
        """Issue a server leaf (EKU serverAuth) for the given DNS names and IPs.

        Args:
            name: the subject CN; also the SAN when no sans are given.
            sans: "api.example.com", "10.0.0.1", ... (see names.parse_san).
            validity: lifetime; the profile default (90 days) when None, capped at the CA's.
            key_type: the new key's type.
            organization: subject O.
            unit: subject OU.
            now: issuing time, for tests.
            deliver: see `Deliver`.
        """
        return self._issue_new_key(
            SERVER, name, sans, validity, key_type, organization, unit, now, deliver
        )

    def issue_client(
        self,
        name: str,
        sans: Sequence[str] = (),
        *,
        validity: timedelta | None = None,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        organization: str | None = None,
        unit: str | None = None,
        now: datetime | None = None,
        deliver: Deliver | None = None,
    ) -> IssuedCertificate:
        """Issue a client leaf (EKU clientAuth only); arguments as for `issue_server`."""
        return self._issue_new_key(
            CLIENT, name, sans, validity, key_type, organization, unit, now, deliver
        )

    def _issue_new_key(
        self,
        profile: Profile,
        name: str,
        sans: Sequence[str],
        validity: timedelta | None,
        key_type: KeyType,
        organization: str | None,
        unit: str | None,
        now: datetime | None,
        deliver: Deliver | None,
    ) -> IssuedCertificate:
        subject = make_name(name, organization, unit)
        notes: tuple[str, ...] = ()
        parsed = parse_sans(sans)
        if not parsed:
            parsed, notes = _default_san(name, profile)
        if key_type == "ed25519":
            notes = (*notes, ED25519_NOTE)
        key = generate_key(key_type)
        return self._issue(
            profile=profile,
            subject=subject,
            public_key=key.public_key(),
            private_key=key,
            sans=parsed,
            validity=validity,
            now=now,
            notes=notes,
            deliver=deliver,
        )

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        profile: str = "client",
        *,
        validity: timedelta | None = None,
        extra_sans: Sequence[str] = (),
        now: datetime | None = None,
        deliver: Deliver | None = None,
    ) -> IssuedCertificate:
        """Sign a CSR a user supplies; the profile, never the CSR, decides the extensions.

        Raises:
            CSRError: bad signature, weak key, no usable name.
            ConfigError: unknown profile.
        """
        if profile not in LEAF_PROFILES:
            raise IssuanceError(
                f"--profile {profile!r} is not a leaf profile", "use server or client"
            )
        chosen = LEAF_PROFILES[profile]
        review = review_csr(csr, chosen)
        sans = list(review.sans)
        for extra in parse_sans(extra_sans):
            if extra not in sans:
                sans.append(extra)
        if not sans:
            raise IssuanceError(
                f"the CSR has no subjectAltName and a {chosen.name} certificate needs one",
                "pass --san NAME (a DNS name, IP, spiffe:// URI or email)",
            )
        notes = tuple(f"dropped from the CSR: {d}" for d in review.dropped)
        return self._issue(
            profile=chosen,
            subject=review.subject,
            public_key=review.public_key,
            private_key=None,
            sans=sans,
            validity=validity,
            now=now,
            notes=notes,
            deliver=deliver,
        )

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
        if record.revoked_at is not None:
            raise PKIError(
                f"serial {record.serial} ({record.subject}) was already revoked on "
                f"{record.revoked_at:%Y-%m-%d %H:%M}Z ({record.revocation_reason})",
                "nothing to do; publish a fresh CRL with 'mtlskit ca crl'",
                exit_code=1,
            )
        self.store.revoke(serial, reason, _now(now))
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
        revoked = [
            Revocation(int(r.serial, 16), r.revoked_at, r.revocation_reason or "unspecified")
            for r in self.store.revoked(issuer)
            if r.revoked_at is not None
        ]
        with self.store.transaction() as conn:
            number = self.store.next_crl_number(conn)
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
