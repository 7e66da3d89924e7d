"""The one seam onto cryptography.x509.verification (marked unstable upstream)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, Subject, VerificationError

from mtlskit.trust.reasons import Purpose

__all__ = ["Validation", "server_subject", "validate"]

# "... (encountered processing <Certificate(subject=<Name(CN=x)>, ...)>)": the object
# repr is noise for people; the diagnosis names the certificate itself.
_NOISE = re.compile(r"\s*\(encountered processing <Certificate.*\)>\)\s*$")


@dataclass(frozen=True, slots=True)
class Validation:
    """What the upstream validator decided.

    Attributes:
        chain: the verified path, leaf first and trust anchor last; None when rejected.
        error: the validator's message without its prefix, "" when valid.
    """

    chain: tuple[x509.Certificate, ...] | None
    error: str = ""

    @property
    def valid(self) -> bool:
        """True when the validator built and accepted a path."""
        return self.chain is not None


def server_subject(host: str) -> Subject:
    """The name a server certificate must match: an IP address or a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host.rstrip(".").lower())


def _clean(exc: BaseException) -> str:
    text = str(exc).removeprefix("validation failed: ")
    return _NOISE.sub("", text) or type(exc).__name__


def validate(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    purpose: Purpose,
    now: datetime,
    host: str | None,
    max_depth: int | None = None,
) -> Validation:
    """Run cryptography's path validation (WebPKI profile) and never raise.

    Args:
        leaf: the peer's certificate.
        intermediates: untrusted certificates that may help build the path.
        anchors: trust anchors; must not be empty.
        purpose: "client" (ClientVerifier, EKU clientAuth) or "server" (ServerVerifier,
            EKU serverAuth).
        now: validation time (timezone-aware).
        host: for "server", the name the leaf must match.
        max_depth: the most intermediates the path may hold (PolicyBuilder.max_chain_depth).
    """
    if not anchors:
        return Validation(None, "no trust anchors")
    builder = PolicyBuilder().store(Store(list(anchors))).time(now)
    if max_depth is not None:
        builder = builder.max_chain_depth(max_depth)
    try:
        if purpose == "client":
            verified = builder.build_client_verifier().verify(leaf, list(intermediates))
            return Validation(tuple(verified.chain))
        if host is None:
            return Validation(None, "a server certificate is checked against a host name")
        chain = builder.build_server_verifier(server_subject(host)).verify(
            leaf, list(intermediates)
        )
        return Validation(tuple(chain))
    # ValueError/TypeError: inputs the Rust side refuses before it builds (bad host, ...).
    except (VerificationError, ValueError, TypeError) as exc:
        return Validation(None, _clean(exc))
