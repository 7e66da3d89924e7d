"""Client certificates' remaining lifetime: a histogram per connection, one warning each."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from mtlskit.durations import format_duration

if TYPE_CHECKING:
    from mtlskit.gateway.logs import EventLog
    from mtlskit.gateway.metrics import Metrics
    from mtlskit.identity import PeerIdentity

__all__ = ["WARNED_LIMIT", "expiry_message", "observe_client"]

# Certificates already warned about, per worker. A bound keeps a flood of distinct
# short-lived certificates from growing memory; past it the set starts again, so the
# worst case is a repeated warning, never a missing one.
WARNED_LIMIT: Final = 10_000


@dataclass(slots=True)
class _Warned:
    fingerprints: set[str] = field(default_factory=set)


# One set per Metrics (one per gateway: tests run several in one process); it goes with it.
_warned: weakref.WeakKeyDictionary[Metrics, _Warned] = weakref.WeakKeyDictionary()


def expiry_message(identity: PeerIdentity, left: timedelta) -> str:
    """The warning's sentence: whose certificate expires when, and what to do."""
    when = f"{identity.not_after:%Y-%m-%d %H:%M}Z"
    return (
        f"client certificate {identity.subject} (serial {identity.serial}) expires in "
        f"{format_duration(max(left, timedelta(0)))}, at {when}: renew it before then"
    )


def observe_client(
    metrics: Metrics,
    log: EventLog,
    identity: PeerIdentity,
    now: datetime,
    warning: timedelta,
    client: str,
) -> None:
    """Record a verified client's remaining lifetime; warn once if it expires soon.

    Call once per verified connection, after admission. The identity is the one admission
    parsed (PeerIdentity carries notAfter), so nothing is parsed again here; the only state
    is the set of certificates (by SHA-256 fingerprint) already warned about.

    Args:
        metrics: the gateway's handles (mtlskit_client_certificate_remaining_seconds).
        log: where the `client_expiring` warning goes.
        identity: the verified client.
        now: the time of the handshake (aware, UTC).
        warning: `[limits] client_expiry_warning`; 0 turns the warning off.
        client: the peer's address as the other log lines print it.
    """
    left = identity.not_after - now
    metrics.client_cert_remaining.observe(max(left.total_seconds(), 0.0))
    if left > warning or warning <= timedelta(0):
        return
    warned = _warned.get(metrics)
    if warned is None:
        warned = _warned[metrics] = _Warned()
    if identity.fingerprint_sha256 in warned.fingerprints:
        return
    if len(warned.fingerprints) >= WARNED_LIMIT:
        warned.fingerprints.clear()
    warned.fingerprints.add(identity.fingerprint_sha256)
    log.event(
        "client_expiring",
        expiry_message(identity, left),
        level="warning",
        client=client,
        subject=identity.subject,
        serial=identity.serial,
        days_left=round(max(left.total_seconds(), 0.0) / 86400, 1),
        not_after=f"{identity.not_after:%Y-%m-%dT%H:%M:%SZ}",
        fix=(
            "renew the client certificate: 'mtlskit renew --cert F --key F --ca-url URL', "
            "or issue a new one ('mtlskit ca issue client NAME ...') and install it"
        ),
    )
