"""kyma check's result: a Finding (what, why, fix, severity) and which severities fail (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["SEVERITIES", "Finding", "Severity", "failing"]

Severity = Literal["error", "warning", "note"]
# Most severe first. error: the cluster breaks or is open as written. warning: it may,
# depending on what is outside the files checked (a Secret made with kubectl) or on a
# deprecated form. note: correct, said for clarity.
SEVERITIES: Final[tuple[Severity, ...]] = ("error", "warning", "note")


@dataclass(frozen=True, slots=True)
class Finding:
    """One pitfall in one object.

    Attributes:
        code: a stable key from CODES.
        source: where the object was read ("file.yaml#2", the 1-based document number).
        obj: "Kind namespace/name".
        what: what is wrong.
        why: what goes wrong in the cluster because of it.
        fix: what to change.
        severity: "error", "warning" or "note" (keyword-only).
    """

    code: str
    source: str
    obj: str
    what: str
    why: str
    fix: str
    severity: Severity = field(kw_only=True)


def failing(findings: Iterable[Finding], *, strict: bool = False) -> list[Finding]:
    """The findings that fail a check: errors; with strict, warnings too. Notes never fail."""
    fail: tuple[Severity, ...] = ("error", "warning") if strict else ("error",)
    return [f for f in findings if f.severity in fail]
