"""The kinds of config value (ADDRESS, INT, DURATION, ...): how each is read from TOML.

Each kind is a parser plus how a flag takes it (mtlskit._config_keys.Kind); the errors
name the key and its flag. Pure: no files are read here, paths are only joined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mtlskit._config_keys import Flag, Kind, Setting, as_table
from mtlskit.durations import parse_duration
from mtlskit.errors import ConfigError

__all__ = [
    "ADDRESS",
    "ALPN",
    "BOOL",
    "CHOICE",
    "DURATION",
    "DURATION_OR_ZERO",
    "HTTP_ALPN",
    "IDENTITY_HEADERS",
    "INT",
    "OPTIONAL_ADDRESS",
    "PATH",
    "PATHS",
    "STR",
    "STRS",
    "TEMPLATES",
    "UPSTREAM",
    "UpstreamAddress",
    "parse_address",
    "parse_upstream",
    "resolve_protocols",
]

IDENTITY_HEADER_KINDS = ("xfcc", "client-cert")
# ALPN protocol IDs the HTTP mode can speak to clients (RFC 7301; IANA's registry names).
HTTP_ALPN = ("h2", "http/1.1")


def _bad(s: Setting, raw: Any, expected: str) -> ConfigError:
    return ConfigError(f"{s.where} must be {expected}, not {raw!r}", "")


def _string(raw: Any, s: Setting) -> str:
    if not isinstance(raw, str):
        raise _bad(s, raw, "a string")
    return raw


def _parse_str(raw: Any, s: Setting, base: Path) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{s.where} must be a string", "")
    return raw


def _parse_bool(raw: Any, s: Setting, base: Path) -> bool:
    if not isinstance(raw, bool):
        raise _bad(s, raw, "true or false")
    return raw


def _parse_int(raw: Any, s: Setting, base: Path) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise _bad(s, raw, "a non-negative integer")
    # For keys with a minimum, 0 does not mean "unlimited": it means a gateway that
    # refuses everyone; the field's `why` says what the smallest value still allows.
    if raw < s.key.minimum:
        raise ConfigError(
            f"{s.where} must be at least {s.key.minimum}, not {raw}",
            f"{s.key.why}; set {s.key.minimum} or more, or leave it out for the default "
            f"({s.default})",
        )
    return raw


def _duration(allow_zero: bool) -> Callable[[Any, Setting, Path], timedelta]:
    def parse(raw: Any, s: Setting, base: Path) -> timedelta:
        if not isinstance(raw, str):
            raise _bad(s, raw, 'a duration such as "30s"')
        return parse_duration(raw, what=s.where, allow_zero=allow_zero)

    return parse


def _strings(raw: Any, s: Setting) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]  # one string is a list of one
    if not all(isinstance(i, str) and i for i in items):
        raise _bad(s, raw, "a list of strings")
    return items


def _parse_path(raw: Any, s: Setting, base: Path) -> Path:
    if not isinstance(raw, str) or not raw:
        raise _bad(s, raw, "a file path")
    return base / Path(raw).expanduser()


def _parse_paths(raw: Any, s: Setting, base: Path) -> tuple[Path, ...]:
    return tuple(base / Path(i).expanduser() for i in _strings(raw, s))


def _parse_strs(raw: Any, s: Setting, base: Path) -> tuple[str, ...]:
    return tuple(_strings(raw, s))


def _parse_choice(raw: Any, s: Setting, base: Path) -> str:
    text = _string(raw, s)
    if text not in s.choices:
        raise ConfigError(f"{s.where} is {text!r}", f"use one of: {', '.join(s.choices)}")
    return text


def _parse_address(raw: Any, s: Setting, base: Path) -> tuple[str, int]:
    return parse_address(_string(raw, s), s.where)


def _parse_optional_address(raw: Any, s: Setting, base: Path) -> tuple[str, int] | None:
    text = _string(raw, s)
    return None if text in ("", "off") else parse_address(text, s.where)


def _parse_upstream(raw: Any, s: Setting, base: Path) -> UpstreamAddress:
    return parse_upstream(_string(raw, s), s.where)


def _parse_alpn(raw: Any, s: Setting, base: Path) -> tuple[str, ...]:
    protocols = tuple(_strings(raw, s))
    for proto in protocols:
        # An ALPN ID is 1-255 bytes (RFC 7301 3.1); the HTTP mode checks the names it speaks.
        if len(proto.encode()) > 255 or not proto.isascii():
            raise _bad(s, raw, "a list of ALPN protocol IDs (ASCII, at most 255 bytes each)")
    return protocols


def _parse_identity_headers(raw: Any, s: Setting, base: Path) -> tuple[str, ...]:
    kinds = tuple(k.strip().lower() for k in _string(raw, s).split(",") if k.strip())
    for k in kinds:
        if k not in IDENTITY_HEADER_KINDS and k != "none":
            raise ConfigError(
                f"{s.where}: unknown identity header kind {k!r}",
                "use xfcc, client-cert, both (xfcc,client-cert) or none",
            )
    return tuple(k for k in kinds if k != "none")


def _parse_templates(raw: Any, s: Setting, base: Path) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, template in as_table(raw, s.dotted).items():
        if not isinstance(template, str):
            raise ConfigError(f"'{s.dotted}.{name}' must be a string template", "")
        pairs.append((name, template))
    return tuple(pairs)


def _show_address(value: tuple[str, int]) -> str:
    return f"{value[0]}:{value[1]}"


def _show_seconds(value: timedelta) -> str:
    return f"{int(value.total_seconds())}s"


STR = Kind(_parse_str)
BOOL = Kind(_parse_bool, Flag.BOOL)
INT = Kind(_parse_int, Flag.INT, metavar="N")  # n >= 0, or >= the key's minimum
DURATION = Kind(_duration(allow_zero=False), show=_show_seconds)  # "30s"; never 0
DURATION_OR_ZERO = Kind(_duration(allow_zero=True), show=_show_seconds)  # "0s" switches off
PATH = Kind(_parse_path, paths=True)
PATHS = Kind(_parse_paths, Flag.REPEAT, paths=True)
STRS = Kind(_parse_strs, Flag.REPEAT)
CHOICE = Kind(_parse_choice)  # one of the values of the field's Literal type
ADDRESS = Kind(_parse_address, show=_show_address)  # host:port
OPTIONAL_ADDRESS = Kind(_parse_optional_address, show=_show_address)  # host:port, or off
UPSTREAM = Kind(_parse_upstream)
ALPN = Kind(_parse_alpn, Flag.REPEAT, show=lambda v: ", ".join(f'"{p}"' for p in v))
IDENTITY_HEADERS = Kind(_parse_identity_headers, show=",".join)
TEMPLATES = Kind(_parse_templates, Flag.PAIRS, metavar="NAME=TEMPLATE")  # [headers] NAME = "..."


# -- addresses ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """Where the workload listens: tcp host:port or a unix socket path.

    `h2c` is HTTP/2 over cleartext TCP (RFC 9113 3.3, prior knowledge), as gRPC needs.
    """

    scheme: Literal["http", "h2c", "tcp", "unix"]
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        return f"{self.scheme}://{self.host}:{self.port}"


def _port(digits: str, text: str, what: str, hint: str) -> int:
    """Read the port of `text` (`what` names the flag or key): a number from 0 to 65535."""
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (digits.isascii() and digits.isdigit()):
        raise ConfigError(f"{what} {text!r}: port {digits!r} is not a number", hint)
    port = int(digits)
    if port > 65535:
        raise ConfigError(f"{what} {text!r}: port {port} is out of range", hint)
    return port


def parse_address(text: str, what: str) -> tuple[str, int]:
    """Read "host:port" (or "[v6]:port", or ":port" for all interfaces); port 0 is any.

    Raises:
        ConfigError: not host:port, or the port is not a number up to 65535.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port:
        raise ConfigError(f"{what} {text!r} is not host:port", "write e.g. 127.0.0.1:8443")
    hint = "a port is a number from 1 to 65535, or 0 to take any free port"
    number = _port(port, text, what, hint)
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - an explicit ":port" asks for all
    return host, number


def parse_upstream(text: str, what: str = "upstream") -> UpstreamAddress:
    """Read http://, h2c://host:port, tcp://host:port or unix:/path (`what`: the flag or key).

    Raises:
        ConfigError: another scheme, a path, or a port that is missing (tcp), 0 or not
            a number up to 65535.
    """
    hint = (
        "write http://127.0.0.1:8080, h2c://127.0.0.1:50051, tcp://127.0.0.1:5432 or "
        "unix:/run/app.sock"
    )
    if text.startswith("unix:"):
        path = text[len("unix:") :].removeprefix("//")
        if not path:
            raise ConfigError(f"{what} {text!r} has no socket path", hint)
        return UpstreamAddress("unix", path=path)
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed "["
        raise ConfigError(f"{what} {text!r} is not a URL ({exc})", hint) from exc
    if parts.scheme not in ("http", "h2c", "tcp") or not parts.hostname:
        raise ConfigError(f"{what} {text!r} is not a supported address", hint)
    if parts.path not in ("", "/"):
        raise ConfigError(f"{what} {text!r} has a path; paths are passed through as sent", hint)
    # Not parts.port: it raises ValueError past 65535, and its 0 would be taken for "none".
    after_host = parts.netloc.rpartition("@")[2].rpartition("]")[2]  # past any [v6]
    _, sep, digits = after_host.rpartition(":")
    if sep and digits:
        port = _port(digits, text, what, "a port is a number from 1 to 65535")
        if port == 0:
            raise ConfigError(
                f"{what} {text!r}: port 0 is not a port a workload can listen on",
                f"give the port the workload listens on, e.g. {parts.scheme}://127.0.0.1:8080",
            )
    elif parts.scheme in ("http", "h2c"):
        port = 80
    else:
        raise ConfigError(f"{what} {text!r} needs a port", hint)
    return UpstreamAddress(parts.scheme, host=parts.hostname, port=port)  # type: ignore[arg-type]


def resolve_protocols(values: dict[str, Any], mode: str, upstream: UpstreamAddress) -> None:
    """Fill in upstream_protocol and tls.alpn from the mode and the upstream, or refuse.

    Raises:
        ConfigError: a protocol the mode or the upstream's scheme contradicts.
    """
    protocol = values.get("upstream_protocol")
    implied = {"h2c": "h2c", "http": "http/1.1"}.get(upstream.scheme)
    if mode == "tcp":
        if protocol is not None:
            raise ConfigError(
                "upstream_protocol is set in TCP mode", "TCP mode relays bytes: remove it"
            )
        if upstream.scheme == "h2c":
            raise ConfigError("--mode tcp with an h2c:// upstream", "write it as tcp://host:port")
    elif implied is not None and protocol not in (None, implied):
        raise ConfigError(
            f"upstream_protocol = {protocol!r} with a {upstream.scheme}:// upstream",
            f"the scheme says {implied}: leave upstream_protocol out, or write "
            f"{'h2c' if protocol == 'h2c' else 'http'}://{upstream.host}:{upstream.port}",
        )
    if mode == "http":
        values["upstream_protocol"] = protocol or implied or "http/1.1"
    tls = values["tls"]
    alpn = tls.get("alpn")
    if alpn is None:
        tls["alpn"] = HTTP_ALPN if mode == "http" else ()
    elif mode == "http":
        unknown = [p for p in alpn if p not in HTTP_ALPN]
        if unknown or not alpn:
            raise ConfigError(
                f"'tls.alpn' (--alpn): HTTP mode speaks h2 and http/1.1, not {unknown}",
                'write alpn = ["h2", "http/1.1"], or ["http/1.1"] to turn HTTP/2 off',
            )
