"""The step renderer: a trace becomes the lines probe, request --trace and the demo print."""

from __future__ import annotations

from mtlskit.client import Step, Trace
from mtlskit.client.render import step_lines, verdict_lines


def _trace(code: str = "ok", failed_step: int = 0) -> Trace:
    steps = (
        Step(1, "client hello", "ok", "ClientHello sent"),
        Step(6, "client presents its certificate", "failed", ""),
        Step(8, "server finishes the handshake", "not_reached", "the server did not finish"),
    )
    return Trace(steps, code, "what happened", "what to do", failed_step, ("a note",))


def test_steps_are_numbered_with_their_mark_detail_and_notes() -> None:
    assert step_lines(_trace()) == [
        f"  1. {'client hello':<50} ok",
        "     ClientHello sent",
        f"  6. {'client presents its certificate':<50} FAILED",  # no detail: no second line
        f"  8. {'server finishes the handshake':<50} -",
        "     the server did not finish",
        "  note: a note",
    ]


def test_verdict_is_one_line_when_ok_and_says_why_and_fix_otherwise() -> None:
    assert verdict_lines(_trace()) == ["outcome: ok"]
    assert verdict_lines(_trace("client_cert_required", 6)) == [
        "outcome: client_cert_required (step 6)",
        "  why   what happened",
        "  fix   what to do",
    ]
    # failed before step 1 (nothing listens): no step to name
    assert verdict_lines(_trace("connection_refused"))[0] == "outcome: connection_refused"
