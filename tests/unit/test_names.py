"""SAN strings become the right GeneralName, and bad ones get a clear error."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from mtlskit.errors import IssuanceError
from mtlskit.pki.names import describe_general_name, parse_san, parse_sans


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", x509.DNSName("example.com")),
        ("API.Example.COM.", x509.DNSName("api.example.com")),
        ("*.example.com", x509.DNSName("*.example.com")),
        ("10.0.0.1", x509.IPAddress(ipaddress.ip_address("10.0.0.1"))),
        ("::1", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("IP:::1", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("spiffe://td/ns/x", x509.UniformResourceIdentifier("spiffe://td/ns/x")),
        ("URI:https://a.example/p", x509.UniformResourceIdentifier("https://a.example/p")),
        ("a@b.c", x509.RFC822Name("a@b.c")),
        ("email:ops@Example.com", x509.RFC822Name("ops@example.com")),
        ("DNS:localhost", x509.DNSName("localhost")),
        ("bücher.example", x509.DNSName("xn--bcher-kva.example")),
    ],
)
def test_san_kinds(text: str, expected: x509.GeneralName) -> None:
    assert parse_san(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("exa mple.com", "label"),
        ("", "empty"),
        ("-bad.example", "label"),
        ("*.com", "wildcard"),
        ("a..b", "label"),
        ("spiffe://td/x?q=1", "SPIFFE"),
        ("URI:no-scheme", "scheme"),
        ("a@b@c", "email"),
        ("IP:300.1.1.1", "IPv4"),
        ("x" * 64 + ".example", "label"),
        ("\x80@example.com", "ASCII"),
        ("spiffe://td/ns/\u00e9", "ASCII"),
    ],
)
def test_bad_sans_name_the_value_and_the_fix(text: str, why: str) -> None:
    with pytest.raises(IssuanceError) as info:
        parse_san(text)
    assert repr(text) in info.value.message
    assert why in info.value.message
    assert "spiffe://" in info.value.hint


def test_duplicates_are_dropped_in_order() -> None:
    names = parse_sans(["b.example", "a.example", "B.example"])
    assert [describe_general_name(n) for n in names] == ["DNS:b.example", "DNS:a.example"]
