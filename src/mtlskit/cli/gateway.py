"""`mtlskit gateway`: flags (mirroring the TOML keys) -> GatewayConfig -> run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtlskit.config import load_gateway_config, read_toml
from mtlskit.errors import ConfigError

__all__ = ["FLAG_KEYS", "build_config", "register"]

# flag dest -> (dotted TOML key, kind). The docs test checks this against the config model.
FLAG_KEYS: dict[str, tuple[str, str]] = {
    "listen": ("listen", "str"),
    "upstream": ("upstream", "str"),
    "mode": ("mode", "str"),
    "workers": ("workers", "int"),
    "status": ("status", "str"),
    "log_format": ("log_format", "str"),
    "access_log": ("access_log", "bool"),
    "uvloop": ("uvloop", "bool"),
    "reload_interval": ("reload_interval", "str"),
    "identity_headers": ("identity_headers", "str"),
    "cert": ("tls.cert", "path"),
    "key": ("tls.key", "path"),
    "client_ca": ("tls.client_ca", "path"),
    "crl": ("tls.crl", "paths"),
    "min_version": ("tls.min_version", "str"),
    "session_tickets": ("tls.session_tickets", "int"),
    "allow_all": ("policy.allow_all", "bool"),
    "allow_cn": ("policy.allow_cn", "list"),
    "allow_ou": ("policy.allow_ou", "list"),
    "allow_dns": ("policy.allow_dns", "list"),
    "allow_uri": ("policy.allow_uri", "list"),
    "handshake_timeout": ("limits.handshake_timeout", "str"),
    "header_timeout": ("limits.header_timeout", "str"),
    "idle_timeout": ("limits.idle_timeout", "str"),
    "upstream_connect_timeout": ("limits.upstream_connect_timeout", "str"),
    "upstream_timeout": ("limits.upstream_timeout", "str"),
    "drain_timeout": ("limits.drain_timeout", "str"),
    "max_header_bytes": ("limits.max_header_bytes", "int"),
    "max_connections": ("limits.max_connections", "int"),
    "backlog": ("limits.backlog", "int"),
    "upstream_keepalive": ("limits.upstream_keepalive", "int"),
    "upstream_keepalive_timeout": ("limits.upstream_keepalive_timeout", "str"),
}
_HELP = {
    "listen": "TLS listener host:port (e.g. 127.0.0.1:8443)",
    "upstream": "the workload: http://host:port, tcp://host:port or unix:/path",
    "mode": "http (parse requests, add identity headers) or tcp (byte pipe)",
    "workers": "worker processes sharing the port with SO_REUSEPORT (0 = one per core)",
    "status": "status listener host:port for /healthz, /readyz, /metrics",
    "log_format": "text or json",
    "reload_interval": "how often to look for changed files (0s: only on SIGHUP)",
    "identity_headers": "identity headers to add: xfcc, client-cert, xfcc,client-cert or none",
    "cert": "server chain: leaf first, then intermediates (all are sent)",
    "key": "server private key",
    "client_ca": "root CA(s) that client chains must lead to",
    "crl": "CRL of a client CA (repeatable); must be signed by a CA in --client-ca",
    "min_version": "lowest TLS version: 1.2 or 1.3",
    "session_tickets": "TLS 1.3 session tickets per handshake (0 disables resumption)",
    "allow_all": "admit any client whose certificate verifies (no identity rule)",
    "allow_cn": "admit this subject CN (repeatable)",
    "allow_ou": "admit this subject OU (repeatable)",
    "allow_dns": "admit this DNS SAN (repeatable)",
    "allow_uri": "admit this URI SAN; * is one path segment, ** any (repeatable)",
}


def register(groups: Any) -> None:
    """Add `mtlskit gateway`."""
    p = groups.add_parser(
        "gateway",
        help="run the mTLS gateway in front of a workload",
        description="Require and verify client certificates, authorize, forward the "
        "identity. Flags override the TOML file given with --config.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with the same settings")
    for dest, (dotted, kind) in FLAG_KEYS.items():
        flag = "--" + dest.replace("_", "-")
        help_text = _HELP.get(dest, f"[{dotted}]")
        if kind == "bool":
            p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, help=help_text)
        elif kind in ("list", "paths"):
            p.add_argument(flag, dest=dest, action="append", metavar="VALUE", help=help_text)
        elif kind == "int":
            p.add_argument(flag, dest=dest, type=_int(flag), metavar="N", help=help_text)
        else:
            p.add_argument(flag, dest=dest, metavar="VALUE", help=help_text)
    p.add_argument(
        "--header",
        action="append",
        metavar="NAME=TEMPLATE",
        help="add a header from %%DOWNSTREAM_PEER_...%% operators (repeatable) [headers]",
    )
    p.set_defaults(handler=cmd_gateway)


def _int(flag: str) -> Any:
    def parse(text: str) -> int:
        # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
        if not (text.isascii() and text.isdigit()):
            raise argparse.ArgumentTypeError(f"{flag} needs a non-negative integer")
        return int(text)

    return parse


def build_config(args: argparse.Namespace) -> Any:
    """Merge the TOML file (if any) with the flags given; flags win."""
    data: dict[str, Any] = {}
    base = Path()
    if args.config:
        path = Path(args.config)
        data = read_toml(path)
        base = path.parent
    for dest, (dotted, kind) in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if kind == "path":
            value = str(Path(value).resolve())
        elif kind == "paths":
            value = [str(Path(v).resolve()) for v in value]
        section, _, key = dotted.rpartition(".")
        target = data.setdefault(section, {}) if section else data
        if not isinstance(target, dict):
            raise ConfigError(
                f"'{section}' in --config must be a table", f"write it as a [{section}] section"
            )
        target[key] = value
    for item in args.header or []:
        name, sep, template = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"--header {item!r} is not NAME=TEMPLATE",
                "e.g. --header 'X-Client-CN=%DOWNSTREAM_PEER_SUBJECT%'",
            )
        data.setdefault("headers", {})[name.strip()] = template
    return load_gateway_config(data, base_dir=base)


def cmd_gateway(args: argparse.Namespace) -> int:
    """mtlskit gateway."""
    from mtlskit.gateway.run import run_gateway_process

    return run_gateway_process(build_config(args))
