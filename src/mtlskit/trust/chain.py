"""verify_chain(): validate a peer's chain for a purpose and explain the answer in seed terms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mtlskit.trust._ext import extension
from mtlskit.trust._verifier import validate
from mtlskit.trust.checks import check_path, role_of
from mtlskit.trust.diagnose import diagnose
from mtlskit.trust.reasons import (
    STEPS,
    Finding,
    Purpose,
    ReasonCode,
    display_name,
    explain,
)
from mtlskit.trust.revocation import RevocationList, check_revocation

__all__ = ["VerificationResult", "verify_chain"]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The answer to "may this peer's chain be trusted for this purpose, and if not, why".

    Attributes:
        valid: True only when the upstream validator accepted the path and no CRL objects.
        code: the reason code ("ok" when valid).
        subject: the subject of the certificate the answer concerns.
        path: subjects from the leaf up: the verified path, or as far as the chain went.
        explanation: one line naming the certificate and the seed step it breaks.
        fix: one line saying what to do.
        step: the seed step checked ("step 7: the server validates the client's certificate").
        purpose: "client" or "server".
        details: machine-readable extras (revocation reason and date, missing intermediate).
        notes: what was not checked (no CRL for an issuer, no --host).
        chain: the verified certificates, leaf first; empty when invalid.
    """

    valid: bool
    code: ReasonCode
    subject: str
    path: tuple[str, ...]
    explanation: str
    fix: str
    step: str
    purpose: Purpose
    details: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    chain: tuple[x509.Certificate, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The stable JSON object of `cert verify --json`."""
        return {
            "valid": self.valid,
            "code": self.code.value,
            "subject": self.subject,
            "path": list(self.path),
            "explanation": self.explanation,
            "fix": self.fix,
            "step": self.step,
            "purpose": self.purpose,
            "details": dict(self.details),
            "notes": list(self.notes),
        }


def _result(
    finding: Finding,
    purpose: Purpose,
    path: Sequence[x509.Certificate],
    notes: tuple[str, ...],
    chain: tuple[x509.Certificate, ...] = (),
) -> VerificationResult:
    text, fix = explain(finding, purpose)
    step = STEPS[purpose]
    verdict = "passes" if finding.code is ReasonCode.OK else "breaks"
    explanation = f"{text}; this {verdict} {step}"
    return VerificationResult(
        valid=finding.code is ReasonCode.OK,
        code=finding.code,
        subject=finding.subject,
        path=tuple(display_name(c) for c in path),
        explanation=explanation,
        fix=fix,
        step=step,
        purpose=purpose,
        details=dict(finding.details),
        notes=notes,
        chain=chain,
    )


def _host_for(leaf: x509.Certificate) -> str | None:
    """Without --host, a server leaf is checked against one of its own names."""
    sans = extension(leaf, x509.SubjectAlternativeName)
    if sans is None:
        return None
    for ip in sans.get_values_for_type(x509.IPAddress):
        return str(ip)
    for dns in sans.get_values_for_type(x509.DNSName):
        return "mtlskit-any" + dns[1:] if dns.startswith("*.") else dns
    return None


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    purpose: Purpose,
    now: datetime,
    host: str | None = None,
    hints: Sequence[x509.Certificate] = (),
    crls: Sequence[RevocationList] = (),
    max_depth: int | None = None,
) -> VerificationResult:
    """Verify a peer's chain for a purpose and explain the result.

    Path validation is cryptography's (WebPKI profile); this adds the checks OpenSSL makes
    that it does not (trust.checks.check_path: key usage and EKU on every certificate, key
    sizes and signature hashes of OpenSSL's default security level), CRL checks and, when
    the chain is rejected, pure checks that name the reason and the certificate.

    Args:
        leaf: the peer's certificate.
        intermediates: what the peer sent after its leaf (untrusted).
        anchors: trusted certificates (roots); any certificate here is trusted as is.
        purpose: "client" (we are a server checking a client: seed step 7) or "server"
            (we are a client checking a server: seed step 5).
        now: the validation time (timezone-aware; naive means UTC).
        host: for "server", the name the leaf must match; None checks the chain only.
        hints: known intermediates of the anchors that the peer should send; never used
            to build a valid path, only to report missing_intermediate.
        crls: loaded CRLs (load_crl_set); each covers the certificates of its issuer.
        max_depth: the most intermediates a path may hold.

    Returns:
        A VerificationResult; valid only if the validator accepted the path and no
        check_path or CRL finding objects.
    """
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    notes: tuple[str, ...] = ()
    name = host
    if purpose == "server" and host is None:
        name = _host_for(leaf)
        if name is not None:
            notes = ("no host name given: the server certificate's names were not checked",)
    outcome = validate(
        leaf, intermediates, anchors, purpose=purpose, now=now, host=name, max_depth=max_depth
    )
    if outcome.chain is None:
        finding, walked = diagnose(
            leaf,
            intermediates,
            anchors,
            purpose=purpose,
            now=now,
            host=host,
            hints=hints,
            max_depth=max_depth,
            validator_error=outcome.error,
        )
        return _result(finding, purpose, walked.path, notes)
    chain = outcome.chain
    # cryptography's validator is narrower than OpenSSL in places (RSA-1024 and P-192
    # leaves, a leaf without digitalSignature): what OpenSSL would refuse is not ok.
    stricter = check_path(chain, purpose, now, complete=True)
    if stricter:
        return _result(stricter[0], purpose, chain, notes)
    roles = [role_of(i, len(chain), purpose, True) for i in range(len(chain))]
    revoked, crl_notes = check_revocation(chain, crls, now, roles)
    notes += crl_notes
    if revoked is not None:
        return _result(revoked, purpose, chain, notes)
    via = " via " + " -> ".join(display_name(c) for c in chain[1:]) if len(chain) > 1 else ""
    ok = Finding(ReasonCode.OK, display_name(leaf), roles[0], via)
    return _result(ok, purpose, chain, notes, chain)
