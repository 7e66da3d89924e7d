"""Trust: verify any certificate chain for a purpose and explain every failure (pure)."""

from __future__ import annotations

from mtlskit.trust.chain import VerificationResult, verify_chain
from mtlskit.trust.diagnose import split_trust
from mtlskit.trust.reasons import REASONS, STEPS, Purpose, Reason, ReasonCode
from mtlskit.trust.revocation import RevocationList, load_crl_set

__all__ = [
    "REASONS",
    "STEPS",
    "Purpose",
    "Reason",
    "ReasonCode",
    "RevocationList",
    "VerificationResult",
    "load_crl_set",
    "split_trust",
    "verify_chain",
]
