"""TLS framing: CA names and certificate lists out of handshake messages (synthetic bytes)."""

from __future__ import annotations

import pytest
from cryptography import x509

from mtlskit.client.tlswire import WireError, certificate_list, certificate_request, name_text


def _v(width: int, data: bytes) -> bytes:
    return len(data).to_bytes(width, "big") + data


def _msg(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _v(3, body)


NAMES = [x509.Name.from_rfc4514_string(t).public_bytes() for t in ("CN=Root A", "CN=Root B,O=X")]
DN_LIST = b"".join(_v(2, n) for n in NAMES)


def test_tls12_certificate_request_names() -> None:
    body = _v(1, b"\x01\x40") + _v(2, b"\x04\x03") + _v(2, DN_LIST)
    assert certificate_request(_msg(13, body), tls13=False) == NAMES
    assert [name_text(n) for n in NAMES] == ["CN=Root A", "CN=Root B,O=X"]


def test_tls13_certificate_request_extension() -> None:
    sigalgs = (13).to_bytes(2, "big") + _v(2, _v(2, b"\x04\x03"))
    cas = (47).to_bytes(2, "big") + _v(2, _v(2, DN_LIST))
    assert certificate_request(_msg(13, _v(1, b"") + _v(2, sigalgs + cas)), tls13=True) == NAMES
    assert certificate_request(_msg(13, _v(1, b"") + _v(2, sigalgs)), tls13=True) == []


def test_certificate_lists_both_framings() -> None:
    ders = [b"\x30\x03abc", b"\x30\x01d"]
    tls12 = _msg(11, _v(3, b"".join(_v(3, d) for d in ders)))
    tls13 = _msg(11, _v(1, b"") + _v(3, b"".join(_v(3, d) + _v(2, b"") for d in ders)))
    assert certificate_list(tls12, tls13=False) == ders
    assert certificate_list(tls13, tls13=True) == ders


def test_truncated_or_wrong_messages_are_wire_errors() -> None:
    with pytest.raises(WireError):
        certificate_list(_msg(11, _v(3, b"\x00\x00\x09abc")), tls13=False)
    with pytest.raises(WireError):
        certificate_request(_msg(11, b""), tls13=False)
    assert name_text(b"\x01\x02").startswith("(undecodable name")
