"""A raw HTTP/2 client over TLS that writes any frame, well-formed or not, and reads frames back.

The attack tests need a client that misbehaves on purpose (resets in a loop, endless
CONTINUATION, window overflows), which no real client does, so this one is frames and
bytes: hyperframe for the frames and hpack for the header blocks, over an `ssl` socket
presenting a client certificate with ALPN h2. It writes in batches and reads between
them, so a GOAWAY the server sends in the middle of a flood is seen before the server's
close could discard it, and neither side blocks writing to the other.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 section 7 error codes, by name, for messages and assertions.
ERRORS = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}
CODES = {name: code for code, name in ERRORS.items()}


def describe(frame: Frame) -> str:
    """A frame in one short line, error codes by name (for assertion messages)."""
    if isinstance(frame, GoAwayFrame):
        name = ERRORS.get(frame.error_code, hex(frame.error_code))
        return f"GOAWAY({name}, last={frame.last_stream_id}, {frame.additional_data[:80]!r})"
    if isinstance(frame, RstStreamFrame):
        name = ERRORS.get(frame.error_code, hex(frame.error_code))
        return f"RST_STREAM({frame.stream_id}, {name})"
    flags = ",".join(sorted(frame.flags))
    size = len(frame.data) if isinstance(frame, DataFrame | HeadersFrame) else ""
    name = type(frame).__name__.removesuffix("Frame").upper()
    return f"{name}({frame.stream_id}{flags and ' ' + flags}{size and f' {size}B'})"


@dataclass
class Outcome:
    """Everything the server sent on one connection, and whether it closed it."""

    frames: list[Frame] = field(default_factory=list)
    closed: bool = False
    headers: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    data: dict[int, bytes] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)

    @property
    def goaway(self) -> GoAwayFrame | None:
        """The first GOAWAY, if any."""
        return next((f for f in self.frames if isinstance(f, GoAwayFrame)), None)

    def goaway_error(self) -> str | None:
        """The first GOAWAY's error code by name, or None."""
        goaway = self.goaway
        return None if goaway is None else ERRORS.get(goaway.error_code, hex(goaway.error_code))

    def resets(self) -> dict[int, str]:
        """RST_STREAM error codes by name, by stream."""
        return {
            f.stream_id: ERRORS.get(f.error_code, hex(f.error_code))
            for f in self.frames
            if isinstance(f, RstStreamFrame)
        }

    def status(self, stream_id: int) -> int | None:
        """The :status of the stream's response, if one came."""
        for name, value in self.headers.get(stream_id, []):
            if name == ":status":
                return int(value)
        return None

    def summary(self) -> str:
        """The frames seen, for assertion messages."""
        lines = [describe(f) for f in self.frames[:40]]
        if len(self.frames) > 40:
            lines.append(f"... {len(self.frames) - 40} more")
        lines.append("connection closed" if self.closed else "connection still open")
        return "\n".join(lines)


class RawH2:
    """One HTTP/2 connection, written frame by frame; read with `read`/`drain`/`flood`."""

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.tls = tls
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.outcome = Outcome()
        self._buf = bytearray()
        self._next_stream = 1
        self.auto_ack = True  # ACK the server's SETTINGS, as every client must

    def next_stream_id(self) -> int:
        """A fresh odd client stream id."""
        sid = self._next_stream
        self._next_stream += 2
        return sid

    # Writing --------------------------------------------------------------------------

    def write(self, *frames: Frame | bytes) -> bool:
        """Send frames (or raw bytes); False if the server had closed the connection."""
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        try:
            self.tls.sendall(data)
        except (OSError, ssl.SSLError):
            self.outcome.closed = True
            return False
        return True

    def preface(self, settings: dict[int, int] | None = None) -> None:
        """The client connection preface and our SETTINGS."""
        self.write(PREFACE, SettingsFrame(0, settings=settings or {}))

    def block(self, headers: Iterable[tuple[str, str]]) -> bytes:
        """An HPACK header block (our encoder keeps its dynamic table across calls)."""
        return self.encoder.encode(list(headers))

    def request(
        self, path: str = "/", method: str = "GET", extra: Iterable[tuple[str, str]] = ()
    ) -> list[tuple[str, str]]:
        """The request pseudo-headers for the gateway, then `extra`."""
        return [
            (":method", method),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
            *extra,
        ]

    def headers(
        self,
        sid: int,
        headers: Iterable[tuple[str, str]],
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> HeadersFrame:
        """A HEADERS frame carrying `headers`."""
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(sid, data=self.block(headers), flags=flags)

    def get(self, path: str = "/", extra: Iterable[tuple[str, str]] = ()) -> int:
        """Send a whole GET; returns its stream id."""
        sid = self.next_stream_id()
        self.write(self.headers(sid, self.request(path, extra=extra)))
        return sid

    # Reading --------------------------------------------------------------------------

    def _take(self, frame: Frame) -> None:
        out = self.outcome
        out.frames.append(frame)
        if isinstance(frame, HeadersFrame | ContinuationFrame) and frame.data:
            decoded = self.decoder.decode(frame.data)
            out.headers.setdefault(frame.stream_id, []).extend((str(n), str(v)) for n, v in decoded)
        if isinstance(frame, DataFrame):
            out.data[frame.stream_id] = out.data.get(frame.stream_id, b"") + frame.data
            if frame.flow_controlled_length:
                # Keep the server's windows open so a long response never stalls.
                self.write(
                    WindowUpdateFrame(0, window_increment=frame.flow_controlled_length),
                    WindowUpdateFrame(
                        frame.stream_id, window_increment=frame.flow_controlled_length
                    ),
                )
        if "END_STREAM" in frame.flags:
            out.ended.add(frame.stream_id)
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags and self.auto_ack:
            self.write(SettingsFrame(0, flags=["ACK"]))

    def _parse(self) -> None:
        while len(self._buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buf[:9]))
            if len(self._buf) < 9 + length:
                return
            body = bytes(self._buf[9 : 9 + length])
            del self._buf[: 9 + length]
            if not isinstance(frame, ExtensionFrame):
                frame.parse_body(memoryview(body))
            self._take(frame)

    def read(self, timeout: float) -> bool:
        """Read what arrives within `timeout` (one recv); False once the server closed."""
        if self.outcome.closed:
            return False
        if not self.tls.pending():
            ready, _, _ = select.select([self.tls], [], [], timeout)
            if not ready:
                return True
        try:
            data = self.tls.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return True
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            self.outcome.closed = True
            return False
        self._buf += data
        self._parse()
        return True

    def settle(self, timeout: float = 5.0) -> dict[int, int]:
        """Read until the server's SETTINGS came (and were ACKed); returns them.

        The server's limits (max_concurrent_streams, ...) bind only once we ACK them.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.outcome.frames:
                if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                    self.read(0.05)  # the ACK of ours, usually right behind
                    return dict(frame.settings)
            if not self.read(0.1):
                break
        raise AssertionError(f"no SETTINGS from the server:\n{self.outcome.summary()}")

    def drain(self, timeout: float = 5.0, *, until_end: int | None = None) -> Outcome:
        """Read until the server closes, sends GOAWAY, or `until_end`'s stream ends.

        A bound on waiting, not an assertion: after `timeout` s it returns what it has.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until_end is not None and (
                until_end in self.outcome.ended or until_end in self.outcome.resets()
            ):
                break
            if until_end is None and self.outcome.goaway is not None:
                # Give the server a moment to close after its GOAWAY.
                self.read(0.2)
                break
            if not self.read(min(0.1, max(0.0, deadline - time.monotonic()))):
                break
        return self.outcome

    def flood(
        self, frames: Iterable[Frame | bytes], *, batch: int = 50, timeout: float = 10.0
    ) -> Outcome:
        """Write `frames` in batches, reading between them; stop at GOAWAY or close."""
        deadline = time.monotonic() + timeout
        pending: list[Frame | bytes] = []
        for frame in frames:
            pending.append(frame)
            if len(pending) < batch:
                continue
            if not self.write(*pending) or not self.read(0):
                break
            pending = []
            if self.outcome.goaway is not None or time.monotonic() > deadline:
                break
        else:
            if pending:
                self.write(*pending)
        return self.drain(max(1.0, deadline - time.monotonic()))


def resets_in_a_loop(h2: RawH2, count: int) -> Iterator[Frame]:
    """HEADERS (a whole GET) then RST_STREAM(CANCEL) on a new stream, `count` times."""
    for _ in range(count):
        sid = h2.next_stream_id()
        yield h2.headers(sid, h2.request("/rapid"))
        yield RstStreamFrame(sid, error_code=CODES["CANCEL"])


def pings(count: int) -> Iterator[Frame]:
    """PINGs with distinct opaque data."""
    for i in range(count):
        yield PingFrame(0, opaque_data=i.to_bytes(8, "big"))


@contextmanager
def connect(
    port: int, ctx: ssl.SSLContext, *, alpn: Iterable[str] = ("h2",), preface: bool = True
) -> Iterator[RawH2]:
    """A TLS connection to 127.0.0.1:PORT offering ALPN `alpn`, preface sent; closed after."""
    ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise
    try:
        h2 = RawH2(tls)
        if preface:
            h2.preface()
        yield h2
    finally:
        tls.close()
