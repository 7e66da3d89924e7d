"""The gateway's configuration: one tree of frozen dataclasses from defaults < TOML < flags.

Each key is described once, by its field (`config_key(...)`: kind, help, docs); the TOML
parser, the flags of `mtlskit gateway` and the reference table in docs/gateway.md all come
from these fields (mtlskit._config_keys; the kinds of value are in mtlskit._config_kinds).
`[policy]` is mtlskit.policy.AccessPolicy itself, whose fields are keys the same way.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from mtlskit._config_acme import AcmeConfig
from mtlskit._config_keys import (
    Setting,
    build,
    build_table,
    config_key,
    config_table,
    config_tables,
    read_table,
    reference_rows,
    require,
    settings,
)
from mtlskit._config_kinds import (
    ADDRESS,
    BOOL,
    CHOICE,
    DURATION_OR_ZERO,
    IDENTITY_HEADERS,
    INT,
    OPTIONAL_ADDRESS,
    PATH,
    STRS,
    TEMPLATES,
    UPSTREAM,
    UpstreamAddress,
    parse_address,
    parse_upstream,
    resolve_protocols,
)
from mtlskit._config_limits import LimitsConfig
from mtlskit._config_tls import TLSConfig
from mtlskit.errors import CertificateLoadError, ConfigError
from mtlskit.policy import AccessPolicy
from mtlskit.sites import (
    RouteConfig,
    ServerConfig,
    check_routes,
    check_server_name,
)

__all__ = [
    "AcmeConfig",
    "GatewayConfig",
    "LimitsConfig",
    "RouteConfig",
    "ServerConfig",
    "StatusTLSConfig",
    "TLSConfig",
    "UpstreamAddress",
    "acme_configs",
    "gateway_settings",
    "load_gateway_config",
    "parse_address",
    "parse_upstream",
    "read_toml",
    "reference_table",
]

Mode = Literal["http", "tcp"]
UpstreamProtocol = Literal["http/1.1", "h2c"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class StatusTLSConfig:
    """[status_tls]: mTLS on the status listener (required when it is not on loopback).

    A table of its own, not `[status]`: `status = "host:port"` is already a top-level key.
    The listener presents the gateway's own [tls] certificate.
    """

    client_ca: Path | None = config_key(
        None,
        kind=PATH,
        flag="--status-client-ca",
        help="CA(s) whose clients may read the status listener (turns on mTLS there)",
        doc="root CA(s) of the clients that may read the status listener; set, the listener "
        "speaks TLS with the [tls] certificate and requires a client certificate. Required "
        "when `status` is not a loopback address",
    )
    allow_cn: tuple[str, ...] = config_key(
        (), kind=STRS, flag="--status-allow-cn", help="admit this CN to the status listener"
    )
    allow_ou: tuple[str, ...] = config_key(
        (), kind=STRS, flag="--status-allow-ou", help="admit this OU to the status listener"
    )
    allow_dns: tuple[str, ...] = config_key(
        (), kind=STRS, flag="--status-allow-dns", help="admit this DNS SAN to the status listener"
    )
    allow_uri: tuple[str, ...] = config_key(
        (),
        kind=STRS,
        flag="--status-allow-uri",
        help="admit this URI SAN to the status listener (* one segment, ** any)",
    )

    @property
    def policy(self) -> AccessPolicy:
        """The allow rules as a policy (empty: denies everyone)."""
        return AccessPolicy(
            allow_cn=self.allow_cn,
            allow_ou=self.allow_ou,
            allow_dns=self.allow_dns,
            allow_uri=self.allow_uri,
        )


# kw_only: the fields are in the order of --help and the docs, tables after the top-level
# keys they follow there, whatever has a default.
@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Everything `mtlskit gateway` needs; see docs/gateway.md for each key."""

    listen: tuple[str, int] = config_key(
        kind=ADDRESS,
        help="TLS listener host:port (e.g. 127.0.0.1:8443)",
        doc="TLS listener, `host:port` (`[::1]:8443` for IPv6, `:8443` for all)",
    )
    upstream: UpstreamAddress = config_key(
        kind=UPSTREAM,
        help="the workload: http://host:port, h2c://host:port, tcp://host:port or unix:/path",
        doc="the workload: `http://host:port` (HTTP/1.1), `h2c://host:port` (HTTP/2 "
        "cleartext, for gRPC), `tcp://host:port` or `unix:/path`",
    )
    # load_gateway_config sets it from the scheme (h2c:// speaks h2c, http:// HTTP/1.1).
    upstream_protocol: UpstreamProtocol = config_key(
        "http/1.1",
        kind=CHOICE,
        default_doc="from upstream",
        help="what a unix: upstream speaks: http/1.1 or h2c",
        doc="what the workload speaks: `http/1.1` or `h2c` (HTTP/2 cleartext); set it for a "
        "`unix:` upstream, the scheme says it for the others",
    )
    # load_gateway_config picks tcp for a tcp:// upstream, http otherwise.
    mode: Mode = config_key(
        "http",
        kind=CHOICE,
        default_doc="from upstream",
        help="http (parse requests, add identity headers) or tcp (byte pipe)",
        doc="`http` (parse requests, add identity headers) or `tcp` (byte pipe)",
    )
    # 0, the default: one per core, as nginx's "worker_processes auto"; load_gateway_config
    # turns it into os.cpu_count(), so a loaded config always says how many.
    workers: int = config_key(
        0,
        kind=INT,
        default_doc="one per core",
        help="worker processes sharing the port with SO_REUSEPORT (0 = one per core)",
        doc="processes sharing the port with SO_REUSEPORT",
    )
    status: tuple[str, int] | None = config_key(
        None,
        kind=OPTIONAL_ADDRESS,
        default_doc="off",
        help="status listener host:port: the status page /, /status.json, /healthz, "
        "/readyz, /metrics",
        doc="status listener `host:port`: the status page `/` and `/status.json`, "
        "`/healthz`, `/readyz`, `/metrics`; off loopback it needs `[status_tls]`",
    )
    status_tls: StatusTLSConfig = config_table(StatusTLSConfig, factory=StatusTLSConfig)
    log_format: LogFormat = config_key(
        "text", kind=CHOICE, help="text or json", doc="`text` or `json`"
    )
    access_log: bool = config_key(True, kind=BOOL, doc="one line per request")
    uvloop: bool = config_key(True, kind=BOOL, doc="run on uvloop when installed")
    reload_interval: timedelta = config_key(
        timedelta(seconds=2),
        kind=DURATION_OR_ZERO,
        help="how often to look for changed files (0s: only on SIGHUP)",
        doc="how often to look for changed files; `0s`: only on SIGHUP",
    )
    identity_headers: tuple[str, ...] = config_key(
        ("xfcc",),
        kind=IDENTITY_HEADERS,
        help="identity headers to add: xfcc, client-cert, xfcc,client-cert or none",
        doc="`xfcc`, `client-cert` (RFC 9440), both comma-separated, or `none`",
    )
    tls: TLSConfig = config_table(TLSConfig)
    policy: AccessPolicy = config_table(AccessPolicy, factory=AccessPolicy)
    limits: LimitsConfig = config_table(LimitsConfig, factory=LimitsConfig)
    headers: tuple[tuple[str, str], ...] = config_key(
        (),
        kind=TEMPLATES,
        flag="--header",
        help="add a header from %DOWNSTREAM_PEER_...% operators (repeatable) [headers]",
        doc="custom identity headers from `%DOWNSTREAM_PEER_...%` operators",
    )
    route: tuple[RouteConfig, ...] = config_tables(RouteConfig)
    server: tuple[ServerConfig, ...] = config_tables(ServerConfig)


def acme_configs(config: GatewayConfig) -> list[AcmeConfig]:
    """Every ACME certificate the gateway keeps: the top-level one's and each server's."""
    found = [config.tls.acme] + [server.acme for server in config.server]
    return [acme for acme in found if acme is not None]


def gateway_settings() -> list[Setting]:
    """Every key of the gateway's config, in the order of --help and the docs."""
    return settings(GatewayConfig)


def reference_table() -> str:
    """The docs' "Configuration reference" table (markdown), generated from the fields."""
    return "\n".join(reference_rows(GatewayConfig)) + "\n"


def load_gateway_config(data: Mapping[str, Any], *, base_dir: Path | None = None) -> GatewayConfig:
    """Build the config from a TOML-shaped mapping (file values merged with flags).

    Unknown keys are errors naming their dotted path; so are missing required keys.
    Relative paths are read relative to base_dir (the config file's folder).

    Raises:
        ConfigError: unknown key, wrong type, bad value, or a required key missing.
    """
    values = read_table(GatewayConfig, data, base_dir or Path())
    require(GatewayConfig, values)
    tls = values.setdefault("tls", {})
    if "acme" in tls:
        acme: AcmeConfig = build_table(TLSConfig, "acme", tls["acme"], "tls")
        if "cert" in tls or "key" in tls:
            raise ConfigError(
                "tls.cert/tls.key and tls.acme are both set",
                f"with tls.acme the certificate lives in {acme.dir}; remove tls.cert and tls.key",
            )
        tls.update(acme=acme, cert=acme.dir / "server.chain.pem", key=acme.dir / "server.key")
    require(TLSConfig, tls, "tls")
    ca_url = tls.get("ca_url")
    if ca_url is not None and "acme" in tls:
        raise ConfigError(
            "tls.ca_url and tls.acme are both set: one source renews the server certificate",
            "keep tls.acme (Let's Encrypt) or tls.ca_url (an mtlskit ca serve), not both",
        )
    if ca_url is not None and not str(ca_url).startswith("https://"):
        raise ConfigError(
            f"tls.ca_url {ca_url!r} (--ca-url) is not an https:// URL",
            "give the URL of an mtlskit ca serve, e.g. https://ca.example.com:9443",
        )
    values["policy"] = AccessPolicy(**values.get("policy", {}))
    values["workers"] = values.get("workers") or os.cpu_count() or 1
    upstream: UpstreamAddress = values["upstream"]
    mode = values.setdefault("mode", "tcp" if upstream.scheme == "tcp" else "http")
    if mode == "tcp" and upstream.scheme == "http":
        raise ConfigError("--mode tcp with an http:// upstream", "write it as tcp://host:port")
    if mode == "http" and upstream.scheme == "tcp":
        raise ConfigError("--mode http with a tcp:// upstream", "write it as http://host:port")
    resolve_protocols(values, mode, upstream)
    config: GatewayConfig = build(GatewayConfig, values)
    _check_sites(config)
    _check_status(config)
    return config


def _check_status(config: GatewayConfig) -> None:
    """The status listener fails closed: off loopback it needs mTLS and an allow rule.

    Raises:
        ConfigError: naming the key and the fix.
    """
    if config.status is None:
        return
    host, port = config.status
    protected = config.status_tls.client_ca is not None
    if protected and config.status_tls.policy.is_empty:
        raise ConfigError(
            "status_tls.client_ca (--status-client-ca) is set but no status allow rule: "
            "the status listener would refuse every client",
            "add --status-allow-cn/--status-allow-ou/--status-allow-dns/--status-allow-uri "
            "(status_tls.allow_*)",
        )
    if not protected and not _is_loopback(host):
        raise ConfigError(
            f"status listener {host}:{port} (--status) is not a loopback address and "
            "has no client CA: certificates, clients and refusals would be open to the network",
            "listen on 127.0.0.1 (--status 127.0.0.1:9443), or protect it with mTLS: "
            "--status-client-ca CA.pem and --status-allow-cn NAME ([status_tls])",
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # "" (every interface) or a name: fail closed
        return False


def _check_sites(config: GatewayConfig) -> None:
    """Routes and servers: fail closed, one owner per server name, HTTP mode for routes.

    Raises:
        ConfigError: naming the table and the fix.
    """
    if config.mode == "tcp" and (config.route or any(s.route for s in config.server)):
        raise ConfigError(
            "[[route]] tables need mode http: a TCP byte pipe sees no paths",
            "remove the routes, or use an http:// upstream",
        )
    try:
        check_routes(
            config.route,
            where="",
            optional=config.tls.client_auth == "optional",
            default_policy=config.policy,
        )
    except ConfigError as exc:
        if config.route:
            raise
        raise ConfigError(
            "no allow rule: the gateway would refuse every client (it fails closed)",
            "add --allow-cn/--allow-ou/--allow-dns/--allow-uri, or --allow-all to admit any "
            "client with a certificate from --client-ca",
        ) from exc
    owners: dict[str, str] = {}
    for i, server in enumerate(config.server, 1):
        where = f"server[{i}] ({server.label})"
        for name in server.server_names:
            lower = check_server_name(name, f"{where} server_names")
            if lower in owners:
                raise ConfigError(
                    f"{where}: server name {name!r} is also in {owners[lower]}",
                    "each name belongs to one [[server]]",
                )
            owners[lower] = where
        if server.upstream is not None and (server.upstream.scheme == "tcp") != (
            config.mode == "tcp"
        ):
            raise ConfigError(
                f"{where}: upstream {server.upstream} does not fit mode {config.mode}",
                "in mode http write http://, h2c:// or unix:; in mode tcp, tcp://",
            )
        if server.acme is not None and (server.cert or server.key):
            raise ConfigError(
                f"{where}: cert/key and acme are both set",
                f"with acme the certificate lives in {server.acme.dir}; remove cert and key",
            )
        if server.acme is None and not (server.cert and server.key):
            raise ConfigError(
                f"{where}: no certificate: set cert and key (or acme)",
                "a server presents its own certificate for its server_names",
            )
        optional = (server.client_auth or config.tls.client_auth) == "optional"
        check_routes(
            server.route, where=f"{where} ", optional=optional, default_policy=server.policy
        )


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        ConfigError: missing, unreadable, not a regular file, over 1 MiB, not UTF-8, or
            unparsable (with the line TOML complains about).
    """
    # Imported here: the rest of this module is the configuration model, which pure
    # modules (export.kyma) import without wanting the file helpers.
    from mtlskit.pki.files import read_file

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
