"""Preflight of the client's own certificate against what the server asks for (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mtlskit.client.tlswire import name_text
from mtlskit.pki.describe import eku_name
from mtlskit.trust.checks import check_path
from mtlskit.trust.reasons import ReasonCode, display_name, explain

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
        code: the trust reason code of the first problem of the certificates themselves
            (trust.check_path, the checks `cert verify` makes), "ok" when none.
        at_fault: the subject of the certificate that code concerns ("" when ok).
        fix: what to do about it ("" when ok).
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
    code: str = "ok"
    at_fault: str = ""
    fix: str = ""

    @property
    def clean_bill(self) -> str:
        """The preflight's clean bill in words, or "" when it found a problem."""
        if self.problems:
            return ""
        named = " under a CA the server names" if self.chains_to_accepted_ca else ""
        return (
            f"the client certificate {self.certificate} checks out (valid until "
            f"{self.not_after}, sent with its intermediate{named}, passing the checks of "
            "'mtlskit cert verify')"
        )

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
            "code": self.code,
            "at_fault": self.at_fault,
            "fix": self.fix,
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
    # The same per-certificate checks as `cert verify` (one implementation): dates, CA
    # flags, purpose on every certificate, OpenSSL's security level. The root is not
    # sent as a rule, so the path is complete only when the client sends a self-signed top.
    top = chain[-1]
    findings = check_path(
        chain, "client", now, complete=len(chain) > 1 and top.issuer == top.subject
    )
    problems = [explain(f, "client")[0] for f in findings]
    dated = {ReasonCode.EXPIRED, ReasonCode.NOT_YET_VALID}
    first = findings[0] if findings else None
    eku = _eku(leaf)
    client_auth = eku is None or "clientAuth" in eku or "anyExtendedKeyUsage" in eku
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
        valid_now=not any(f.code in dated for f in findings),
        not_after=leaf.not_valid_after_utc.isoformat(),
        client_auth=client_auth,
        eku=eku or (),
        intermediate_included=included,
        chains_to_accepted_ca=chains,
        accepted_via=matched,
        problems=tuple(problems),
        code=first.code.value if first else "ok",
        at_fault=first.subject if first else "",
        fix=explain(first, "client")[1] if first else "",
    )
