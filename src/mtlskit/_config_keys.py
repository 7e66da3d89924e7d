"""A config key described once, on its dataclass field: kind, flag, help, docs, and its parser.

Each key of the gateway's TOML file is a field of a frozen dataclass whose metadata is a
`Key` (made with `config_key()`); a sub-table such as `[tls]` is a field made with
`config_table()`. From that one description come the TOML parser (`read_table`, `build`),
the command-line flags (cli/gateway.py walks `settings()`) and the reference table in
docs/gateway.md (`reference_rows`). The kinds of value are in mtlskit._config_kinds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from mtlskit.errors import ConfigError

__all__ = [
    "Flag",
    "Key",
    "Kind",
    "Setting",
    "Table",
    "as_table",
    "build",
    "build_table",
    "config_key",
    "config_table",
    "config_tables",
    "read_table",
    "reference_rows",
    "require",
    "settings",
]

_META = "mtlskit.key"


class Flag(enum.Enum):
    """How the command line takes a key (the file takes every kind as a TOML value)."""

    VALUE = enum.auto()  # --key VALUE
    INT = enum.auto()  # --key N
    BOOL = enum.auto()  # --key / --no-key
    REPEAT = enum.auto()  # --key VALUE, repeatable: a list
    PAIRS = enum.auto()  # --header NAME=TEMPLATE, repeatable: a table of free names


@dataclass(frozen=True, slots=True)
class Kind:
    """What a key holds: how its TOML value is read, and how a flag takes it.

    Attributes:
        parse: (raw TOML value, the key, the config file's folder) -> the typed value.
        flag: how argparse takes it.
        metavar: the value's name in --help.
        paths: the values are file paths. Flags are resolved against the working
            directory, file values against the file's folder.
        show: how the docs print a default of this kind (inside backticks).
    """

    parse: Callable[[Any, Setting, Path], Any]
    flag: Flag = Flag.VALUE
    metavar: str = "VALUE"
    paths: bool = False
    show: Callable[[Any], str] = str


@dataclass(frozen=True, slots=True)
class Key:
    """The metadata of one config key (see `config_key()`)."""

    kind: Kind
    help: str = ""
    doc: str = ""
    default_doc: str = ""
    flag: str = ""
    minimum: int = 0
    why: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """The metadata of a sub-table field: its model, and whether only the file sets it."""

    model: type
    file_only: bool = False
    missing: str = ""
    many: bool = False  # an array of tables ([[route]]): a tuple of models


def config_key(
    default: Any = MISSING,
    *,
    kind: Kind,
    help: str = "",
    doc: str = "",
    default_doc: str = "",
    flag: str = "",
    minimum: int = 0,
    why: str = "",
) -> Any:
    """A dataclass field that is a config key; no default means the key is required.

    Args:
        default: the value when neither the file nor a flag sets it.
        kind: what the key holds (ADDRESS, INT, DURATION, ...).
        help: the flag's --help text; also the docs' meaning unless `doc` is given.
            Without it --help shows the dotted key.
        doc: the meaning in the docs' reference table, where it says more than --help.
        default_doc: the docs' default where the value alone would mislead ("one per core").
        flag: the flag, when it is not the key's name (`--header` for `headers`).
        minimum: the smallest value of an INT key.
        why: why smaller values are refused (the hint of that error).
    """
    meta = Key(kind, help, doc, default_doc, flag, minimum, why)
    return field(default=default, metadata={_META: meta})


def config_table(
    model: type,
    *,
    default: Any = MISSING,
    factory: Any = MISSING,
    file_only: bool = False,
    missing: str = "",
) -> Any:
    """A dataclass field that is a sub-table (`[tls]`, `tls.acme = {...}`) of keys.

    Args:
        model: the dataclass whose key fields make up the table.
        default: the value when the table is absent (None: the feature is off).
        factory: makes the value when the table is absent (the model's defaults).
        file_only: no flag sets its keys; the docs say "(file only)".
        missing: the hint when one of its required keys is not set.
    """
    meta = Table(model, file_only, missing)
    return field(default=default, default_factory=factory, metadata={_META: meta})


def config_tables(model: type) -> Any:
    """A dataclass field that is an array of tables (`[[route]]`), only in the file.

    Its value is a tuple of `model`, in file order; errors name an entry `route[2].path`
    (counted from 1, as a person reads the file).
    """
    return field(default=(), metadata={_META: Table(model, file_only=True, many=True)})


@dataclass(frozen=True, slots=True)
class Setting:
    """One key as found in the model: its dotted path, metadata and default."""

    dotted: str
    key: Key
    default: Any  # MISSING when the key is required
    choices: tuple[str, ...] = ()  # of a key typed as a Literal
    file_only: bool = False
    required_with: str = ""  # required only when this optional table is set

    @property
    def name(self) -> str:
        """The key's name inside its table (the dataclass field)."""
        return self.dotted.rpartition(".")[2]

    @property
    def flag(self) -> str:
        """The command-line flag, or "" for a key only the file can set."""
        if self.file_only:
            return ""
        return self.key.flag or "--" + self.name.replace("_", "-")

    @property
    def where(self) -> str:
        """How errors name the key: `'tls.crl' (--crl)`."""
        return f"'{self.dotted}' ({self.flag})" if self.flag else f"'{self.dotted}'"

    @property
    def required(self) -> bool:
        """True when the key has no default."""
        return self.default is MISSING


@dataclass(frozen=True, slots=True)
class _Section:
    dotted: str
    table: Table
    optional: bool  # the field's default is None: the table turns a feature on


def _default(f: Field[Any]) -> Any:
    return f.default if f.default_factory is MISSING else f.default_factory()


@cache
def _spec(model: type, prefix: str = "", file_only: bool = False) -> dict[str, Setting | _Section]:
    """The keys of one table by name, in field order (fields without metadata are not keys)."""
    hints = get_type_hints(model)
    spec: dict[str, Setting | _Section] = {}
    for f in fields(model):
        meta = f.metadata.get(_META)
        dotted = f"{prefix}.{f.name}" if prefix else f.name
        if isinstance(meta, Table):
            spec[f.name] = _Section(dotted, meta, f.default is None)
        elif isinstance(meta, Key):
            spec[f.name] = Setting(dotted, meta, _default(f), _choices(hints[f.name]), file_only)
        elif f.init:
            # A field the parser, the flags and the docs would all silently skip.
            raise TypeError(f"{model.__name__}.{f.name}: make it a config_key() or config_table()")
    return spec


def _choices(hint: Any) -> tuple[str, ...]:
    """The values of a Literal type, also inside `Literal[...] | None`."""
    if get_origin(hint) is Literal:
        return get_args(hint)
    for arg in get_args(hint):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return ()


def settings(model: type) -> list[Setting]:
    """Every key of `model`, depth-first in field order (the order of --help and the docs)."""
    return list(_walk(model, "", False, ""))


def _walk(model: type, prefix: str, file_only: bool, within: str) -> Iterator[Setting]:
    for item in _spec(model, prefix, file_only).values():
        if isinstance(item, _Section):
            # The required keys of an optional table (tls.acme) are required only with it,
            # and those of an array of tables in each of its entries.
            dotted = item.dotted + "[]" if item.table.many else item.dotted
            if item.table.many:
                inner = dotted
            else:
                inner = dotted.rpartition(".")[2] if item.optional else within
            only = file_only or item.table.file_only  # inside [[server]]: file only too
            yield from _walk(item.table.model, dotted, only, inner)
        else:
            yield replace(item, required_with=within) if within and item.required else item


def as_table(raw: Any, name: str) -> Mapping[str, Any]:
    """The TOML table `raw`, or an error naming it."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{name}' must be a table ([{name}])", "")
    return raw


def read_table(
    model: type, raw: Mapping[str, Any], base: Path, prefix: str = "", table: Table | None = None
) -> dict[str, Any]:
    """Parse a TOML table into typed values by field name; sub-tables stay dicts.

    Raises:
        ConfigError: an unknown key (named by its dotted path), a wrong type or a bad value.
    """
    spec = _spec(model, prefix, _file_only(table))
    values: dict[str, Any] = {}
    for name, value in raw.items():
        item = spec.get(name)
        if item is None:
            known = f"known keys in [{prefix}]" if prefix else "known keys"
            dotted = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"unknown key '{dotted}'", f"{known}: {', '.join(spec)}")
        if isinstance(item, _Section) and item.table.many:
            values[name] = _read_many(item, value, base)
        elif isinstance(item, _Section):
            sub = as_table(value, item.dotted)
            values[name] = read_table(item.table.model, sub, base, item.dotted, item.table)
        else:
            values[name] = item.key.kind.parse(value, item, base)
    return values


def _read_many(item: _Section, raw: Any, base: Path) -> list[dict[str, Any]]:
    name = item.dotted.rpartition(".")[2]
    if not isinstance(raw, list) or not all(isinstance(entry, Mapping) for entry in raw):
        raise ConfigError(
            f"'{item.dotted}' must be an array of tables", f"write each one as a [[{name}]] section"
        )
    return [
        read_table(item.table.model, entry, base, f"{item.dotted}[{i}]", item.table)
        for i, entry in enumerate(raw, 1)
    ]


def _file_only(table: Table | None) -> bool:
    return table is not None and table.file_only


def require(
    model: type, values: Mapping[str, Any], prefix: str = "", table: Table | None = None
) -> None:
    """Check that every required key of one table is set.

    Raises:
        ConfigError: the first required key missing, with the flag that sets it.
    """
    for item in _spec(model, prefix, _file_only(table)).values():
        if isinstance(item, Setting) and item.required and item.name not in values:
            where = f"[{prefix}]" if prefix else "the file"
            how = f"pass {item.flag} or set it" if item.flag else "set it"
            hint = table.missing if table is not None and table.missing else f"{how} in {where}"
            raise ConfigError(f"'{item.dotted}' is not set", hint)


def build(
    model: type, values: Mapping[str, Any], prefix: str = "", table: Table | None = None
) -> Any:
    """The model from parsed values (sub-tables built the same way; built objects kept).

    Raises:
        ConfigError: a required key is not set.
    """
    require(model, values, prefix, table)
    kwargs: dict[str, Any] = {}
    for name, item in _spec(model, prefix, _file_only(table)).items():
        if isinstance(item, _Section) and item.table.many:
            entries = values.get(name, ())
            kwargs[name] = tuple(
                entry
                if isinstance(entry, item.table.model)
                else build(item.table.model, entry, f"{item.dotted}[{i}]", item.table)
                for i, entry in enumerate(entries, 1)
            )
        elif isinstance(item, _Section):
            value = values.get(name, MISSING)
            if value is MISSING and not item.optional:
                value = {}  # an absent table: its defaults, or an error for its required keys
            if isinstance(value, Mapping):
                value = build(item.table.model, value, item.dotted, item.table)
            if value is not MISSING:
                kwargs[name] = value
        elif name in values:
            kwargs[name] = values[name]
    return model(**kwargs)


def build_table(model: type, name: str, values: Mapping[str, Any], prefix: str = "") -> Any:
    """The sub-table `name` of `model` (at `prefix`) from its parsed values.

    Raises:
        ConfigError: one of its required keys is not set.
    """
    item = _spec(model, prefix)[name]
    assert isinstance(item, _Section), name  # noqa: S101 - a programming error
    return build(item.table.model, values, item.dotted, item.table)


# -- the docs' reference table -----------------------------------------------------------------
def reference_rows(model: type) -> list[str]:
    """The markdown rows `| key | flag | default | meaning |` of every key of `model`."""
    rows = ["| key | flag | default | meaning |", "|---|---|---|---|"]
    for s in settings(model):
        named = s.key.kind.flag is Flag.PAIRS
        dotted = f"{s.dotted}.<NAME>" if named else s.dotted
        if not s.flag:
            flag = "(file only)"
        elif s.key.kind.flag is Flag.BOOL:
            flag = f"`{s.flag}` / `--no-{s.flag[2:]}`"
        elif named:
            flag = f"`{s.flag} {s.key.kind.metavar}`"
        else:
            flag = f"`{s.flag}`"
        meaning = s.key.doc or s.key.help
        if s.key.minimum:
            meaning += f"; at least {s.key.minimum}"
        rows.append(f"| `{dotted}` | {flag} | {_show_default(s)} | {meaning} |")
    return rows


def _show_default(s: Setting) -> str:
    value = s.default
    if s.key.default_doc:
        return s.key.default_doc
    if s.required and s.required_with.endswith("[]"):
        return f"required in each `[[{s.required_with.replace('[]', '')}]]`"
    if s.required:
        return f"required with {s.required_with}" if s.required_with else "required"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == ():
        return "none"
    return f"`{s.key.kind.show(value)}`"
