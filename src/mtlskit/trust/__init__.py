"""Trust: verify any certificate chain for a purpose and explain every failure (pure)."""

from __future__ import annotations

from mtlskit.trust.chain import VerificationResult, verify_chain
from mtlskit.trust.checks import check_path, check_strength, client_strength
from mtlskit.trust.diagnose import split_trust
from mtlskit.trust.reasons import REASONS, STEPS, Finding, Purpose, Reason, ReasonCode, explain
from mtlskit.trust.revocation import RevocationList, load_crl_set

__all__ = [
    "REASONS",
    "STEPS",
    "Finding",
    "Purpose",
    "Reason",
    "ReasonCode",
    "RevocationList",
    "VerificationResult",
    "check_path",
    "check_strength",
    "client_strength",
    "explain",
    "load_crl_set",
    "split_trust",
    "verify_chain",
]
