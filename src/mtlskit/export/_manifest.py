"""What every rendered object shares: metadata, base64 data, and ExportWarning (pure)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

__all__ = ["ExportWarning", "b64", "meta"]


@dataclass(frozen=True, slots=True)
class ExportWarning:
    """Something the cluster will do differently from the local gateway.

    Attributes:
        subject: what it is about, e.g. "policy.allow_ou = 'demo'".
        what: what the rendered manifests do instead.
        why: the reason.
        fix: what the user can do.
    """

    subject: str
    what: str
    why: str
    fix: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.what} ({self.why}); fix: {self.fix}"


def b64(data: bytes) -> str:
    """Secret `data` values are base64 text."""
    return base64.b64encode(data).decode("ascii")


def meta(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    """An object's metadata, labelled as ours."""
    out: dict[str, Any] = {"name": name, "namespace": namespace}
    out["labels"] = {"app.kubernetes.io/managed-by": "mtlskit", **labels}
    return out
