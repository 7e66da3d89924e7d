"""A config key is one dataclass field: the parser, the flags and the docs row follow from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from mtlskit._config_keys import build, config_key, read_table, reference_rows, settings
from mtlskit._config_kinds import CHOICE, INT, STR
from mtlskit.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Toy:
    name: str = config_key(kind=STR, help="who")
    retries: int = config_key(3, kind=INT, minimum=1, why="0 never tries", doc="attempts")
    level: Literal["low", "high"] = config_key("low", kind=CHOICE, help="low or high")


def test_one_field_is_a_toml_key_a_flag_and_a_docs_row() -> None:
    assert [(s.dotted, s.flag, s.choices) for s in settings(Toy)] == [
        ("name", "--name", ()),
        ("retries", "--retries", ()),
        ("level", "--level", ("low", "high")),
    ]
    assert build(Toy, read_table(Toy, {"name": "x", "level": "high"}, Path())) == Toy(
        "x", 3, "high"
    )
    assert reference_rows(Toy)[2:] == [
        "| `name` | `--name` | required | who |",
        "| `retries` | `--retries` | `3` | attempts; at least 1 |",
        "| `level` | `--level` | `low` | low or high |",
    ]


@pytest.mark.parametrize(
    ("data", "message", "hint"),
    [
        ({}, "'name' is not set", "pass --name or set it in the file"),
        ({"name": "x", "nmae": 1}, "unknown key 'nmae'", "known keys: name, retries, level"),
        (
            {"name": "x", "retries": 0},
            "'retries' (--retries) must be at least 1, not 0",
            "0 never tries; set 1 or more, or leave it out for the default (3)",
        ),
        ({"name": "x", "level": "mid"}, "'level' (--level) is 'mid'", "use one of: low, high"),
    ],
)
def test_errors_name_the_key_and_its_flag(data: dict[str, object], message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(Toy, read_table(Toy, data, Path()))
    assert (info.value.message, info.value.hint) == (message, hint)


def test_a_field_that_is_not_a_key_is_refused() -> None:
    @dataclass(frozen=True)
    class Forgot:
        plain: int = 1

    with pytest.raises(TypeError, match=r"Forgot\.plain"):
        settings(Forgot)
