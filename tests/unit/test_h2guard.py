"""The HTTP/2 guard's rapid-reset and flood accounting, on an injected clock."""

from __future__ import annotations

import dataclasses

import pytest

from mtlskit.gateway.h2guard import H2Guard, H2Limits


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def _guard(**limits: float) -> tuple[H2Guard, Clock]:
    clock = Clock()
    return H2Guard(H2Limits(**limits), clock), clock  # type: ignore[arg-type]


def test_defaults_are_documented_values() -> None:
    lim = H2Limits()
    assert (lim.window, lim.max_resets, lim.reset_ratio) == (10.0, 200, 0.5)
    assert (lim.max_settings, lim.max_pings, lim.max_empty_frames) == (100, 100, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lim.max_resets = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [("window", 0), ("max_resets", 0), ("max_pings", 0), ("reset_ratio", 1.0)],
)
def test_limits_reject_values_that_disable_or_break_a_rule(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        H2Limits(**{field: value})  # type: ignore[arg-type]


def test_rapid_reset_trips_after_max_resets() -> None:
    guard, _ = _guard(max_resets=5)
    for _ in range(5):
        guard.on_stream_opened()
        assert guard.on_client_reset() is None
    guard.on_stream_opened()
    reason = guard.on_client_reset()
    assert reason is not None and reason.startswith("rapid reset: 6 of 6 streams")
    assert guard.tripped == reason
    # Tripped once, the same reason whatever comes next.
    assert guard.on_ping() == reason


def test_resets_spread_over_more_than_the_window_are_allowed() -> None:
    guard, clock = _guard(max_resets=5, window=10.0)
    for _ in range(50):
        guard.on_stream_opened()
        assert guard.on_client_reset() is None
        clock.t += 2.5  # 4 resets per window at most
    assert guard.tripped is None


def test_a_burst_trips_once_the_old_resets_are_in_the_window() -> None:
    guard, clock = _guard(max_resets=5, window=10.0)
    for _ in range(5):
        guard.on_stream_opened()
        assert guard.on_client_reset() is None
    clock.t += 5.0  # still inside the window: the old five count
    guard.on_stream_opened()
    assert guard.on_client_reset() is not None


def test_the_window_forgets_resets_older_than_it() -> None:
    guard, clock = _guard(max_resets=5, window=10.0)
    for _ in range(5):
        guard.on_stream_opened()
        assert guard.on_client_reset() is None
    clock.t += 10.5
    for _ in range(5):
        guard.on_stream_opened()
        assert guard.on_client_reset() is None


def test_resets_among_many_completed_streams_are_allowed() -> None:
    # A busy client cancelling a third of its streams (deadlines, navigation) is no attack.
    guard, clock = _guard(max_resets=5)
    for i in range(300):
        guard.on_stream_opened()
        if i % 3 == 0:
            assert guard.on_client_reset() is None
        else:
            guard.on_stream_completed()
        clock.t += 0.001
    assert guard.tripped is None


def test_resets_outnumbering_completions_trip_even_among_completed_streams() -> None:
    guard, _ = _guard(max_resets=5)
    for _ in range(4):
        guard.on_stream_opened()
        guard.on_stream_completed()
    reasons = []
    for _ in range(10):
        guard.on_stream_opened()
        reasons.append(guard.on_client_reset())
    assert reasons[-1] is not None and "streams reset by the client" in reasons[-1]


def test_resets_without_opened_streams_count_as_all_premature() -> None:
    # A caller that misses on_stream_opened must not make the ratio rule unreachable.
    guard, _ = _guard(max_resets=3)
    results = [guard.on_client_reset() for _ in range(4)]
    assert results[:3] == [None, None, None] and results[3] is not None


@pytest.mark.parametrize(
    ("method", "field", "what"),
    [
        ("on_settings", "max_settings", "SETTINGS flood"),
        ("on_ping", "max_pings", "PING flood"),
        ("on_empty_frame", "max_empty_frames", "empty frame flood"),
    ],
)
def test_control_frame_floods_trip_past_their_limit(method: str, field: str, what: str) -> None:
    guard, _ = _guard(**{field: 3})
    call = getattr(guard, method)
    assert [call() for _ in range(3)] == [None, None, None]
    reason = call()
    assert reason == f"{what}: 4 frames within 10s (limit 3)"


@pytest.mark.parametrize("method", ["on_settings", "on_ping", "on_empty_frame"])
def test_a_steady_rate_under_the_limit_never_trips(method: str) -> None:
    guard, clock = _guard(max_settings=10, max_pings=10, max_empty_frames=10)
    call = getattr(guard, method)
    for _ in range(1000):
        assert call() is None
        clock.t += 1.1  # 9 per 10 s window
    assert guard.tripped is None


def test_each_kind_of_frame_has_its_own_count() -> None:
    guard, _ = _guard(max_settings=2, max_pings=2, max_empty_frames=2)
    for _ in range(2):
        assert guard.on_settings() is None
        assert guard.on_ping() is None
        assert guard.on_empty_frame() is None
    assert guard.tripped is None
    assert guard.on_ping() is not None


def test_a_clock_going_back_counts_in_the_current_bucket() -> None:
    guard, clock = _guard(max_pings=3)
    assert guard.on_ping() is None
    clock.t -= 100.0
    assert guard.on_ping() is None
    assert guard.on_ping() is None
    assert guard.on_ping() is not None


def test_a_long_pause_clears_every_count() -> None:
    guard, clock = _guard(max_pings=3)
    for _ in range(3):
        assert guard.on_ping() is None
    clock.t += 3600.0
    for _ in range(3):
        assert guard.on_ping() is None
    assert guard.tripped is None
