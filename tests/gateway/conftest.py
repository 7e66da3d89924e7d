"""Fixtures for the gateway tests: one PKI per module, an echo workload per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mtlskit.demo.echo import EchoServer
from tests.gateway.harness import PKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(Path(tmp_path_factory.mktemp("gwpki")))


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server
