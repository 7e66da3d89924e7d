"""ExportError lives in mtlskit.errors; re-exported here for the export package."""

from __future__ import annotations

from mtlskit.errors import ExportError

__all__ = ["ExportError"]
