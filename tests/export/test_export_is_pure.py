"""The export core stays pure (sockets, files, clocks only in the CLI), as the STYLE asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_architecture import FORBIDDEN, _imports

EXPORT = Path(__file__).resolve().parents[2] / "src" / "mtlskit" / "export"


@pytest.mark.parametrize("module", ["kyma.py", "check.py", "render.py", "_certs.py"])
def test_export_modules_do_no_io(module: str) -> None:
    path = EXPORT / module
    assert not _imports(path) & FORBIDDEN
    text = path.read_text()
    assert "datetime.now(" not in text and "open(" not in text
