"""Names a package exports but imports on first use (PEP 562), so its pure modules stay light."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, lazy: Mapping[str, str], exported: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the module-level `__getattr__` and `__dir__` for a package with lazy names.

    Args:
        package: The package's `__name__`.
        lazy: Each lazily loaded name and the module that defines it.
        exported: The package's `__all__`, so that `dir()` lists the names not loaded yet.

    Returns:
        The two functions to bind as the package's `__getattr__` and `__dir__`.
    """

    def getattr_(name: str) -> Any:
        if name not in lazy:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(lazy[name]), name)
        vars(sys.modules[package])[name] = value  # later lookups find it without coming here
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exported))

    return getattr_, dir_
