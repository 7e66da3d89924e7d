"""HTTP/2 frame-level helpers for the h2c upstream: GOAWAY found before h2 sees it (pure)."""

from __future__ import annotations

from h2.errors import ErrorCodes
from hyperframe.exceptions import HyperframeError, UnknownFrameError
from hyperframe.frame import Frame, GoAwayFrame

__all__ = ["GoawayScanner", "reset_name"]


def _frame_header(head: bytes) -> tuple[GoAwayFrame | None, int]:
    """hyperframe's reading of a 9-byte frame header: a GOAWAY on stream 0, and the length."""
    try:
        frame, length = Frame.parse_frame_header(memoryview(head))
    except UnknownFrameError as exc:  # extension frames pass through (RFC 9113 4.1)
        return None, exc.length
    except HyperframeError:
        return None, int.from_bytes(head[0:3])  # h2 will refuse it; only skip its payload
    goaway = frame if isinstance(frame, GoAwayFrame) and frame.stream_id == 0 else None
    return goaway, length


def reset_name(code: int) -> str:
    """An HTTP/2 error code as its name (CANCEL), or in hex if it has none."""
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


class GoawayScanner:
    """Takes the workload's GOAWAY frames out of its byte stream before h2 sees them.

    h2 closes its whole connection state on a GOAWAY (python-hyper/h2#1181), which would
    break the streams the workload still finishes in a graceful shutdown (RFC 9113
    section 6.8). Only the 9-byte frame headers are read; the frames h2 gets are unchanged.
    """

    __slots__ = ("capture", "head", "left")

    def __init__(self) -> None:
        self.head = b""  # a frame header not yet complete
        self.left = 0  # bytes of the current frame's payload still to come
        self.capture: bytearray | None = None  # the payload of a GOAWAY being read

    def split(self, data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
        """The bytes for h2, and the (last_stream_id, error_code) of each GOAWAY found."""
        pieces: list[bytes] = []
        goaways: list[tuple[int, int]] = []
        pos, end, whole = 0, len(data), not self.head
        while pos < end:
            if self.left:
                n = min(self.left, end - pos)
                if self.capture is None:
                    pieces.append(data[pos : pos + n])
                else:
                    self.capture += data[pos : pos + n]
                pos += n
                self.left -= n
                if not self.left and self.capture is not None:
                    payload, self.capture = self.capture, None
                    frame = GoAwayFrame(0)
                    frame.parse_body(memoryview(payload))
                    goaways.append((frame.last_stream_id, frame.error_code))
                continue
            take = 9 - len(self.head)
            head = self.head + data[pos : pos + take]
            pos += take
            if len(head) < 9:
                self.head, whole = head, False
                break
            self.head = b""
            goaway, length = _frame_header(head)
            if goaway is not None and length >= 8:
                self.capture, whole = bytearray(), False
            else:  # a malformed GOAWAY goes to h2, which answers it as the error it is
                pieces.append(head)
            self.left = length
        if whole and not goaways and self.capture is None:
            return data, goaways
        return b"".join(pieces), goaways
