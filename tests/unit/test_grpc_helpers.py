"""gateway/grpc.py (gRPC errors, deadlines, detection) and gateway/h2frames.py (GOAWAY scan)."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame
from hypothesis import given
from hypothesis import strategies as st

from mtlskit.gateway import grpc
from mtlskit.gateway.h2frames import GoawayScanner, reset_name


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"application/grpc", True),
        (b"application/grpc+proto", True),
        (b"Application/GRPC+json", True),
        (b"application/grpc; charset=utf-8", True),
        (b"application/grpc-web", False),  # gRPC-Web carries trailers in the body
        (b"application/grpc-web+proto", False),
        (b"application/json", False),
    ],
)
def test_is_grpc_by_content_type(content_type: bytes, expected: bool) -> None:
    headers = [(b":method", b"POST"), (b"content-type", content_type)]
    assert grpc.is_grpc(headers) is expected


def test_is_grpc_without_a_content_type() -> None:
    assert not grpc.is_grpc([(b":method", b"POST"), (b":path", b"/svc/M")])


def test_grpc_error_is_a_trailers_only_response() -> None:
    fields = grpc.grpc_error(grpc.UNAVAILABLE, "gRPC needs an HTTP/2 upstream: use h2c://")
    assert fields == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"14"),
        (b"grpc-message", b"gRPC needs an HTTP/2 upstream: use h2c://"),
    ]


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        ("plain text", b"plain text"),
        ("100% sure", b"100%25 sure"),  # '%' itself is encoded
        ("line\nbreak\r", b"line%0Abreak%0D"),
        ("café ✓", b"caf%C3%A9 %E2%9C%93"),  # UTF-8 bytes, upper-case hex
        ("~tilde", b"~tilde"),
        ("\x7f", b"%7F"),
    ],
)
def test_grpc_message_is_percent_encoded_as_the_spec_says(message: str, encoded: bytes) -> None:
    assert grpc.encode_message(message) == encoded


@given(st.text())
def test_grpc_message_round_trips_and_stays_printable_ascii(message: str) -> None:
    encoded = grpc.encode_message(message)
    assert all(0x20 <= b <= 0x7E for b in encoded)
    assert unquote_to_bytes(encoded) == message.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"1H", 3600.0),
        (b"2M", 120.0),
        (b"10S", 10.0),
        (b"100m", 0.1),
        (b"5u", 5e-6),
        (b"9n", 9e-9),
        (b"99999999S", 99999999.0),  # 8 digits: the most the spec allows
        (b" 3S ", 3.0),
    ],
)
def test_parse_timeout(value: bytes, seconds: float) -> None:
    assert grpc.parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [b"", b"S", b"10", b"123456789S", b"10s", b"1.5S", b"-1S", b"10 S", b"\xd9\xa1S"]
)
def test_parse_timeout_rejects_malformed_values(value: bytes) -> None:
    assert grpc.parse_timeout(value) is None


def test_status_mappings() -> None:
    assert grpc.status_for_reset(0x8) == grpc.CANCELLED
    assert grpc.status_for_reset(0x7) == grpc.UNAVAILABLE
    assert grpc.status_for_reset(0xB) == grpc.RESOURCE_EXHAUSTED
    assert grpc.status_for_reset(0x2) == grpc.INTERNAL
    assert grpc.status_for_http(403) == grpc.PERMISSION_DENIED
    assert grpc.status_for_http(503) == grpc.UNAVAILABLE
    assert grpc.status_for_http(418) == grpc.UNKNOWN
    assert (grpc.OK, grpc.DEADLINE_EXCEEDED, grpc.PERMISSION_DENIED, grpc.UNAVAILABLE) == (
        0,
        4,
        7,
        14,
    )


# -- GOAWAY taken out of the workload's byte stream --------------------------------------------
def _goaway(last: int, code: int) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id, frame.error_code = last, code
    return bytes(frame.serialize())


def _others() -> list[bytes]:
    data = DataFrame(1)
    data.data = b"x" * 300
    headers = HeadersFrame(3)
    headers.data = b"\x88"
    return [
        bytes(SettingsFrame(0).serialize()),
        bytes(data.serialize()),
        bytes(PingFrame(0).serialize()),
        bytes(headers.serialize()),
    ]


@given(st.lists(st.integers(min_value=1, max_value=600), max_size=20))
def test_goaway_frames_are_taken_out_wherever_the_reads_split(cuts: list[int]) -> None:
    settings, data, ping, headers = _others()
    wire = settings + data + _goaway(3, 0) + ping + headers + _goaway(1, 0xB) + data
    scanner, passed, found, pos = GoawayScanner(), b"", [], 0
    for cut in [*cuts, len(wire)]:
        piece, goaways = scanner.split(wire[pos : pos + cut])
        passed += piece
        found += goaways
        pos += cut
        if pos >= len(wire):
            break
    assert passed == settings + data + ping + headers + data
    assert found == [(3, 0), (1, 0xB)]


def test_reads_without_goaway_pass_through_unchanged() -> None:
    wire = b"".join(_others())
    data, goaways = GoawayScanner().split(wire)
    assert data is wire  # no copy on the common path
    assert goaways == []


def test_a_malformed_goaway_goes_to_h2() -> None:
    short = b"\x00\x00\x04\x07\x00\x00\x00\x00\x00" + b"\x00" * 4  # 4 bytes: too short
    assert GoawayScanner().split(short) == (short, [])


def test_reset_names() -> None:
    assert reset_name(0x8) == "CANCEL"
    assert reset_name(0x0) == "NO_ERROR"
    assert reset_name(0x99) == "0x99"
