"""Pure checks over a rejected chain that pick the most specific reason code and certificate."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from mtlskit.trust._ext import UNREADABLE, authority_key_id, extension, subject_key_id
from mtlskit.trust.checks import check_path, role_of
from mtlskit.trust.reasons import Finding, Purpose, ReasonCode, display_name

__all__ = ["Walk", "diagnose", "is_self_signed", "role_of", "split_trust", "walk"]

_MAX_WALK = 16
End = Literal["anchor", "unknown_issuer", "self_signed", "missing_intermediate", "bad_signature"]


@dataclass(frozen=True, slots=True)
class Walk:
    """The path followed by issuer name and key identifier from the leaf upwards.

    Attributes:
        path: certificates from the leaf up to where the walk stopped.
        end: why it stopped: "anchor" (reached a trusted certificate) or the gap found.
        other: the certificate named by the gap: the missing intermediate (a hint), or
            the issuer whose key does not verify the signature.
    """

    path: tuple[x509.Certificate, ...]
    end: End
    other: x509.Certificate | None = None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError:
        # cryptography refuses to check legacy hashes (SHA-1, MD5) at all. Such a link is
        # followed unchecked: whatever its signature, OpenSSL refuses the hash, and the
        # strength check names it (signature_too_weak) rather than calling it a forgery.
        return _legacy_hash(cert) and cert.issuer == issuer.subject
    except (TypeError, InvalidSignature):
        return False
    return True


def _legacy_hash(cert: x509.Certificate) -> bool:
    try:
        digest = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    return digest is not None and digest.name in {"md5", "sha1"}


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def split_trust(
    certs: Sequence[x509.Certificate],
) -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
    """Split a CA bundle: self-signed certificates are trust anchors, the others hints.

    `openssl verify -CAfile` trusts every certificate in the bundle; we trust only the
    roots, so that a peer that forgets its intermediate is told (missing_intermediate).
    """
    anchors = tuple(c for c in certs if is_self_signed(c))
    return anchors, tuple(c for c in certs if c not in anchors)


def _issuers(cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Certificates whose subject is cert's issuer and whose SKI matches its AKI (if both)."""
    aki = authority_key_id(cert)
    return [
        c
        for c in pool
        if c.subject == cert.issuer
        and (aki is None or subject_key_id(c) in (None, aki))
        and c != cert
    ]


def _next_issuers(
    cur: x509.Certificate,
    path: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    hints: Sequence[x509.Certificate],
) -> tuple[list[x509.Certificate], str]:
    for pool, kind in ((anchors, "anchor"), (intermediates, "sent"), (hints, "hint")):
        found = [c for c in _issuers(cur, pool) if c not in path]
        if found:
            return found, kind
    return [], ""


def walk(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    hints: Sequence[x509.Certificate] = (),
) -> Walk:
    """Follow issuer links (names, AKI/SKI) upwards; a map for explanations, not a verdict.

    Issuers are looked for among the anchors, then the sent intermediates, then the
    hints; a link found only among the hints means the peer should have sent it.
    """
    path = [leaf]
    for _ in range(_MAX_WALK):
        cur = path[-1]
        if cur in anchors:
            return Walk(tuple(path), "anchor")
        if is_self_signed(cur):  # a root of its own that nobody trusts
            return Walk(tuple(path), "self_signed")
        found, kind = _next_issuers(cur, path, anchors, intermediates, hints)
        if not found:
            return Walk(tuple(path), "unknown_issuer")
        good = [c for c in found if _signed_by(cur, c)]
        if not good:
            return Walk(tuple(path), "bad_signature", found[0])
        if kind == "hint":
            return Walk(tuple(path), "missing_intermediate", good[0])
        path.append(good[0])
        if kind == "anchor":
            return Walk(tuple(path), "anchor")
    return Walk(tuple(path), "unknown_issuer")


def _path_length(path: Sequence[x509.Certificate], max_depth: int | None) -> tuple[int, str]:
    """(index of the concerned certificate, detail) when a length limit is exceeded."""
    if max_depth is not None and len(path) - 2 > max_depth:
        return len(path) - 2, (
            f"{len(path) - 2} intermediate(s) but --max-depth allows {max_depth}"
        )
    for index in range(1, len(path)):
        bc = extension(path[index], x509.BasicConstraints)
        below = [c for c in path[1:index] if c.issuer != c.subject]  # self-issued don't count
        if bc is not None and bc.path_length is not None and len(below) > bc.path_length:
            return index, (
                f"its pathLenConstraint is {bc.path_length} but {len(below)} CA "
                "certificate(s) follow it in the path"
            )
    return -1, ""


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    san = extension(cert, x509.SubjectAlternativeName)
    return list(san) if san is not None else []


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def _names(cert: x509.Certificate, purpose: Purpose, host: str | None) -> Finding | None:
    sans = _sans(cert)
    role = f"{purpose}'s certificate"
    if not sans:
        if purpose == "client":
            return Finding(
                ReasonCode.MALFORMED,
                display_name(cert),
                role,
                "it has no subjectAltName, which client certificates must carry "
                "(a CN alone is not accepted)",
            )
        return Finding(
            ReasonCode.NAME_MISMATCH,
            display_name(cert),
            role,
            "it has no subjectAltName, and host names are matched against SANs only",
        )
    if purpose != "server" or host is None:
        return None
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        ok = any(isinstance(n, x509.IPAddress) and n.value == ip for n in sans)
    except ValueError:
        ok = any(isinstance(n, x509.DNSName) and _dns_match(n.value, host) for n in sans)
    if ok:
        return None
    listed = ", ".join(str(n.value) for n in sans)
    return Finding(
        ReasonCode.NAME_MISMATCH, display_name(cert), role, f"{host!r} is not in [{listed}]"
    )


def _malformed(
    path: Sequence[x509.Certificate], purpose: Purpose, complete: bool
) -> Finding | None:
    for index, cert in enumerate(path):
        try:
            _ = cert.extensions  # parses every extension: duplicates, bad DER
        except UNREADABLE as exc:
            role = role_of(index, len(path), purpose, complete)
            return Finding(ReasonCode.MALFORMED, display_name(cert), role, str(exc))
    return None


def _structure(w: Walk, purpose: Purpose, complete: bool) -> Finding | None:
    top = w.path[-1]
    role = role_of(len(w.path) - 1, len(w.path), purpose, complete)
    if w.end == "self_signed":
        if len(w.path) == 1:
            return Finding(ReasonCode.SELF_SIGNED_UNTRUSTED, display_name(top), role)
        return Finding(
            ReasonCode.UNKNOWN_ISSUER,
            display_name(top),
            "self-signed root",
            "the chain ends at this root, which is not one of the trusted roots",
        )
    if w.end == "unknown_issuer":
        return Finding(
            ReasonCode.UNKNOWN_ISSUER,
            display_name(top),
            role,
            f"its issuer {display_name(top.issuer)} is neither trusted nor sent",
        )
    if w.end == "missing_intermediate" and w.other is not None:
        return Finding(
            ReasonCode.MISSING_INTERMEDIATE,
            display_name(top),
            role,
            display_name(w.other),
            {"missing": display_name(w.other)},
        )
    if w.end == "bad_signature" and w.other is not None:
        return Finding(
            ReasonCode.BAD_SIGNATURE,
            display_name(top),
            role,
            f"it names {display_name(w.other)} as issuer, but that CA's key did not sign it",
        )
    return None


def diagnose(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    purpose: Purpose,
    now: datetime,
    host: str | None = None,
    hints: Sequence[x509.Certificate] = (),
    max_depth: int | None = None,
    validator_error: str = "",
) -> tuple[Finding, Walk]:
    """Explain why the validator rejected a chain; never says it is valid.

    The checks run from the most to the least fundamental: a path to a trusted root,
    then check_path's (dates, CA flags, purpose, key and signature strength), path
    length, names. If none applies, the validator's own
    message is passed on as a policy_violation.
    """
    w = walk(leaf, intermediates, anchors, hints)
    complete = w.end == "anchor"
    n = len(w.path)
    broken = _malformed(w.path, purpose, complete)
    if broken is not None:
        return broken, w
    structural = _structure(w, purpose, complete)
    if structural is not None:
        return structural, w
    found = check_path(w.path, purpose, now, complete=complete)
    if found:
        return found[0], w
    index, why = _path_length(w.path, max_depth)
    if why:
        role = role_of(index, n, purpose, complete)
        return Finding(ReasonCode.PATH_TOO_LONG, display_name(w.path[index]), role, why), w
    named = _names(leaf, purpose, host)
    if named is not None:
        return named, w
    detail = validator_error or "the validator rejected the path"
    role = role_of(0, n, purpose, complete)
    return Finding(ReasonCode.POLICY_VIOLATION, display_name(leaf), role, detail), w
