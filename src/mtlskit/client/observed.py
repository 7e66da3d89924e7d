"""What one connection was seen to do: recorded TLS events and plain facts (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["Event", "Handshake", "Observation", "Seen", "Sender"]

Sender = Literal["client", "server"]


@dataclass(frozen=True, slots=True)
class Event:
    """One handshake message or alert as the TLS library reported it.

    Attributes:
        sender: who sent it.
        kind: "handshake" or "alert".
        name: the message type ("ClientHello") or alert description ("unknown_ca").
        version: the TLS version the library reported with it ("TLSv1.3").
        code: the alert number (0 for handshake messages).
        count: certificates in a Certificate message, CA names in a CertificateRequest.
    """

    sender: Sender
    kind: Literal["handshake", "alert"]
    name: str
    version: str = ""
    code: int = 0
    count: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain dict (the recorded-event format of the tests and of --json)."""
        out: dict[str, Any] = {"sender": self.sender, "kind": self.kind, "name": self.name}
        out["version"] = self.version
        if self.kind == "alert":
            out["code"] = self.code
        if self.count is not None:
            out["count"] = self.count
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """Inverse of to_json."""
        return cls(
            data["sender"],
            data["kind"],
            data["name"],
            data.get("version", ""),
            int(data.get("code", 0)),
            data.get("count"),
        )


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the TCP connect, the TLS handshake and the first read came to.

    Attributes:
        connect: "ok", "refused", "timeout" (TCP) or "unreachable".
        handshake_error: OpenSSL's reason for a failed handshake ("WRONG_VERSION_NUMBER"),
            "EOF" when the peer hung up, "" when the handshake completed.
        handshake_timeout: the handshake did not finish in time.
        established: the client finished its side of the handshake.
        after: what the first read after the handshake found: "accepted" (session ticket or
            data), "quiet" (nothing before the deadline), "alert", "closed" or "not_read".
        tls_version, cipher: as negotiated.
    """

    connect: str = "ok"
    handshake_error: str = ""
    handshake_timeout: bool = False
    established: bool = False
    after: str = "not_read"
    tls_version: str = ""
    cipher: str = ""


@dataclass(frozen=True, slots=True)
class Observation(Handshake):
    """What the network code saw besides the events (all plain values).

    The Handshake fields come first, then:

    Attributes:
        servername: the name asked for (SNI) and checked.
        server_reason: the trust module's reason code for the server chain ("" unchecked).
        server_explanation: its explanation.
        server_fix: its fix, for the certificate at fault.
        chain_complete: the server sent every certificate up to a root we trust.
        server_chain: subjects of the server's certificates as sent.
        client_chain: subjects of the client certificates we offered.
        preflight_cause: the most likely local cause if the server rejects the client.
        preflight_fix: the fix for the certificate the preflight found at fault ("" when
            it found none, or only a problem of CA names).
        client_fine: when the preflight found the client's certificate sound, that
            finding in words ("the client certificate CN=a is valid until ...").
        http_status: the HTTP status of a request (0 for none).
        http_reason: the body line of a 403 ("403 Forbidden: <reason>").
    """

    servername: str = ""
    server_reason: str = ""
    server_explanation: str = ""
    server_fix: str = ""
    chain_complete: bool | None = None
    server_chain: tuple[str, ...] = ()
    client_chain: tuple[str, ...] = ()
    preflight_cause: str = ""
    preflight_fix: str = ""
    client_fine: str = ""
    http_status: int = 0
    http_reason: str = ""

    @classmethod
    def of(cls, facts: Handshake, **more: Any) -> Observation:
        """The Handshake facts a connection gathered, with what probe or request add."""
        seen = {f.name: getattr(facts, f.name) for f in fields(Handshake)}
        return cls(**seen, **more)


class Seen:
    """Questions about a recorded event list."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = list(events)

    def first(self, sender: Sender, name: str) -> Event | None:
        """The first handshake message `name` from `sender`, if any."""
        return next(
            (
                e
                for e in self.events
                if e.sender == sender and e.kind == "handshake" and e.name == name
            ),
            None,
        )

    def has(self, sender: Sender, name: str) -> bool:
        """Whether `sender` sent a handshake message `name`."""
        return self.first(sender, name) is not None

    def alert(self, sender: Sender) -> Event | None:
        """The first real alert (code other than 0) from `sender`, if any."""
        return next(
            (e for e in self.events if e.sender == sender and e.kind == "alert" and e.code != 0),
            None,
        )

    def index(self, sender: Sender, name: str) -> int:
        """Where `sender`'s first handshake message `name` stands, -1 when absent."""
        for i, e in enumerate(self.events):
            if e.sender == sender and e.kind == "handshake" and e.name == name:
                return i
        return -1

    def server_spoke(self) -> bool:
        """True when any server message or alert was recorded."""
        return any(e.sender == "server" for e in self.events)

    def client_cert_count(self) -> int:
        """Certificates in the client's Certificate message (0 when empty or not sent)."""
        e = self.first("client", "Certificate")
        return e.count or 0 if e is not None else 0
