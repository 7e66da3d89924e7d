"""CRLs as sets of revoked serials, checked once at load for issuer, signature and profile."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from mtlskit.trust._ext import UNREADABLE, authority_key_id, extension, subject_key_id
from mtlskit.trust.reasons import Finding, ReasonCode, display_name

__all__ = ["RevocationList", "check_revocation", "load_crl_set"]

_REASON_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "cACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aACompromise",
    x509.ReasonFlags.remove_from_crl: "removeFromCRL",
}


@dataclass(frozen=True, slots=True, eq=False)
class RevocationList:
    """One CRL, loaded once: its revoked serials as a frozenset for O(1) lookups.

    Attributes:
        issuer: the CRL's issuer name.
        signer: the CA certificate whose key verified the CRL's signature, or None.
        this_update: when the CRL was issued (UTC).
        next_update: when a newer CRL is due (UTC), None if the CRL does not say.
        serials: every revoked serial number.
        problem: why the CRL cannot be trusted ("" when it can): a bad signature, an
            issuer without cRLSign, a missing or critical CRL number.
        crl: the parsed CRL, for the date and reason of a revoked entry.
    """

    issuer: x509.Name
    signer: x509.Certificate | None
    this_update: datetime
    next_update: datetime | None
    serials: frozenset[int]
    problem: str
    crl: x509.CertificateRevocationList

    def is_revoked(self, serial: int) -> bool:
        """True when the serial is listed (a set lookup; O(1))."""
        return serial in self.serials

    def entry(self, serial: int) -> dict[str, str]:
        """Revocation date and reason of a listed serial, for explanations and --json."""
        revoked = self.crl.get_revoked_certificate_by_serial_number(serial)
        if revoked is None:
            return {}
        found = extension(revoked, x509.CRLReason)
        reason = (
            "unspecified" if found is None else _REASON_NAMES.get(found.reason, found.reason.name)
        )
        when = revoked.revocation_date_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"revocation_reason": reason, "revocation_date": when}


def _signature_ok(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a key type that cannot sign CRLs
        return False


def _profile_problem(crl: x509.CertificateRevocationList, signer: x509.Certificate) -> str:
    # RFC 5280 6.3.3 (f): the CRL issuer's key usage, if present, must allow cRLSign.
    usage = extension(signer, x509.KeyUsage)
    if usage is not None and not usage.crl_sign:
        return f"{display_name(signer)} signed the CRL but its key usage lacks cRLSign"
    # RFC 5280 5.2.3: conforming CRL issuers must include a non-critical CRL number.
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    except x509.ExtensionNotFound:
        return "the CRL has no CRL number (RFC 5280 5.2.3 requires one)"
    except UNREADABLE as exc:
        return f"the CRL's extensions cannot be read ({exc})"
    if number.critical:
        return "the CRL number extension is marked critical (RFC 5280 5.2.3: non-critical)"
    if crl.next_update_utc is None:
        return "the CRL has no nextUpdate (RFC 5280 5.1.2.5 requires one)"
    return ""


def load_crl_set(
    crl: x509.CertificateRevocationList, issuers: Iterable[x509.Certificate]
) -> RevocationList:
    """Index a CRL once: find the CA that signed it, check its signature and profile.

    Args:
        crl: the parsed CRL.
        issuers: CA certificates that may have issued it (trust anchors, intermediates);
            the one whose name matches and whose key verifies the signature is the signer.

    Returns:
        A RevocationList; its `problem` says why it cannot be trusted, if it cannot.
    """
    key_id = authority_key_id(crl)
    named = [c for c in issuers if c.subject == crl.issuer]
    matching = [c for c in named if key_id is None or subject_key_id(c) in (None, key_id)]
    signer = next((c for c in matching if _signature_ok(crl, c)), None)
    if signer is None:
        problem = (
            f"its signature does not verify with the key of {display_name(crl.issuer)}"
            if matching
            else f"its issuer {display_name(crl.issuer)} is not among the known CAs"
        )
    else:
        problem = _profile_problem(crl, signer)
    return RevocationList(
        issuer=crl.issuer,
        signer=signer,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        serials=frozenset(r.serial_number for r in crl),
        problem=problem,
        crl=crl,
    )


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a == b or a.public_key() == b.public_key()


def _applies(rl: RevocationList, issuer: x509.Certificate) -> bool:
    """A CRL covers certificates of `issuer` when names match and it is not another CA's."""
    if rl.issuer != issuer.subject:
        return False
    if rl.signer is not None:
        return _same_key(rl.signer, issuer)
    key_id = authority_key_id(rl.crl)
    return key_id is None or subject_key_id(issuer) in (None, key_id)


def check_revocation(
    path: Sequence[x509.Certificate],
    crls: Sequence[RevocationList],
    now: datetime,
    roles: Sequence[str],
) -> tuple[Finding | None, tuple[str, ...]]:
    """Check every non-anchor certificate of a verified path against the CRLs that cover it.

    Args:
        path: the verified path, leaf first, anchor last.
        crls: loaded CRLs; those of other CAs are ignored.
        now: the validation time.
        roles: a role name per path position ("client certificate", "intermediate CA").

    Returns:
        The first finding (leaf first), or None; and notes on what was not checked.
    """
    notes: list[str] = []
    used: set[int] = set()
    for index, cert in enumerate(path[:-1]):
        issuer = path[index + 1]
        covering = [rl for rl in crls if _applies(rl, issuer)]
        used.update(id(rl) for rl in covering)
        if not covering:
            if crls:
                notes.append(
                    f"no CRL of {display_name(issuer)} given: {display_name(cert)} "
                    "was not checked for revocation"
                )
            continue
        for rl in covering:
            finding = _check_one(rl, cert, issuer, now, roles[index])
            if finding is not None:
                return finding, tuple(notes)
    for rl in crls:
        if id(rl) not in used:
            notes.append(f"the CRL of {display_name(rl.issuer)} does not cover this path")
    return None, tuple(notes)


def _check_one(
    rl: RevocationList, cert: x509.Certificate, issuer: x509.Certificate, now: datetime, role: str
) -> Finding | None:
    who = display_name(issuer)
    if rl.problem:
        code = ReasonCode.BAD_SIGNATURE if rl.signer is None else ReasonCode.POLICY_VIOLATION
        return Finding(code, who, "CRL of", rl.problem)
    if rl.next_update is not None and now > rl.next_update:
        return Finding(
            ReasonCode.CRL_STALE,
            who,
            "CRL of",
            f"its nextUpdate {rl.next_update:%Y-%m-%d %H:%M}Z has passed",
            {"next_update": rl.next_update.strftime("%Y-%m-%dT%H:%M:%SZ")},
        )
    if now < rl.this_update:
        return Finding(
            ReasonCode.CRL_STALE,
            who,
            "CRL of",
            f"it is dated {rl.this_update:%Y-%m-%d %H:%M}Z, after the validation time",
        )
    if rl.is_revoked(cert.serial_number):
        entry = rl.entry(cert.serial_number)
        detail = (
            f"the CRL of {who} lists serial {cert.serial_number:X} since "
            f"{entry.get('revocation_date', '?')} (reason {entry.get('revocation_reason', '?')})"
        )
        return Finding(ReasonCode.REVOKED, display_name(cert), role, detail, entry)
    return None
