"""When an ACME certificate is due, whether it covers the names, how long to back off (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from cryptography import x509

__all__ = ["RENEW_AT", "backoff", "covers", "renew_due", "renewal_time"]

RENEW_AT: Final = 2 / 3  # of the lifetime: Let's Encrypt's advice for 90-day certificates


def renewal_time(cert: x509.Certificate, fraction: float = RENEW_AT) -> dt.datetime:
    """When to renew: not_before + fraction of the lifetime (default 2/3)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * fraction


def renew_due(cert: x509.Certificate, now: dt.datetime, fraction: float = RENEW_AT) -> bool:
    """True once now has reached renewal_time(cert, fraction)."""
    return now >= renewal_time(cert, fraction)


def backoff(
    attempt: int,
    initial: dt.timedelta = dt.timedelta(minutes=1),
    maximum: dt.timedelta = dt.timedelta(hours=1),
) -> dt.timedelta:
    """The wait after the attempt-th failure in a row (1, 2, ...): doubling, capped."""
    return min(initial * (1 << max(attempt - 1, 0)), maximum)


def covers(cert: x509.Certificate, domains: Sequence[str]) -> bool:
    """True when every domain is among the certificate's DNS SANs (case-insensitive)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    return all(d.lower() in names for d in domains)
