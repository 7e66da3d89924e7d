"""The CA directory: its file names, writing a new CA into it, and opening one with checks."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from mtlskit.errors import DatabaseError, PKIError
from mtlskit.pki.builder import build_certificate, make_name, plan_validity
from mtlskit.pki.files import PRIVATE, PUBLIC, OutputFile, read_file, write_files
from mtlskit.pki.keys import KeyType, PrivateKey, generate_key
from mtlskit.pki.pem import (
    certs_to_pem,
    key_matches_certificate,
    load_certificates,
    load_private_key,
    private_key_to_pem,
)
from mtlskit.pki.profiles import INTERMEDIATE, ROOT
from mtlskit.pki.store import DB_URL_FILE, CertStore, create_store, format_serial, open_store

__all__ = [
    "CA_FILES",
    "DATABASE",
    "DEFAULT_NAME",
    "INTERMEDIATE_CERT",
    "INTERMEDIATE_KEY",
    "ROOT_CERT",
    "ROOT_KEY",
    "CAParts",
    "create_ca_directory",
    "open_ca_directory",
]

ROOT_CERT, ROOT_KEY = "root.crt", "root.key"
INTERMEDIATE_CERT, INTERMEDIATE_KEY = "intermediate.crt", "intermediate.key"
DATABASE = "ca.db"  # or, after `ca init --db URL`, DB_URL_FILE naming a PostgreSQL database
CA_FILES = (ROOT_CERT, ROOT_KEY, INTERMEDIATE_CERT, INTERMEDIATE_KEY, DATABASE)
DEFAULT_NAME = "mtlskit Root CA"


class CAParts(NamedTuple):
    """What a CA directory holds once opened: the CertificateAuthority's parts, in order."""

    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: PrivateKey | None
    store: CertStore


def _intermediate_name(root_name: str) -> str:
    if "Root" in root_name:
        return root_name.replace("Root", "Intermediate", 1)
    return f"{root_name} Intermediate"[:64]


def create_ca_directory(
    directory: Path,
    *,
    name: str,
    key_type: KeyType,
    password: bytes | None,
    organization: str | None,
    at: datetime,
    db_url: str | None = None,
    crl_urls: tuple[str, ...] = (),
) -> CAParts:
    """Make a root and an intermediate and write them, their keys and ca.db into directory.

    See `CertificateAuthority.create`, which this implements; `at` is the issuing time.

    Raises:
        PKIError: the directory already holds a CA or cannot be written.
    """
    if directory.exists() and not directory.is_dir():
        raise PKIError(f"--dir {directory} is a file, not a directory", "choose a directory path")
    existing = [f for f in (*CA_FILES, DB_URL_FILE) if (directory / f).exists()]
    if existing:
        raise PKIError(
            f"a CA already exists in {directory} ({existing[0]} is there)",
            "mtlskit never overwrites a CA; choose another --dir or use this one",
        )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PKIError(f"cannot create {directory}: {exc.strerror}", "check permissions") from exc
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
        store = create_store(
            directory,
            db_url,
            {
                "name": name,
                "key_type": key_type,
                "encrypted": "yes" if password else "no",
                "intermediate_sha256": intermediate.fingerprint(hashes.SHA256()).hex(),
                "crl_urls": json.dumps(list(crl_urls)),
            },
        )
        with store.transaction() as tx:
            for cert, profile in ((root, "root"), (intermediate, "intermediate")):
                store.add(tx, cert, profile, at)
                subject = cert.subject.rfc4514_string()
                serial = format_serial(cert.serial_number)
                store.audit("issued", serial=serial, subject=subject, detail=profile, at=at)
    except BaseException:
        # All or nothing: a half-written CA would block the next `ca init` in this directory.
        for path in [*written, directory / DATABASE, directory / DB_URL_FILE]:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return CAParts(root, intermediate, int_key, store)


def open_ca_directory(
    directory: Path, *, password: bytes | None, lock_timeout: float, with_key: bool
) -> CAParts:
    """Read a CA directory and check that its parts belong together.

    See `CertificateAuthority.load`, which this implements (and documents the arguments).

    Raises:
        PKIError: missing directory or files, a key that does not match, or a database
            that belongs to another CA.
        KeyPasswordError: the intermediate key is encrypted and the password is wrong.
    """
    init_hint = f"create one with 'mtlskit ca init --dir {directory}', or give the right --dir"
    if not directory.is_dir():
        raise PKIError(f"--dir {directory} does not exist or is not a directory", init_hint)
    if not (directory / ROOT_CERT).exists():
        raise PKIError(f"{directory} holds no CA ({ROOT_CERT} is missing)", init_hint)
    for needed in (INTERMEDIATE_CERT, INTERMEDIATE_KEY):  # the database: open_store
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
    store = open_store(directory, lock_timeout=lock_timeout)
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
    return CAParts(root, intermediate, key, store)
