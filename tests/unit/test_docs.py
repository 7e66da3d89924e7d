"""The gateway docs and the code agree: the config reference is generated, metrics listed."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mtlskit.cli.gateway import register
from mtlskit.config import reference_table
from mtlskit.gateway.metrics import METRIC_NAMES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _first_column(section: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


def test_the_configuration_reference_is_the_table_generated_from_the_model() -> None:
    # Keys, flags, defaults and meanings all come from the config fields' metadata; when
    # this fails, paste reference_table()'s output into docs/gateway.md.
    written = [line for line in _section("Configuration reference").splitlines() if line[:1] == "|"]
    assert written == reference_table().splitlines()


def test_documented_flags_are_the_flags_of_mtlskit_gateway() -> None:
    parser = argparse.ArgumentParser()
    groups = parser.add_subparsers()
    register(groups)
    real = {
        option
        for action in groups.choices["gateway"]._actions
        for option in action.option_strings
        if option.startswith("--")
    } - {"--help", "--config"}
    rows = re.findall(r"^\| `[^`]+` \| ([^|]+) \|", _section("Configuration reference"), re.M)
    documented = {flag.split()[0] for row in rows for flag in re.findall(r"`(--[^`]+)`", row)}
    assert documented == real


def test_metrics_are_documented() -> None:
    assert _first_column(_section("Metrics")) == set(METRIC_NAMES)
