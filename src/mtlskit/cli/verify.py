"""`mtlskit cert verify`: placeholder until the trust module lands (issue 3)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add `cert verify` to the `cert` group (nothing yet)."""
