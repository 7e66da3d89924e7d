"""The gateway docs and the code agree: the config reference is generated, metrics listed."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

from mtlskit.cli.gateway import register
from mtlskit.config import load_gateway_config, reference_table
from mtlskit.gateway.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "gateway.md").read_text()


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


def test_the_readme_edge_example_is_a_valid_config() -> None:
    """The README's routes/servers example loads as it is written (fail-closed checks pass)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks, "the README has its TOML example"
    config = load_gateway_config(tomllib.loads(blocks[0]))
    assert config.tls.client_auth == "optional"
    assert [r.path for r in config.route][1] == ("/orders", "/orders/{*}")
    assert config.server[0].server_names == ("partners.example.com",)
