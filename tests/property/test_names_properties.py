"""Property tests: whatever parse_san accepts round-trips through its description."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from mtlskit.errors import IssuanceError
from mtlskit.pki.names import describe_general_name, parse_san

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# "0.0.0.0" is an IP, not a DNS name: parse_san rightly says so.
dns = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda n: not _is_ip(n))


@given(dns)
def test_dns_round_trip(name: str) -> None:
    general = parse_san(name)
    assert describe_general_name(general) == f"DNS:{name}"
    assert parse_san(describe_general_name(general)) == general


@given(st.ip_addresses())
def test_ip_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    general = parse_san(str(ip))
    assert parse_san(describe_general_name(general)) == general


@given(st.text(max_size=40))
def test_anything_either_parses_or_raises_our_error(text: str) -> None:
    try:
        general = parse_san(text)
    except IssuanceError as exc:
        assert exc.hint
    else:
        assert parse_san(describe_general_name(general)) == general
