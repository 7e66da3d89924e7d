"""Log lines for people (text) or machines (JSON): events and one access line per request."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

__all__ = ["LEVELS", "EventLog"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class EventLog:
    """Writes one line per event; never a private key, never another client's identity.

    Args:
        stream: where lines go (stderr by default).
        fmt: "text" or "json".
        level: the lowest level written.
    """

    def __init__(self, stream: TextIO | None = None, fmt: str = "text", level: str = "info"):
        self.stream = stream or sys.stderr
        self.json = fmt == "json"
        self.level = LEVELS[level]

    def event(self, event: str, message: str, *, level: str = "info", **fields: Any) -> None:
        """One line about something that happened (start, reload, handshake failure...)."""
        if LEVELS[level] < self.level:
            return
        now = time.time()
        if self.json:
            record = {"ts": _stamp(now), "level": level, "event": event, "msg": message, **fields}
            line = json.dumps(record, separators=(",", ":"), default=str)
        else:
            extra = " ".join(f"{k}={_quote(v)}" for k, v in fields.items() if v is not None)
            line = f"{_stamp(now)} {level.upper():<7} {event}: {message}" + (
                f" {extra}" if extra else ""
            )
        self._write(line)

    def access(self, fields: dict[str, Any]) -> None:
        """One access line: client, identity, decision, request, status, bytes, duration."""
        now = time.time()
        if self.json:
            line = json.dumps(
                {"ts": _stamp(now), "event": "access", **fields}, separators=(",", ":")
            )
        else:
            line = (
                f"{_stamp(now)} ACCESS  {fields['client']} {_quote(fields['subject'])} "
                f"id={fields['id'] or '-'} {fields['decision']} "
                f'"{fields["method"]} {fields["target"]}" {fields["status"]} '
                f"{fields['bytes']}B {fields['ms']:.1f}ms proto={fields.get('protocol', '-')}"
                + (f" route={_quote(fields['route'])}" if fields.get("route", "-") != "-" else "")
                + (f" note={_quote(fields['note'])}" if fields.get("note") else "")
            )
        self._write(line)

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken log stream must not stop traffic
            pass


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text)
    return text
