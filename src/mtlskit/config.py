"""The gateway's configuration: one tree of frozen dataclasses from defaults < TOML < flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mtlskit.durations import parse_duration
from mtlskit.errors import CertificateLoadError, ConfigError
from mtlskit.pki.files import read_file

__all__ = [
    "AcmeConfig",
    "GatewayConfig",
    "LimitsConfig",
    "PolicyConfig",
    "TLSConfig",
    "UpstreamAddress",
    "load_gateway_config",
    "parse_address",
    "parse_upstream",
    "reference_keys",
]

Mode = Literal["http", "tcp"]
LogFormat = Literal["text", "json"]
IDENTITY_HEADER_KINDS = ("xfcc", "client-cert")


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """Where the workload listens: tcp host:port or a unix socket path."""

    scheme: Literal["http", "tcp", "unix"]
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class AcmeConfig:
    """[tls] acme = {...}: get and renew the server certificate from an ACME CA.

    The certificate and key live in `dir` as server.chain.pem and server.key; tls.cert and
    tls.key point there and must not be set by hand.
    """

    directory: str
    domains: tuple[str, ...]
    dir: Path
    email: str | None = None
    http01: tuple[str, int] = ("0.0.0.0", 80)  # noqa: S104 - the CA connects from outside
    ca_bundle: Path | None = None


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """[tls]: the server's chain and key, the client CA, CRLs, protocol floor."""

    cert: Path
    key: Path
    client_ca: Path
    crl: tuple[Path, ...] = ()
    min_version: Literal["1.2", "1.3"] = "1.2"
    # OpenSSL sends 2 TLS 1.3 tickets per full handshake by default; resumption needs them.
    session_tickets: int = 2
    acme: AcmeConfig | None = None


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """[policy]: who may pass; rules are OR'd and an empty policy denies everyone."""

    allow_all: bool = False
    allow_cn: tuple[str, ...] = ()
    allow_ou: tuple[str, ...] = ()
    allow_dns: tuple[str, ...] = ()
    allow_uri: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when no rule would let anybody through."""
        return not (
            self.allow_all or self.allow_cn or self.allow_ou or self.allow_dns or self.allow_uri
        )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """[limits]: every wait and size is bounded, so a slow client never blocks others."""

    handshake_timeout: timedelta = timedelta(seconds=10)
    header_timeout: timedelta = timedelta(seconds=30)
    idle_timeout: timedelta = timedelta(seconds=300)
    upstream_connect_timeout: timedelta = timedelta(seconds=5)
    upstream_timeout: timedelta = timedelta(seconds=60)
    drain_timeout: timedelta = timedelta(seconds=20)
    max_header_bytes: int = 64 * 1024
    max_connections: int = 10_000
    # The kernel's accept queue (listen(2) backlog), as nginx's default; the kernel caps it
    # at net.core.somaxconn.
    backlog: int = 1024
    # Idle upstream connections kept for any client (HTTP mode; nginx's `keepalive 64`),
    # and how long one may wait (nginx's keepalive_timeout for upstreams is 60 s).
    upstream_keepalive: int = 64
    upstream_keepalive_timeout: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything `mtlskit gateway` needs; see docs/gateway.md for each key."""

    listen: tuple[str, int]
    upstream: UpstreamAddress
    tls: TLSConfig
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    mode: Mode = "http"
    identity_headers: tuple[str, ...] = ("xfcc",)
    headers: tuple[tuple[str, str], ...] = ()
    status: tuple[str, int] | None = None
    workers: int = 1  # load_gateway_config turns 0 (the default) into one per core
    log_format: LogFormat = "text"
    access_log: bool = True
    uvloop: bool = True
    reload_interval: timedelta = timedelta(seconds=2)


# key -> (kind, section). Kinds: str, int, bool, path, paths, strs, duration, ...
_TOP: dict[str, str] = {
    "listen": "address",
    "upstream": "upstream",
    "mode": "mode",
    "identity_headers": "identity_headers",
    "status": "address?",
    "workers": "int",
    "log_format": "log_format",
    "access_log": "bool",
    "uvloop": "bool",
    "reload_interval": "duration0",
}
_SECTIONS: dict[str, dict[str, str]] = {
    "tls": {
        "cert": "path",
        "key": "path",
        "client_ca": "path",
        "crl": "paths",
        "min_version": "min_version",
        "session_tickets": "int",
        "acme": "acme",
    },
    "policy": {
        "allow_all": "bool",
        "allow_cn": "strs",
        "allow_ou": "strs",
        "allow_dns": "strs",
        "allow_uri": "strs",
    },
    "limits": {f.name: "duration" if "timeout" in f.name else "int" for f in fields(LimitsConfig)},
}


def reference_keys() -> list[str]:
    """Every config key as a dotted path (the docs are tested against this list)."""
    keys = list(_TOP)
    for section, spec in _SECTIONS.items():
        keys.extend(f"{section}.{name}" for name, kind in spec.items() if kind != "acme")
    keys.append("headers.<NAME>")
    keys.extend(f"tls.acme.{name}" for name in _ACME_KEYS)
    return sorted(keys)


def _flag(dotted: str) -> str:
    return "--" + dotted.rsplit(".", 1)[-1].replace("_", "-")


def _where(dotted: str) -> str:
    return f"'{dotted}' ({_flag(dotted)})"


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
    """Read http://host:port, tcp://host:port or unix:/path (`what` names the flag or key).

    Raises:
        ConfigError: another scheme, a path, or a port that is missing (tcp), 0 or not
            a number up to 65535.
    """
    hint = "write http://127.0.0.1:8080, tcp://127.0.0.1:5432 or unix:/run/app.sock"
    if text.startswith("unix:"):
        path = text[len("unix:") :].removeprefix("//")
        if not path:
            raise ConfigError(f"{what} {text!r} has no socket path", hint)
        return UpstreamAddress("unix", path=path)
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed "["
        raise ConfigError(f"{what} {text!r} is not a URL ({exc})", hint) from exc
    if parts.scheme not in ("http", "tcp") or not parts.hostname:
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
    elif parts.scheme == "http":
        port = 80
    else:
        raise ConfigError(f"{what} {text!r} needs a port", hint)
    return UpstreamAddress(parts.scheme, host=parts.hostname, port=port)  # type: ignore[arg-type]


# The smallest value of each integer key that has one (others take any n >= 0), and why:
# for these keys 0 does not mean "unlimited", it means a gateway that refuses everyone.
_INT_MINIMUM: dict[str, tuple[int, str]] = {
    # nginx's client_header_buffer_size default (1k) is the buffer most request heads fit
    # in. Below that, a request line, Host and the usual few headers of a real client
    # (User-Agent, Accept, ...) already overflow and every request would get a 431.
    "limits.max_header_bytes": (1024, "a smaller head cannot carry a usual request"),
    "limits.max_connections": (1, "0 would refuse every connection"),
    # listen(2) takes 0, but then the kernel queues (almost) no connection to accept.
    "limits.backlog": (1, "the accept queue needs room for one connection"),
}


def _default(dotted: str) -> Any:
    section, _, name = dotted.rpartition(".")
    model = {"tls": TLSConfig, "limits": LimitsConfig}[section]
    return next(f.default for f in fields(model) if f.name == name)


def _value(kind: str, raw: Any, dotted: str, base: Path) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{_where(dotted)} must be {expected}, not {raw!r}", "")

    if kind == "acme":
        return _acme(raw, base)
    if kind == "bool":
        if not isinstance(raw, bool):
            raise bad("true or false")
        return raw
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise bad("a non-negative integer")
        minimum, why = _INT_MINIMUM.get(dotted, (0, ""))
        if raw < minimum:
            raise ConfigError(
                f"{_where(dotted)} must be at least {minimum}, not {raw}",
                f"{why}; set {minimum} or more, or leave it out for the default "
                f"({_default(dotted)})",
            )
        return raw
    if kind in ("duration", "duration0"):
        if not isinstance(raw, str):
            raise bad('a duration such as "30s"')
        return parse_duration(raw, what=_where(dotted), allow_zero=kind == "duration0")
    if kind in ("path", "paths", "strs"):
        items = raw if isinstance(raw, list) else [raw] if kind != "path" else raw
        if kind == "path":
            if not isinstance(raw, str) or not raw:
                raise bad("a file path")
            return base / os.path.expanduser(raw)
        if not all(isinstance(i, str) and i for i in items):
            raise bad("a list of strings")
        if kind == "paths":
            return tuple(base / os.path.expanduser(i) for i in items)
        return tuple(items)
    if not isinstance(raw, str):
        raise bad("a string")
    if kind == "address":
        return parse_address(raw, _where(dotted))
    if kind == "address?":
        return None if raw in ("", "off") else parse_address(raw, _where(dotted))
    if kind == "upstream":
        return parse_upstream(raw, _where(dotted))
    choices = {
        "mode": ("http", "tcp"),
        "log_format": ("text", "json"),
        "min_version": ("1.2", "1.3"),
    }.get(kind)
    if choices is not None:
        if raw not in choices:
            raise ConfigError(f"{_where(dotted)} is {raw!r}", f"use one of: {', '.join(choices)}")
        return raw
    if kind == "identity_headers":
        kinds = tuple(k.strip().lower() for k in raw.split(",") if k.strip())
        for k in kinds:
            if k not in IDENTITY_HEADER_KINDS and k != "none":
                raise ConfigError(
                    f"{_where(dotted)}: unknown identity header kind {k!r}",
                    "use xfcc, client-cert, both (xfcc,client-cert) or none",
                )
        return tuple(k for k in kinds if k != "none")
    raise AssertionError(kind)  # pragma: no cover


_ACME_KEYS = {
    "directory": "str",
    "domains": "strs",
    "dir": "path",
    "email": "str",
    "http01": "address",
    "ca_bundle": "path",
}


def _acme(raw: Any, base: Path) -> AcmeConfig:
    table = _section(raw, "tls.acme")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _ACME_KEYS:
            raise ConfigError(
                f"unknown key 'tls.acme.{key}'", f"known keys: {', '.join(_ACME_KEYS)}"
            )
        kind = _ACME_KEYS[key]
        if kind == "str":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"'tls.acme.{key}' must be a string", "")
            values[key] = value
        else:
            values[key] = _value(kind, value, f"tls.acme.{key}", base)
    for required in ("directory", "domains", "dir"):
        if required not in values:
            raise ConfigError(
                f"'tls.acme.{required}' is not set",
                "tls.acme needs directory (the ACME URL), domains and dir (where to keep "
                "the certificate)",
            )
    return AcmeConfig(**values)


def _section(raw: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{name}' must be a table ([{name}])", "")
    return raw


def load_gateway_config(data: Mapping[str, Any], *, base_dir: Path | None = None) -> GatewayConfig:
    """Build the config from a TOML-shaped mapping (file values merged with flags).

    Unknown keys are errors naming their dotted path; so are missing required keys.
    Relative paths are read relative to base_dir (the config file's folder).

    Raises:
        ConfigError: unknown key, wrong type, bad value, or a required key missing.
    """
    base = base_dir or Path()
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    headers: list[tuple[str, str]] = []
    for key, raw in data.items():
        if key in _SECTIONS:
            for sub, value in _section(raw, key).items():
                spec = _SECTIONS[key]
                if sub not in spec:
                    raise ConfigError(
                        f"unknown key '{key}.{sub}'", f"known keys in [{key}]: {', '.join(spec)}"
                    )
                sections[key][sub] = _value(spec[sub], value, f"{key}.{sub}", base)
        elif key == "headers":
            for name, template in _section(raw, "headers").items():
                if not isinstance(template, str):
                    raise ConfigError(f"'headers.{name}' must be a string template", "")
                headers.append((name, template))
        elif key in _TOP:
            top[key] = _value(_TOP[key], raw, key, base)
        else:
            raise ConfigError(
                f"unknown key '{key}'",
                f"known keys: {', '.join([*_TOP, *_SECTIONS, 'headers'])}",
            )
    for required in ("listen", "upstream"):
        if required not in top:
            raise ConfigError(
                f"'{required}' is not set", f"pass --{required} or set it in the file"
            )
    acme: AcmeConfig | None = sections["tls"].get("acme")
    if acme is not None:
        if "cert" in sections["tls"] or "key" in sections["tls"]:
            raise ConfigError(
                "tls.cert/tls.key and tls.acme are both set",
                f"with tls.acme the certificate lives in {acme.dir}; remove tls.cert and tls.key",
            )
        sections["tls"]["cert"] = acme.dir / "server.chain.pem"
        sections["tls"]["key"] = acme.dir / "server.key"
    for required in ("cert", "key", "client_ca"):
        if required not in sections["tls"]:
            flag = "--" + required.replace("_", "-")
            raise ConfigError(f"'tls.{required}' is not set", f"pass {flag} or set it in [tls]")
    policy = PolicyConfig(**sections["policy"])
    if policy.is_empty:
        raise ConfigError(
            "no allow rule: the gateway would refuse every client (it fails closed)",
            "add --allow-cn/--allow-ou/--allow-dns/--allow-uri, or --allow-all to admit any "
            "client with a certificate from --client-ca",
        )
    # --workers 0 or unset: one per core, as nginx's "worker_processes auto".
    workers = top.pop("workers", 0) or os.cpu_count() or 1
    upstream: UpstreamAddress = top["upstream"]
    mode = top.setdefault("mode", "tcp" if upstream.scheme in ("tcp",) else "http")
    if mode == "tcp" and upstream.scheme == "http":
        raise ConfigError("--mode tcp with an http:// upstream", "write it as tcp://host:port")
    if mode == "http" and upstream.scheme == "tcp":
        raise ConfigError("--mode http with a tcp:// upstream", "write it as http://host:port")
    return GatewayConfig(
        tls=TLSConfig(**sections["tls"]),
        policy=policy,
        limits=LimitsConfig(**sections["limits"]),
        headers=tuple(headers),
        workers=workers,
        **top,
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        ConfigError: missing, unreadable, not a regular file, over 1 MiB, not UTF-8, or
            unparsable (with the line TOML complains about).
    """
    try:
        data = read_file(path, "the gateway's TOML settings")
    except CertificateLoadError as exc:
        raise ConfigError(f"--config {exc.message}", exc.hint) from exc
    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--config {path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})",
            "TOML files are UTF-8 text; check that this is the config file",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: {exc}", "fix the TOML syntax at that line") from exc
