"""How far a handshake got before the client left: was our CertificateRequest out, and answered?

A browser opening speculative connections reads the server's flight and closes while its
user picks a certificate (Chromium: two per new profile). Telling that apart from a client
that vanished before our flight needs to know whether the CertificateRequest was written,
and whether any client Certificate arrived. OpenSSL's info callback reports every state
change of the handshake (SSL_CB_LOOP, "an impending state change": the state named is the
one just done), for TLS 1.2 and 1.3 alike, whatever the calls that drove it. Reading the
state after a failure does not work: it reads "error" after a reset, and one
SSL_do_handshake call can write our flight and meet the client's EOF.
"""

from __future__ import annotations

from typing import Final, Protocol

from OpenSSL import SSL

__all__ = ["ANSWERED", "REQUESTED", "FlightRecord", "after_flight", "watch_flight"]

# SSL_state_string_long() of the two states that matter (the same names in TLS 1.2 and 1.3).
REQUESTED: Final = b"SSLv3/TLS write certificate request"
ANSWERED: Final = b"SSLv3/TLS read client certificate"
_MARKS: Final = frozenset({REQUESTED, ANSWERED})
_LOOP: Final = SSL.SSL_CB_LOOP


class FlightRecord(Protocol):
    """What each connection's app data (the TLSStream) keeps: the last mark seen."""

    flight: bytes


def _record(conn: SSL.Connection, where: int, ret: int) -> None:
    if where & _LOOP:
        state = conn.get_state_string()
        if state in _MARKS:
            record: FlightRecord = conn.get_app_data()
            record.flight = state


def watch_flight(context: SSL.Context) -> None:
    """Make every connection of `context` record whether our CertificateRequest went out."""
    context.set_info_callback(_record)


def after_flight(record: FlightRecord) -> bool:
    """True if the CertificateRequest was sent and no client Certificate has arrived.

    A resumed session sends no CertificateRequest, so a client leaving it stays
    connection_reset.
    """
    return record.flight == REQUESTED
