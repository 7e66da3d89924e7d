"""Who the client is and whether it may pass: the first step after a handshake (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mtlskit.errors import MtlsKitError
from mtlskit.identity import IdentityHeaderError, PeerIdentity
from mtlskit.policy import Decision

__all__ = ["Admission", "AdmissionState", "admit"]


class AdmissionState(Protocol):
    """What admit() needs of the gateway's state (gateway.state.GatewayState has it)."""

    def identity_of(self, leaf_der: bytes, chain: tuple[bytes, ...]) -> PeerIdentity:
        """The client's identity (cached)."""

    def decide(self, identity: PeerIdentity, now: datetime) -> Decision:
        """Validity, revocation, then the allow rules."""

    def identity_block(self, identity: PeerIdentity) -> bytes:
        """The identity header lines for this client."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict for one verified connection.

    Attributes:
        identity: the client, or None when its certificate cannot be read.
        decision: allowed, or refused with the rule and the reason.
        header_block: the identity header lines for each request (empty when refused or
            not asked for).
    """

    identity: PeerIdentity | None
    decision: Decision
    header_block: bytes


def admit(
    state: AdmissionState,
    leaf_der: bytes,
    chain_der: tuple[bytes, ...],
    now: datetime,
    *,
    headers: bool = True,
) -> Admission:
    """Identity, decision and identity header block for a client chain as it was sent.

    Args:
        state: the gateway state the connection was accepted with.
        leaf_der: the client's leaf (DER), verified by OpenSSL in the handshake.
        chain_der: the intermediates the client sent after it.
        now: the time to decide at.
        headers: build the identity header block (HTTP mode).
    """
    try:
        identity = state.identity_of(leaf_der, chain_der)
    except (ValueError, MtlsKitError) as exc:
        # OpenSSL accepted the certificate but cryptography cannot read it (it is stricter,
        # e.g. about serials and extensions): refuse rather than guess.
        reason = f"the client certificate cannot be read: {exc}"
        return Admission(None, Decision(False, "malformed", reason), b"")
    decision = state.decide(identity, now)
    if not decision.allowed or not headers:
        return Admission(identity, decision, b"")
    try:
        block = state.identity_block(identity)
    except IdentityHeaderError as exc:
        return Admission(identity, Decision(False, "unforwardable_identity", exc.message), b"")
    return Admission(identity, decision, block)
