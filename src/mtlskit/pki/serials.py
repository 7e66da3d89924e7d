"""Certificate serial numbers as text: how we print them and how we read what people type."""

from __future__ import annotations

__all__ = ["format_serial", "parse_serial"]


def format_serial(serial: int) -> str:
    """Uppercase hex without separators, as `openssl x509 -noout -serial` prints it."""
    return format(serial, "X")


def parse_serial(text: str) -> int:
    """Read a serial written as hex, with or without colons or a 0x prefix.

    Raises:
        ValueError: not a hex number.
    """
    cleaned = text.strip().replace(":", "").lower().removeprefix("0x")
    if not cleaned:
        raise ValueError("empty serial")
    return int(cleaned, 16)
