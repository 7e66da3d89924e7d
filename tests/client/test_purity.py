"""The client's decision modules stay pure: no sockets, ssl, files, processes or clocks."""

from __future__ import annotations

import pytest

from tests.unit.test_architecture import FORBIDDEN, SRC, _imports

PURE = ["client/trace.py", "client/codes.py", "client/tlswire.py", "client/preflight.py"]


@pytest.mark.parametrize("module", PURE)
def test_client_core_does_no_io(module: str) -> None:
    assert not (_imports(SRC / module) & FORBIDDEN)
    assert "datetime.now(" not in (SRC / module).read_text()
