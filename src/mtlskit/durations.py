"""Durations written the way people write them ("90d", "12h", "30s") and back."""

from __future__ import annotations

import re
from datetime import timedelta

from mtlskit.errors import ConfigError

__all__ = ["format_duration", "parse_duration"]

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_PART = re.compile(r"(\d+)(ms|[smhdwy])")


def parse_duration(text: str, *, what: str = "duration", allow_zero: bool = False) -> timedelta:
    """Parse "90d", "1y", "12h30m" into a timedelta.

    Args:
        text: the duration as written; units ms, s, m, h, d, w, y (365 days).
        what: the flag or key it came from, named in the error.
        allow_zero: accept "0s" (a zero duration).

    Raises:
        ConfigError: the text is not a duration, or it is zero or negative.
    """
    raw = text.strip().lower()
    hint = f"write {what} as a number and a unit, e.g. 90d, 12h, 30m, 1y"
    if raw.startswith("-"):
        raise ConfigError(f"{what} {text!r} is negative", hint)
    pos = 0
    total = timedelta(0)
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ConfigError(f"{what} {text!r} is not a duration", hint)
    if total <= timedelta(0) and not allow_zero:
        raise ConfigError(f"{what} {text!r} is zero", "give a positive duration, e.g. 90d")
    return total


def format_duration(delta: timedelta) -> str:
    """Say a timedelta the short way people read it: "89d 23h", "5h 2m", "40s"."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days >= 3650:
        return f"{days // 365}y"
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"
