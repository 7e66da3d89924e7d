"""Rotating a CA directory's intermediate (or root) with an overlap, and what phase it is in."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import NameOID

from mtlskit.errors import PKIError
from mtlskit.pki.builder import build_certificate, plan_validity
from mtlskit.pki.cadir import (
    INTERMEDIATE_CERT,
    INTERMEDIATE_KEY,
    ROOT_CERT,
    ROOT_KEY,
    open_ca_directory,
)
from mtlskit.pki.files import PRIVATE, PUBLIC, OutputFile, read_file, write_files
from mtlskit.pki.keys import PrivateKey, generate_key, parse_key_type
from mtlskit.pki.pem import (
    certs_to_pem,
    key_matches_certificate,
    load_certificates,
    load_private_key,
    private_key_to_pem,
)
from mtlskit.pki.profiles import INTERMEDIATE, ROOT
from mtlskit.pki.store import format_serial

__all__ = [
    "CROSS_CERT",
    "PREVIOUS_DIR",
    "STATE_FILE",
    "TRANSITION_BUNDLE",
    "Phase",
    "Previous",
    "RotationState",
    "read_state",
    "retire",
    "rotate",
]

STATE_FILE = "rotation.json"
TRANSITION_BUNDLE = "transition.pem"
CROSS_CERT = "root-cross.crt"
PREVIOUS_DIR = "previous"

Phase = Literal["old_only", "overlap", "new_only"]
_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Previous:
    """A CA generation that was rotated out; its files stay under previous/.

    Attributes:
        intermediate: its intermediate certificate, relative to the CA directory.
        intermediate_key: that intermediate's key (kept to sign its CRL).
        root: its root certificate when the root was rotated too, else "".
        rotated_at: when the rotation that replaced it ran (ISO 8601, UTC).
        retired_at: when the overlap ended ("" while it lasts).
    """

    intermediate: str
    intermediate_key: str
    root: str
    rotated_at: str
    retired_at: str = ""


@dataclass(frozen=True, slots=True)
class RotationState:
    """What rotation.json records: the phase, the last rotation's kind, the past generations.

    Attributes:
        phase: "overlap" (old and new both trusted) or "new_only" (old retired).
        kind: "intermediate" or "root" (new root cross-signed by the old one).
        previous: the rotated-out generations, oldest first; the last is the newest.
        cross: the cross certificate's file name (root rotations) or "".
    """

    phase: Phase
    kind: Literal["intermediate", "root"]
    previous: tuple[Previous, ...]
    cross: str = ""

    @property
    def last(self) -> Previous:
        """The generation the last rotation replaced."""
        return self.previous[-1]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_state(directory: Path) -> RotationState | None:
    """The rotation state of a CA directory; None before its first rotation.

    Raises:
        PKIError: rotation.json exists but cannot be read.
    """
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(read_file(path, "the CA's rotation state (JSON)"))
        return RotationState(
            phase=data["phase"],
            kind=data["kind"],
            previous=tuple(Previous(**p) for p in data["previous"]),
            cross=data.get("cross", ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PKIError(
            f"{path} is not a rotation state mtlskit wrote ({exc})",
            "restore it from your backup of the CA directory",
        ) from exc


def _state_file(directory: Path, state: RotationState) -> OutputFile:
    data = {"version": _STATE_VERSION, **asdict(state)}
    data["previous"] = [asdict(p) for p in state.previous]
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return OutputFile(directory / STATE_FILE, text.encode(), PUBLIC)


def _next_name(subject: x509.Name, generation: int) -> x509.Name:
    """The same subject with ' G<n>' on its CN: a new CA must never share its predecessor's
    name, or chain building and CRL matching (both by issuer name) would mix them up."""
    attrs = []
    for attr in subject:
        if attr.oid == NameOID.COMMON_NAME:
            base, suffix = re.sub(r" G\d+$", "", str(attr.value)), f" G{generation}"
            while len((base + suffix).encode()) > 64:  # X.509 ub-common-name
                base = base[:-1]
            attr = x509.NameAttribute(NameOID.COMMON_NAME, base + suffix)
        attrs.append(attr)
    return x509.Name(attrs)


def _load_key(directory: Path, name: str, password: bytes | None) -> PrivateKey:
    path = directory / name
    return load_private_key(read_file(path, "a CA private key"), path, password=password)


def _cert(directory: Path, name: str) -> x509.Certificate:
    path = directory / name
    return load_certificates(read_file(path, "a CA certificate"), path)[0]


def _bundle(directory: Path, state: RotationState) -> OutputFile:
    """The client_ca bundle for the phase: the new intermediate, and the old one while the
    overlap lasts. Intermediates only: the gateway takes every CA in client_ca as a trust
    anchor (partial chain), so a retired intermediate's leaves are refused even when its
    root is the new one's too; the intermediates also name the CAs in the
    CertificateRequest, which browsers use to pick a certificate."""
    certs = [_cert(directory, INTERMEDIATE_CERT)]
    if state.phase == "overlap":
        certs.append(_cert(directory, state.last.intermediate))
    return OutputFile(directory / TRANSITION_BUNDLE, certs_to_pem(certs), PUBLIC)


@dataclass(frozen=True, slots=True)
class Rotated:
    """What `rotate` made: the new CA certificates and the state it recorded."""

    intermediate: x509.Certificate
    root: x509.Certificate
    cross: x509.Certificate | None
    state: RotationState
    written: tuple[Path, ...]


def rotate(
    directory: Path,
    *,
    new_root: bool,
    password: bytes | None,
    now: datetime | None = None,
    lock_timeout: float = 10.0,
) -> Rotated:
    """Make a new intermediate (and with new_root a new, cross-signed root) and start an overlap.

    The old intermediate (and root) are copied to previous/ first, the new ones recorded
    in ca.db and written in place of intermediate.* (root.*), so the CA issues with them
    from now on; transition.pem holds old and new for client_ca files; rotation.json says
    "overlap". With new_root, root-cross.crt certifies the new root's key under the old
    root, for peers that still trust only the old root.

    Raises:
        PKIError: an overlap is still running, or the CA cannot be read or written.
        KeyPasswordError: the CA keys are encrypted and the password is wrong.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    state = read_state(directory)
    if state is not None and state.phase == "overlap":
        raise PKIError(
            f"the CA in {directory} is already in an overlap (rotated on {state.last.rotated_at})",
            f"end it first with 'mtlskit ca rotate --dir {directory} --retire', then rotate",
            exit_code=1,
        )
    parts = open_ca_directory(
        directory, password=password, lock_timeout=lock_timeout, with_key=True
    )
    store, old_root, old_int = parts.store, parts.root, parts.intermediate
    try:
        root_key = _load_key(directory, ROOT_KEY, password)
        if not key_matches_certificate(root_key, old_root):
            raise PKIError(
                f"{directory / ROOT_KEY} does not match {directory / ROOT_CERT}",
                "put back the root key that belongs to this root certificate",
            )
        key_type = parse_key_type(store.meta("key_type") or "ec-p256")
        generation = len(state.previous) + 2 if state else 2
        root, signer, cross = old_root, root_key, None
        if new_root:
            signer = generate_key(key_type)
            root = build_certificate(
                profile=ROOT,
                subject=_next_name(old_root.subject, generation),
                public_key=signer.public_key(),
                issuer=None,
                issuer_key=signer,
                validity=plan_validity(at, ROOT.default_validity, None),
                serial=x509.random_serial_number(),
            )
            # The cross certificate: the new root's name and key, signed by the old root.
            # A path old root -> cross -> new intermediate -> leaf then verifies for peers
            # that have not installed the new root yet (RFC 4158 2.3).
            cross = build_certificate(
                profile=ROOT,
                subject=root.subject,
                public_key=signer.public_key(),
                issuer=old_root,
                issuer_key=root_key,
                validity=plan_validity(
                    at,
                    ROOT.default_validity,
                    old_root.not_valid_after_utc,
                    old_root.not_valid_before_utc,
                ),
                serial=x509.random_serial_number(),
            )
        int_key = generate_key(key_type)
        intermediate = build_certificate(
            profile=INTERMEDIATE,
            subject=_next_name(old_int.subject, generation),
            public_key=int_key.public_key(),
            issuer=root,
            issuer_key=signer,
            validity=plan_validity(
                at,
                INTERMEDIATE.default_validity,
                root.not_valid_after_utc,
                root.not_valid_before_utc,
            ),
            serial=x509.random_serial_number(),
        )
        (directory / PREVIOUS_DIR).mkdir(mode=0o700, exist_ok=True)
        serial = format_serial(old_int.serial_number)
        prev = Previous(
            intermediate=f"{PREVIOUS_DIR}/intermediate-{serial}.crt",
            intermediate_key=f"{PREVIOUS_DIR}/intermediate-{serial}.key",
            root=f"{PREVIOUS_DIR}/root-{format_serial(old_root.serial_number)}.crt"
            if new_root
            else "",
            rotated_at=_iso(at),
        )
        # 1. the old generation, copied byte for byte (keys stay encrypted as they were);
        # replacing an earlier copy is harmless: same serial, same bytes (a rerun).
        copies = [(INTERMEDIATE_CERT, prev.intermediate), (INTERMEDIATE_KEY, prev.intermediate_key)]
        if new_root:
            copies += [(ROOT_CERT, prev.root), (ROOT_KEY, prev.root.removesuffix(".crt") + ".key")]
        archive = [
            OutputFile(
                directory / dst,
                read_file(directory / src, "a CA file"),
                PRIVATE if src.endswith(".key") else PUBLIC,
            )
            for src, dst in copies
        ]
        written = write_files(archive, force=True)
        # 2. the new generation in place, recorded in the same transaction: if writing
        # fails, ca.db does not list CA certificates that are not on disk.
        outputs = [
            OutputFile(
                directory / INTERMEDIATE_KEY, private_key_to_pem(int_key, password), PRIVATE
            ),
            OutputFile(directory / INTERMEDIATE_CERT, certs_to_pem([intermediate]), PUBLIC),
        ]
        if cross is not None:
            outputs = [
                OutputFile(directory / ROOT_KEY, private_key_to_pem(signer, password), PRIVATE),
                OutputFile(directory / ROOT_CERT, certs_to_pem([root]), PUBLIC),
                OutputFile(directory / CROSS_CERT, certs_to_pem([cross]), PUBLIC),
                *outputs,
            ]
        new_state = RotationState(
            phase="overlap",
            kind="root" if new_root else "intermediate",
            previous=(*(state.previous if state else ()), prev),
            cross=CROSS_CERT if new_root else "",
        )
        with store.transaction() as conn:
            if cross is not None:
                store.add(conn, root, "root", at)
                store.add(conn, cross, "root", at)
            store.add(conn, intermediate, "intermediate", at)
            # open_ca_directory checks that ca.db belongs to the intermediate on disk.
            store.set_meta("intermediate_sha256", intermediate.fingerprint(SHA256()).hex())
            store.audit(
                "rotated",
                serial=format_serial(intermediate.serial_number),
                subject=intermediate.subject.rfc4514_string(),
                detail=f"{new_state.kind}: overlap with {old_int.subject.rfc4514_string()}",
                at=at,
            )
            written += write_files(outputs, force=True)
        # 3. the phase and the bundle, last: until then the CA still opens as before.
        written += write_files(
            [_state_file(directory, new_state), _bundle(directory, new_state)], force=True
        )
    finally:
        store.close()
    return Rotated(intermediate, root, cross, new_state, tuple(written))


def retire(directory: Path, *, now: datetime | None = None) -> RotationState:
    """End the overlap: transition.pem then holds the new CA only ("new only").

    The old generation's files stay in previous/, so its leaves can still be revoked and
    its CRL published.

    Raises:
        PKIError: no overlap is running.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    state = read_state(directory)
    if state is None or state.phase != "overlap":
        raise PKIError(
            f"the CA in {directory} is not in an overlap: nothing to retire",
            f"see 'mtlskit ca status --dir {directory}'",
            exit_code=1,
        )
    last = replace(state.last, retired_at=_iso(at))
    new_state = replace(state, phase="new_only", previous=(*state.previous[:-1], last))
    store = open_ca_directory(directory, password=None, lock_timeout=10.0, with_key=False).store
    try:
        old = _cert(directory, last.intermediate)
        with store.transaction():
            store.audit(
                "rotated",
                serial=format_serial(old.serial_number),
                subject=old.subject.rfc4514_string(),
                detail="retired: the overlap ended",
                at=at,
            )
            write_files(
                [_state_file(directory, new_state), _bundle(directory, new_state)], force=True
            )
    finally:
        store.close()
    return new_state
