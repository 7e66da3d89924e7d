"""TLS message framing only: certificates and CA names out of recorded handshake messages.

We split TLS length-prefixed lists (RFC 8446 §4.4.2, §4.3.2 and §4.2.4; RFC 5246 §7.4.2
and §7.4.4) and hand every DER blob to cryptography; no ASN.1 is parsed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

__all__ = [
    "ALERTS",
    "MESSAGES",
    "WireError",
    "certificate_list",
    "certificate_request",
    "name_text",
]

# Handshake message types (RFC 8446 §4, RFC 5246 §7.4) by number.
MESSAGES = {
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
    24: "KeyUpdate",
}
# Alert descriptions (RFC 8446 §6) by number.
ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}
_CERTIFICATE_AUTHORITIES = 47  # the TLS 1.3 extension carrying the CA names


class WireError(ValueError):
    """A handshake message whose framing does not add up."""


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise WireError(f"truncated: wanted {n} bytes at offset {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def number(self, width: int) -> int:
        return int.from_bytes(self.take(width), "big")

    def vector(self, width: int) -> bytes:
        return self.take(self.number(width))

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def _body(message: bytes, expected_type: int) -> _Reader:
    """Strip the 4-byte handshake header (type, 24-bit length) and check both."""
    head = _Reader(message)
    kind = head.number(1)
    if kind != expected_type:
        raise WireError(f"expected handshake type {expected_type}, got {kind}")
    return _Reader(head.vector(3))


def certificate_list(message: bytes, *, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message, in the order the peer sent them.

    Args:
        message: the whole handshake message (header included).
        tls13: TLS 1.3 adds a request context and per-certificate extensions.

    Raises:
        WireError: the framing is inconsistent.
    """
    body = _body(message, 11)
    if tls13:
        body.vector(1)  # certificate_request_context
    entries = _Reader(body.vector(3))
    certs = []
    while not entries.done:
        certs.append(entries.vector(3))
        if tls13:
            entries.vector(2)  # CertificateEntry extensions (OCSP, SCT)
    return certs


def _split_names(blob: bytes) -> list[bytes]:
    names = _Reader(blob)
    out = []
    while not names.done:
        out.append(names.vector(2))
    return out


def certificate_request(message: bytes, *, tls13: bool) -> list[bytes]:
    """The DER-encoded CA names (X.501 Names) a CertificateRequest lists; may be empty.

    Raises:
        WireError: the framing is inconsistent.
    """
    body = _body(message, 13)
    if not tls13:
        body.vector(1)  # certificate_types
        body.vector(2)  # supported_signature_algorithms
        return _split_names(body.vector(2))
    body.vector(1)  # certificate_request_context
    extensions = _Reader(body.vector(2))
    while not extensions.done:
        kind = extensions.number(2)
        data = extensions.vector(2)
        if kind == _CERTIFICATE_AUTHORITIES:
            return _split_names(_Reader(data).vector(2))
    return []


def name_text(der: bytes) -> str:
    """A DER X.501 Name as RFC 4514 text, decoded by cryptography (`Name.from_bytes`).

    Older cryptography releases lack that loader; the name is then shown as its size and
    a hex prefix, and callers still compare names by their DER bytes.
    """
    loader = getattr(x509.Name, "from_bytes", None)
    if loader is not None:
        try:
            text = loader(der).rfc4514_string()
        except ValueError:
            return f"(undecodable name, {len(der)} bytes)"
        return str(text) or "(empty name)"
    return f"(DER name, {len(der)} bytes, {der[:12].hex()}...)"
