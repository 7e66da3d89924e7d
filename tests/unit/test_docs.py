"""The gateway docs and the code agree: every config key, flag and metric, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from mtlskit.cli.gateway import FLAG_KEYS
from mtlskit.config import reference_keys
from mtlskit.gateway.metrics import METRIC_NAMES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _first_column(section: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


def test_every_config_key_is_documented_and_every_documented_key_exists() -> None:
    documented = _first_column(_section("Configuration reference"))
    assert documented == set(reference_keys())


def test_documented_flags_are_the_real_flags() -> None:
    rows = re.findall(
        r"^\| `([^`]+)` \| `(--[a-z-]+)`", _section("Configuration reference"), flags=re.MULTILINE
    )
    for key, flag in rows:
        if key.startswith("headers."):
            assert flag == "--header"
            continue
        dest = flag[2:].replace("-", "_")
        assert FLAG_KEYS[dest][0] == key, (key, flag)
    assert {dest for dest in FLAG_KEYS} == {
        flag[2:].replace("-", "_") for k, flag in rows if not k.startswith("headers.")
    }


def test_metrics_are_documented() -> None:
    assert _first_column(_section("Metrics")) == set(METRIC_NAMES)
