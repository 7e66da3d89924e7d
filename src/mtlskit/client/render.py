"""Text for people from a handshake trace: the numbered nine steps and the verdict (pure).

Shared by `mtlskit probe`, `mtlskit request --trace` and the demo; the callers print the
lines where they belong (stdout, or stderr when stdout carries the response body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mtlskit.client import Trace

__all__ = ["MARKS", "step_lines", "verdict_lines"]

# A step's status as the walk-through shows it: "-" for steps the handshake never reached,
# so the first FAILED is the one to read.
MARKS: Final = {"ok": "ok", "failed": "FAILED", "skipped": "skipped", "not_reached": "-"}


def step_lines(trace: Trace) -> list[str]:
    """The numbered walk-through: one line per step, its detail below, then the notes."""
    lines: list[str] = []
    for step in trace.steps:
        lines.append(f"  {step.number}. {step.title:<50} {MARKS[step.status]}")
        if step.detail:
            lines.append(f"     {step.detail}")
    lines.extend(f"  note: {note}" for note in trace.notes)
    return lines


def verdict_lines(trace: Trace) -> list[str]:
    """`outcome: CODE (step N)`, then why and the fix when it is not ok."""
    if trace.code == "ok":
        return ["outcome: ok"]
    step = f" (step {trace.failed_step})" if trace.failed_step else ""
    return [
        f"outcome: {trace.code}{step}",
        f"  why   {trace.explanation}",
        f"  fix   {trace.fix}",
    ]
