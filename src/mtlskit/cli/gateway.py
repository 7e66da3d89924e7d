"""`mtlskit gateway`: flags (mirroring the TOML keys) -> GatewayConfig -> run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtlskit._config_keys import Flag, Setting
from mtlskit.config import GatewayConfig, gateway_settings, load_gateway_config, read_toml
from mtlskit.errors import ConfigError

__all__ = ["build_config", "register"]


def register(groups: Any) -> None:
    """Add `mtlskit gateway`: one flag per config key that has one (see mtlskit.config)."""
    p = groups.add_parser(
        "gateway",
        help="run the mTLS gateway in front of a workload",
        description="Require and verify client certificates, authorize, forward the "
        "identity. Flags override the TOML file given with --config.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with the same settings")
    for s in gateway_settings():
        if s.flag:
            p.add_argument(s.flag, dest=s.dotted, **_argument(s))
    p.set_defaults(handler=cmd_gateway)


def _argument(s: Setting) -> dict[str, Any]:
    # argparse reads "%" in help as a format; the help of [headers] names %OPERATORS%.
    options: dict[str, Any] = {"help": (s.key.help or f"[{s.dotted}]").replace("%", "%%")}
    form = s.key.kind.flag
    if form is Flag.BOOL:
        return {**options, "action": argparse.BooleanOptionalAction}
    options["metavar"] = s.key.kind.metavar
    if form in (Flag.REPEAT, Flag.PAIRS):
        options["action"] = "append"
    elif form is Flag.INT:
        options["type"] = _int(s.flag)
    return options


def _int(flag: str) -> Any:
    def parse(text: str) -> int:
        # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
        if not (text.isascii() and text.isdigit()):
            raise argparse.ArgumentTypeError(f"{flag} needs a non-negative integer")
        return int(text)

    return parse


def build_config(args: argparse.Namespace) -> GatewayConfig:
    """Merge the TOML file (if any) with the flags given; flags win."""
    data: dict[str, Any] = {}
    base = Path()
    if args.config:
        path = Path(args.config)
        data = read_toml(path)
        base = path.parent
    for s in gateway_settings():
        value: Any = getattr(args, s.dotted, None) if s.flag else None
        if value is None:
            continue
        if s.key.kind.paths:
            # Flags name files from the working directory; the file's own are relative to
            # the file, so a flag's path is made absolute before it joins them.
            value = (
                [str(Path(v).resolve()) for v in value]
                if isinstance(value, list)
                else str(Path(value).resolve())
            )
        target = data
        for part in s.dotted.split(".")[:-1]:
            target = _table(target, part)
        if s.key.kind.flag is Flag.PAIRS:
            _table(target, s.name).update(_pairs(s.flag, value))
        else:
            target[s.name] = value
    return load_gateway_config(data, base_dir=base)


def _table(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """The table `name` of the TOML data, made if the file has none."""
    target = parent.setdefault(name, {})
    if not isinstance(target, dict):
        raise ConfigError(
            f"'{name}' in --config must be a table", f"write it as a [{name}] section"
        )
    return target


def _pairs(flag: str, items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, template = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"{flag} {item!r} is not NAME=TEMPLATE",
                "e.g. --header 'X-Client-CN=%DOWNSTREAM_PEER_SUBJECT%'",
            )
        pairs[name.strip()] = template
    return pairs


def cmd_gateway(args: argparse.Namespace) -> int:
    """mtlskit gateway."""
    from mtlskit.gateway.run import run_gateway_process

    return run_gateway_process(build_config(args))
