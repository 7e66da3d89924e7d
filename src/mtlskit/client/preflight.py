"""Preflight of the client's own certificate against what the server asks for (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mtlskit.client.tlswire import name_text
from mtlskit.pki.describe import eku_name
from mtlskit.trust.reasons import display_name

__all__ = ["Preflight", "preflight"]


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the client's certificate looks like from the server's side, before it says so.

    Attributes:
        certificate: the client leaf's subject.
        chain: subjects of what the client sends, leaf first.
        valid_now: every certificate sent is within its validity.
        not_after: the leaf's notAfter (ISO 8601).
        client_auth: the leaf's EKU allows clientAuth (no EKU extension allows it too).
        eku: the leaf's extended key usages.
        intermediate_included: the leaf's issuer is among the certificates sent (or the
            leaf is self-signed).
        chains_to_accepted_ca: a certificate sent names one of the server's acceptable CAs
            as issuer or subject; None when the server listed no names.
        accepted_via: the acceptable CA name it matched.
        problems: each failed check, one line each, most likely cause first.
    """

    certificate: str
    chain: tuple[str, ...]
    valid_now: bool
    not_after: str
    client_auth: bool
    eku: tuple[str, ...]
    intermediate_included: bool
    chains_to_accepted_ca: bool | None
    accepted_via: str | None
    problems: tuple[str, ...]

    @property
    def likely_cause(self) -> str:
        """The first problem, or an empty string."""
        return self.problems[0] if self.problems else ""

    def to_json(self) -> dict[str, Any]:
        """Stable keys for --json."""
        return {
            "certificate": self.certificate,
            "chain": list(self.chain),
            "valid_now": self.valid_now,
            "not_after": self.not_after,
            "client_auth": self.client_auth,
            "eku": list(self.eku),
            "intermediate_included": self.intermediate_included,
            "chains_to_accepted_ca": self.chains_to_accepted_ca,
            "accepted_via": self.accepted_via,
            "problems": list(self.problems),
        }


def _eku(cert: x509.Certificate) -> tuple[str, ...] | None:
    try:
        value = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return tuple(eku_name(oid) for oid in value)


def _names(cert: x509.Certificate) -> list[x509.Name]:
    return [cert.issuer, cert.subject]


def preflight(
    chain: Sequence[x509.Certificate],
    accepted: Sequence[bytes] | None,
    *,
    now: datetime,
) -> Preflight:
    """Check the client chain (leaf first) against the server's acceptable CA names.

    Args:
        chain: what the client will send, leaf first.
        accepted: DER names from the CertificateRequest; None when unknown, empty when the
            server listed none.
        now: the time to check validity at.
    """
    leaf = chain[0]
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    problems: list[str] = []
    expired = [c for c in chain if not c.not_valid_before_utc <= now <= c.not_valid_after_utc]
    for cert in expired:
        when = cert.not_valid_after_utc.isoformat()
        verb = "expired on" if now > cert.not_valid_after_utc else "is not valid before"
        if now <= cert.not_valid_after_utc:
            when = cert.not_valid_before_utc.isoformat()
        problems.append(f"the certificate {display_name(cert)} {verb} {when}")
    eku = _eku(leaf)
    client_auth = eku is None or "clientAuth" in eku or "anyExtendedKeyUsage" in eku
    if not client_auth:
        problems.append(
            f"the leaf's extendedKeyUsage is {', '.join(eku or ())}, without clientAuth"
        )
    subjects = {c.subject.public_bytes() for c in chain}
    included = leaf.issuer == leaf.subject or leaf.issuer.public_bytes() in subjects
    matched: str | None = None
    chains: bool | None = None
    if accepted:
        texts = {name_text(der) for der in accepted}
        raw = set(accepted)
        for cert in chain:
            for name in _names(cert):
                if name.public_bytes() in raw or name.rfc4514_string() in texts:
                    matched = display_name(name)
                    break
            if matched:
                break
        chains = matched is not None
        if not chains:
            problems.insert(
                0,
                f"the issuer {display_name(leaf.issuer)} is not among the CA names the "
                f"server accepts ({'; '.join(sorted(texts))})",
            )
    if not included:
        # First: without its intermediate the chain cannot reach any CA the server names,
        # so this is the cause to fix before judging the names.
        problems.insert(
            0,
            f"the issuer {display_name(leaf.issuer)} was not sent with the leaf; unless it "
            "is a root the server holds, send leaf + intermediate (NAME.chain.pem)",
        )
    return Preflight(
        certificate=display_name(leaf),
        chain=tuple(display_name(c) for c in chain),
        valid_now=not expired,
        not_after=leaf.not_valid_after_utc.isoformat(),
        client_auth=client_auth,
        eku=eku or (),
        intermediate_included=included,
        chains_to_accepted_ca=chains,
        accepted_via=matched,
        problems=tuple(problems),
    )
