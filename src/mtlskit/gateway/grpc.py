"""gRPC over HTTP/2 as the gateway sees it: detection, errors, deadlines and status codes (pure).

The rules come from gRPC's "PROTOCOL-HTTP2" document (grpc/grpc, doc/PROTOCOL-HTTP2.md) and
its status code list (doc/statuscodes.md). The gateway never parses gRPC messages: it only
answers for the workload when the call cannot reach it, with a trailers-only response.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ABORTED",
    "ALREADY_EXISTS",
    "CANCELLED",
    "DATA_LOSS",
    "DEADLINE_EXCEEDED",
    "FAILED_PRECONDITION",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "OK",
    "OUT_OF_RANGE",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "UNIMPLEMENTED",
    "UNKNOWN",
    "encode_message",
    "grpc_error",
    "is_grpc",
    "parse_timeout",
    "status_for_http",
    "status_for_reset",
]

# Status codes (grpc doc/statuscodes.md); the names are gRPC's own.
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16

# grpc-timeout units: TimeoutValue is at most 8 ASCII digits, then one of these.
_UNITS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}

# HTTP/2 RST_STREAM codes to gRPC status ("Errors" in PROTOCOL-HTTP2.md); others INTERNAL.
_RESET_STATUS = {0x7: UNAVAILABLE, 0x8: CANCELLED, 0xB: RESOURCE_EXHAUSTED, 0xC: PERMISSION_DENIED}

# An HTTP status where gRPC expected 200 (grpc doc/http-grpc-status-mapping.md).
_HTTP_STATUS = {
    400: INTERNAL,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: UNIMPLEMENTED,
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}


def is_grpc(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True if the request is a gRPC call: content-type application/grpc or grpc+proto etc.

    gRPC-Web (application/grpc-web...) is not: browsers send it over HTTP/1.1 or HTTP/2
    to a translating proxy, and it carries its trailers in the body.
    """
    for name, value in headers:
        if name.lower() == b"content-type":
            value = value.strip().lower()
            return value == b"application/grpc" or value.startswith(
                (b"application/grpc+", b"application/grpc;")
            )
    return False


def encode_message(message: str) -> bytes:
    """grpc-message as gRPC percent-encodes it: UTF-8, %XX for '%' and bytes not 0x20-0x7E."""
    out = bytearray()
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def grpc_error(status: int, message: str) -> list[tuple[bytes, bytes]]:
    """A trailers-only response (one HEADERS frame with END_STREAM) carrying a gRPC error.

    Args:
        status: a gRPC status code (e.g. UNAVAILABLE, PERMISSION_DENIED).
        message: for people; percent-encoded into grpc-message.
    """
    return [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", str(status).encode("ascii")),
        (b"grpc-message", encode_message(message)),
    ]


def parse_timeout(value: bytes) -> float | None:
    """The grpc-timeout header in seconds ("1H", "10S", "100m", "5u", "9n"); None if malformed."""
    value = value.strip()
    digits, unit = value[:-1], value[-1:]
    if not 1 <= len(digits) <= 8 or not digits.isdigit() or not unit:
        return None
    scale = _UNITS.get(unit[0])
    if scale is None:
        return None
    return int(digits) * scale


def status_for_reset(error_code: int) -> int:
    """The gRPC status a client sees for an HTTP/2 stream reset with `error_code`."""
    return _RESET_STATUS.get(error_code, INTERNAL)


def status_for_http(status: int) -> int:
    """The gRPC status for a non-200 HTTP response to a gRPC call."""
    return _HTTP_STATUS.get(status, UNKNOWN)
