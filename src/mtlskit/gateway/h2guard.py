"""HTTP/2 abuse accounting for one client connection: rapid reset and control-frame floods.

The guard counts what a client makes the gateway do for nothing, in sliding windows, and
says when to answer GOAWAY(ENHANCE_YOUR_CALM) and close. It holds no frames and no
streams, only a few counters per connection, and takes the clock as an argument, so it
is pure: the HTTP/2 connection (gateway/h2server.py) calls it from its event handling.

How the thresholds were chosen (the defaults of `H2Limits`):

- Rapid reset (CVE-2023-44487). A stream opened and reset by the client before its
  response completed costs a header decode, a policy decision and an upstream request,
  and frees its concurrency slot at once. Envoy closes a connection once more than half
  of its streams were reset early, checked after 500 streams
  (`overload.premature_reset_total_stream_count`, premature = under 1 s); nghttp2 lets a
  client reset a burst of 1000 streams, then 33 a second
  (`nghttp2_option_set_stream_reset_rate_limit`); nginx refuses new streams beyond twice
  `http2_max_concurrent_streams` in one read event; Go bounds the handlers running at
  once to MaxConcurrentStreams and closes when its queue of reset-but-running handlers
  grows. We take Envoy's ratio and a count like nghttp2's: within `window` (10 s), more
  than `max_resets` (200) early resets while they are more than `reset_ratio` (half) of
  the streams opened in that window. A client completing streams as fast as it cancels
  others (a browser navigating, gRPC deadlines) keeps under the ratio at any rate.
- SETTINGS and PING floods (CVE-2019-9515, CVE-2019-9512): each one obliges us to queue
  an ACK. Go caps queued control frames at 10,000, Envoy's
  `max_outbound_control_frames` at 1000, gRPC servers answer ENHANCE_YOUR_CALM
  ("too_many_pings") after two pings inside their 5 minute keepalive floor. A real client
  sends one or two SETTINGS per connection and, for BDP probes or keepalives, a few pings
  a second at most: `max_settings` 100 and `max_pings` 100 per window.
- Empty frames (CVE-2019-9518): zero-length DATA without END_STREAM, and frames that
  change nothing (PRIORITY, CONTINUATION with nothing in it), cost a frame parse each.
  Envoy allows 1 in a row (`max_consecutive_inbound_frames_with_empty_payload`); a
  count in the window (`max_empty_frames` 100) is as safe without guessing which frame
  comes next, and never bites a client whose empty frames are rare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["H2Guard", "H2Limits"]

# Each window is kept as this many buckets: the count is exact to 1/10 of the window and
# the memory is constant whatever the client sends.
_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class H2Limits:
    """What one HTTP/2 client connection may do in `window` seconds before it is closed.

    Attributes:
        window: the sliding window, in seconds, for every count below.
        max_resets: early client resets allowed in the window (rapid reset).
        reset_ratio: early resets are only abuse while they are more than this share of
            the streams opened in the window.
        max_settings: SETTINGS frames (not ACKs) allowed in the window.
        max_pings: PING frames (not ACKs) allowed in the window.
        max_empty_frames: zero-length DATA (without END_STREAM) and no-op frames allowed
            in the window.
    """

    window: float = 10.0
    max_resets: int = 200
    reset_ratio: float = 0.5
    max_settings: int = 100
    max_pings: int = 100
    max_empty_frames: int = 100

    def __post_init__(self) -> None:
        if not self.window > 0:
            raise ValueError(f"window must be positive, not {self.window!r}")
        if not 0 <= self.reset_ratio < 1:
            raise ValueError(f"reset_ratio must be in [0, 1), not {self.reset_ratio!r}")
        for name in ("max_resets", "max_settings", "max_pings", "max_empty_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")


class _Window:
    """A count of events in the last `span` seconds, kept in fixed buckets."""

    __slots__ = ("_counts", "_slot", "_width")

    def __init__(self, span: float) -> None:
        self._width = span / _BUCKETS
        self._counts = [0] * _BUCKETS
        self._slot = 0  # the absolute bucket number self._counts was last advanced to

    def _advance(self, now: float) -> None:
        slot = int(now // self._width)
        if slot <= self._slot:
            return  # same bucket, or a clock that went back: count in the current one
        for gone in range(self._slot + 1, min(slot, self._slot + _BUCKETS) + 1):
            self._counts[gone % _BUCKETS] = 0
        self._slot = slot

    def add(self, now: float) -> int:
        """Count one event at `now`; returns the count in the window, this one included."""
        self._advance(now)
        self._counts[self._slot % _BUCKETS] += 1
        return sum(self._counts)

    def total(self, now: float) -> int:
        """The count in the window ending at `now`."""
        self._advance(now)
        return sum(self._counts)


class H2Guard:
    """Flood and rapid-reset accounting for one HTTP/2 connection (not thread-safe).

    Each `on_*` method that can trip returns None, or the reason (for the log and the
    GOAWAY's debug data) to answer GOAWAY(ENHANCE_YOUR_CALM) and close the connection.
    Once tripped, the guard keeps returning the first reason.

    Args:
        limits: the thresholds.
        now: a monotonic clock in seconds (`time.monotonic`, or a test's).
    """

    def __init__(self, limits: H2Limits, now: Callable[[], float]) -> None:
        self.limits = limits
        self._now = now
        self._opened = _Window(limits.window)
        self._resets = _Window(limits.window)
        self._settings = _Window(limits.window)
        self._pings = _Window(limits.window)
        self._empty = _Window(limits.window)
        self._tripped: str | None = None

    @property
    def tripped(self) -> str | None:
        """The reason the connection was condemned, or None."""
        return self._tripped

    def _trip(self, reason: str) -> str:
        if self._tripped is None:
            self._tripped = reason
        return self._tripped

    def on_stream_opened(self) -> None:
        """A client stream's HEADERS arrived (counted for the rapid-reset ratio)."""
        self._opened.add(self._now())

    def on_stream_completed(self) -> None:
        """A stream ended normally (its response was sent); nothing to count today.

        Completed streams weigh through `on_stream_opened`: a stream opened and not
        reset counts against the ratio. Kept so the caller says what happened and a
        later rule (Go's bound on streams still running after a reset) has its hook.
        """

    def on_client_reset(self) -> str | None:
        """The client sent RST_STREAM on a stream whose response was not complete."""
        if self._tripped is not None:
            return self._tripped
        now = self._now()
        resets = self._resets.add(now)
        opened = max(self._opened.total(now), resets)
        lim = self.limits
        if resets > lim.max_resets and resets > lim.reset_ratio * opened:
            return self._trip(
                f"rapid reset: {resets} of {opened} streams reset by the client within "
                f"{lim.window:g}s (limit {lim.max_resets})"
            )
        return None

    def on_settings(self) -> str | None:
        """A SETTINGS frame that is not an ACK arrived."""
        return self._count(self._settings, self.limits.max_settings, "SETTINGS flood")

    def on_ping(self) -> str | None:
        """A PING frame that is not an ACK arrived."""
        return self._count(self._pings, self.limits.max_pings, "PING flood")

    def on_empty_frame(self) -> str | None:
        """A zero-length DATA frame without END_STREAM, or a frame that changes nothing."""
        return self._count(self._empty, self.limits.max_empty_frames, "empty frame flood")

    def _count(self, window: _Window, limit: int, what: str) -> str | None:
        if self._tripped is not None:
            return self._tripped
        count = window.add(self._now())
        if count > limit:
            return self._trip(
                f"{what}: {count} frames within {self.limits.window:g}s (limit {limit})"
            )
        return None
