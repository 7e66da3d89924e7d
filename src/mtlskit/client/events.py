"""Record handshake messages and alerts through OpenSSL's message callback (one place only).

CPython exposes OpenSSL's SSL_CTX_set_msg_callback as the private `SSLContext._msg_callback`
(used by CPython's own test suite, present from 3.8 on). It sees every handshake message
after decryption, so the TLS 1.3 CertificateRequest (with its CA names) and the server's
Certificate message (the chain exactly as sent) are visible even though the `ssl` API
exposes neither before Python 3.13. If the attribute is missing or refuses a callback,
`Recorder.available` is False and callers fall back (see probe.py).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from mtlskit.client.tlswire import (
    ALERTS,
    MESSAGES,
    WireError,
    certificate_list,
    certificate_request,
)
from mtlskit.client.trace import Event, Sender

__all__ = ["Recorder"]

_HANDSHAKE, _ALERT = 22, 21  # TLS content types (RFC 8446 §5.1)
_KEEP = {"Certificate", "CertificateRequest"}  # messages whose bytes we decode later


@dataclass
class Recorder:
    """Collects events from one connection; attach to a context before wrapping a socket.

    Attributes:
        events: handshake messages and alerts in order.
        raw: the bytes of the Certificate / CertificateRequest messages, by (sender, name).
        versions: the TLS version reported with each kept message, by (sender, name).
        available: False when the ssl module offered no message callback.
        errors: what went wrong inside the callback (never raised into OpenSSL).
    """

    events: list[Event] = field(default_factory=list)
    raw: dict[tuple[str, str], bytes] = field(default_factory=dict)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    available: bool = False
    errors: list[str] = field(default_factory=list)

    def attach(self, ctx: ssl.SSLContext) -> None:
        """Install the callback on `ctx` (one recorder per context and connection)."""
        try:
            ctx._msg_callback = self._callback  # type: ignore[attr-defined]
        except (AttributeError, TypeError, NotImplementedError) as exc:
            self.errors.append(f"no TLS message callback in this Python ({exc})")
            return
        self.available = True

    def _callback(
        self,
        conn: Any,
        direction: str,
        version: Any,
        content_type: Any,
        msg_type: Any,
        data: bytes,
    ) -> None:
        try:
            self._record(direction, version, int(content_type), int(msg_type), bytes(data))
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            # A message we cannot read (WireError is a ValueError) is noted, never raised:
            # an exception in OpenSSL's message callback would abort the handshake.
            self.errors.append(f"callback: {exc!r}")

    def _record(
        self, direction: str, version: Any, content_type: int, msg_type: int, data: bytes
    ) -> None:
        sender: Sender = "client" if direction == "write" else "server"
        vname = getattr(version, "name", str(version)).replace("_", ".")
        if content_type == _ALERT and len(data) >= 2:
            self.events.append(
                Event(sender, "alert", ALERTS.get(data[1], f"alert_{data[1]}"), vname, data[1])
            )
        elif content_type == _HANDSHAKE:
            name = MESSAGES.get(msg_type, f"handshake_{msg_type}")
            count = None
            if name in _KEEP:
                self.raw.setdefault((sender, name), data)
                self.versions.setdefault((sender, name), vname)
                count = _count(name, data, vname == "TLSv1.3")
            self.events.append(Event(sender, "handshake", name, vname, 0, count))

    def message(self, sender: str, name: str) -> tuple[bytes, bool] | None:
        """The first recorded message of that kind and whether it was TLS 1.3 framing."""
        data = self.raw.get((sender, name))
        if data is None:
            return None
        return data, self.versions.get((sender, name)) == "TLSv1.3"


def _count(name: str, data: bytes, tls13: bool) -> int | None:
    try:
        if name == "Certificate":
            return len(certificate_list(data, tls13=tls13))
        return len(certificate_request(data, tls13=tls13))
    except WireError:
        return None
