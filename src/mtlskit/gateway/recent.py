"""The recent clients and refusals of one worker: bounded, in memory, for the status page."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mtlskit.identity import PeerIdentity

__all__ = ["DENIED_FIX", "DENIED_STEP", "ClientSeen", "Recent", "RefusalSeen"]

# Subjects and SANs are chosen by the client: keep what one entry holds bounded (the fix
# texts of the handshake codes are shorter than this).
_MAX_TEXT: Final = 1024

DENIED_STEP: Final = "after the handshake: the gateway's allow rules (policy)"
DENIED_FIX: Final = (
    "add an allow rule for this identity ([policy] or the route's allow_*), or use a "
    "certificate the rules admit"
)


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "\u2026"


@dataclass(slots=True)
class ClientSeen:
    """One verified client certificate, as the gateway saw it lately.

    Attributes:
        subject: the certificate's subject (RFC 4514, clipped).
        spiffe_id: its SPIFFE ID, or "".
        not_after: its notAfter (a UNIX timestamp).
        first_seen: when its first connection of this record was verified (UNIX time).
        last_seen: its last connection or request (UNIX time).
        connections: verified connections.
        requests: responses answered on them (HTTP mode).
    """

    subject: str
    spiffe_id: str
    not_after: float
    first_seen: float
    last_seen: float
    connections: int = 0
    requests: int = 0


@dataclass(frozen=True, slots=True)
class RefusalSeen:
    """One refused client: when, the reason code, the seed step, the certificate, the fix."""

    at: float
    code: str
    step: str
    subject: str
    fix: str
    client: str


class Recent:
    """The last `clients` client certificates (by fingerprint) and `refusals` refusals.

    A connection costs one ordered-dict update; a request one dict lookup and two stores
    (no formatting: the status page renders the record when it is asked for).
    """

    def __init__(self, clients: int = 50, refusals: int = 50) -> None:
        self._limit = clients
        self._clients: OrderedDict[str, ClientSeen] = OrderedDict()
        self._refusals: deque[RefusalSeen] = deque(maxlen=refusals)

    def connected(self, identity: PeerIdentity) -> None:
        """A verified connection of this client (called once per connection)."""
        now = time.time()
        key = identity.fingerprint_sha256
        seen = self._clients.get(key)
        if seen is None:
            seen = ClientSeen(
                _clip(identity.subject),
                _clip(identity.spiffe_id),
                identity.not_after.timestamp(),
                now,
                now,
            )
            self._clients[key] = seen
            if len(self._clients) > self._limit:
                self._clients.popitem(last=False)  # the least recently connected goes
        else:
            self._clients.move_to_end(key)
            seen.last_seen = now
        seen.connections += 1

    def request(self, identity: PeerIdentity | None) -> None:
        """One response to this client, if verified (per request: keep it cheap)."""
        if identity is None:
            return
        seen = self._clients.get(identity.fingerprint_sha256)
        if seen is not None:
            seen.requests += 1
            seen.last_seen = time.time()

    def refused(self, code: str, step: str, subject: str | None, fix: str, client: str) -> None:
        """A refused client (a failed handshake or a policy denial)."""
        entry = RefusalSeen(
            time.time(), _clip(code), _clip(step), _clip(subject), _clip(fix), _clip(client)
        )
        self._refusals.append(entry)

    def denied(self, code: str, identity: PeerIdentity | None, presented: str, client: str) -> None:
        """A client the allow rules refused (its identity, or the unverified subject)."""
        subject = identity.subject if identity is not None else presented
        self.refused(code, DENIED_STEP, subject, DENIED_FIX, client)

    def clients(self) -> list[ClientSeen]:
        """The recent clients, the most recently connected first."""
        return list(reversed(self._clients.values()))

    def refusals(self) -> list[RefusalSeen]:
        """The recent refusals, the newest first."""
        return list(reversed(self._refusals))
