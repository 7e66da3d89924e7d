"""The gateway's configuration: one tree of frozen dataclasses from defaults < TOML < flags.

Each key is described once, by its field (`config_key(...)`: kind, help, docs); the TOML
parser, the flags of `mtlskit gateway` and the reference table in docs/gateway.md all come
from these fields (mtlskit._config_keys; the kinds of value are in mtlskit._config_kinds).
`[policy]` is mtlskit.policy.AccessPolicy itself, whose fields are keys the same way.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from mtlskit._config_keys import (
    Setting,
    build,
    build_table,
    config_key,
    config_table,
    read_table,
    reference_rows,
    require,
    settings,
)
from mtlskit._config_kinds import (
    ADDRESS,
    ALPN,
    BOOL,
    CHOICE,
    DURATION,
    DURATION_OR_ZERO,
    IDENTITY_HEADERS,
    INT,
    OPTIONAL_ADDRESS,
    PATH,
    PATHS,
    STR,
    STRS,
    TEMPLATES,
    UPSTREAM,
    UpstreamAddress,
    parse_address,
    parse_upstream,
    resolve_protocols,
)
from mtlskit.errors import CertificateLoadError, ConfigError
from mtlskit.policy import AccessPolicy

__all__ = [
    "AcmeConfig",
    "GatewayConfig",
    "LimitsConfig",
    "TLSConfig",
    "UpstreamAddress",
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
class AcmeConfig:
    """[tls] acme = {...}: get and renew the server certificate from an ACME CA.

    The certificate and key live in `dir` as server.chain.pem and server.key; tls.cert and
    tls.key point there and must not be set by hand.
    """

    directory: str = config_key(
        kind=STR,
        doc="ACME directory URL: get the server certificate from Let's Encrypt (or Pebble)",
    )
    domains: tuple[str, ...] = config_key(kind=STRS, doc="DNS names of the certificate")
    dir: Path = config_key(
        kind=PATH, doc="where `server.chain.pem`, `server.key` and the account key live"
    )
    email: str | None = config_key(None, kind=STR, doc="account contact")
    http01: tuple[str, int] = config_key(
        ("0.0.0.0", 80),  # noqa: S104 - the CA connects from outside
        kind=ADDRESS,
        doc="where the HTTP-01 responder listens while the CA validates",
    )
    ca_bundle: Path | None = config_key(
        None, kind=PATH, default_doc="system", doc="CA bundle to verify the ACME server with"
    )


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """[tls]: the server's chain and key, the client CA, CRLs, protocol floor."""

    cert: Path = config_key(
        kind=PATH,
        help="server chain: leaf first, then intermediates (all are sent)",
        doc="server chain: leaf first, then intermediates; all are sent",
    )
    key: Path = config_key(kind=PATH, help="server private key", doc="the leaf's private key")
    client_ca: Path = config_key(
        kind=PATH,
        help="root CA(s) that client chains must lead to",
        doc="root CA(s) client chains must lead to; advertised as acceptable CA names",
    )
    crl: tuple[Path, ...] = config_key(
        (),
        kind=PATHS,
        help="CRL of a client CA (repeatable); must be signed by a CA in --client-ca",
        doc="CRLs of the client CAs (repeatable); signed by a CA in `client_ca`",
    )
    min_version: Literal["1.2", "1.3"] = config_key(
        "1.2", kind=CHOICE, help="lowest TLS version: 1.2 or 1.3", doc="`1.2` or `1.3`"
    )
    # OpenSSL sends 2 TLS 1.3 tickets per full handshake by default; resumption needs them.
    session_tickets: int = config_key(
        2,
        kind=INT,
        help="TLS 1.3 session tickets per handshake (0 disables resumption)",
        doc="`2`: resumption on (OpenSSL's two TLS 1.3 tickets per full handshake, kept 5 "
        "minutes); `0`: off. Other counts cannot be set through pyOpenSSL",
    )
    # None: h2 and http/1.1 in HTTP mode (the client picks), nothing in TCP mode.
    alpn: tuple[str, ...] | None = config_key(
        None,
        kind=ALPN,
        default_doc='`"h2", "http/1.1"` (HTTP mode); none (TCP mode)',
        help="ALPN protocols offered, in order of preference (repeatable): h2, http/1.1",
        doc="ALPN protocols selected from the client's offer, ours first: `h2` (HTTP/2) and "
        "`http/1.1` in HTTP mode; any IDs in TCP mode. A client offering none of them "
        "goes on without ALPN (HTTP/1.1)",
    )
    acme: AcmeConfig | None = config_table(
        AcmeConfig,
        default=None,
        file_only=True,
        missing="tls.acme needs directory (the ACME URL), domains and dir (where to keep "
        "the certificate)",
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """[limits]: every wait and size is bounded, so a slow client never blocks others."""

    handshake_timeout: timedelta = config_key(
        timedelta(seconds=10),
        kind=DURATION,
        doc="a client must finish its TLS handshake in this time",
    )
    header_timeout: timedelta = config_key(
        timedelta(seconds=30),
        kind=DURATION,
        doc="a started request head must be complete in this time (408)",
    )
    idle_timeout: timedelta = config_key(
        timedelta(seconds=300),
        kind=DURATION,
        doc="close a connection with nothing in flight after this; also the longest pause "
        "inside a request body (408)",
    )
    upstream_connect_timeout: timedelta = config_key(
        timedelta(seconds=5), kind=DURATION, doc="connecting to the workload (then 504)"
    )
    upstream_timeout: timedelta = config_key(
        timedelta(seconds=60),
        kind=DURATION,
        doc="the workload must start answering in this time, counted from the end of the "
        "request body (504)",
    )
    drain_timeout: timedelta = config_key(
        timedelta(seconds=20),
        kind=DURATION,
        doc="on SIGTERM, how long open connections may finish",
    )
    # nginx's client_header_buffer_size default (1k) is the buffer most request heads fit
    # in. Below that, a request line, Host and the usual few headers of a real client
    # (User-Agent, Accept, ...) already overflow and every request would get a 431.
    max_header_bytes: int = config_key(
        64 * 1024,
        kind=INT,
        minimum=1024,
        why="a smaller head cannot carry a usual request",
        doc="larger request heads (and trailers) get 431",
    )
    max_connections: int = config_key(
        10_000,
        kind=INT,
        minimum=1,
        why="0 would refuse every connection",
        doc="connections (and handshakes) at once, per worker",
    )
    # The kernel's accept queue (listen(2) backlog), as nginx's default; the kernel caps it
    # at net.core.somaxconn. listen(2) takes 0, but then the kernel queues (almost) no
    # connection to accept.
    backlog: int = config_key(
        1024,
        kind=INT,
        minimum=1,
        why="the accept queue needs room for one connection",
        doc="the listen(2) accept queue (the kernel caps it at `net.core.somaxconn`)",
    )
    # RFC 9113 6.5.2 recommends no less than 100 (nginx's http2_max_concurrent_streams 128).
    max_concurrent_streams: int = config_key(
        100,
        kind=INT,
        minimum=1,
        why="0 would let an HTTP/2 client open no stream at all",
        doc="HTTP/2 streams open at once per client connection (SETTINGS_MAX_CONCURRENT_STREAMS)",
    )
    # Idle upstream connections kept for any client (HTTP mode; nginx's `keepalive 64`),
    # and how long one may wait (nginx's keepalive_timeout for upstreams is 60 s).
    upstream_keepalive: int = config_key(
        64,
        kind=INT,
        doc="idle upstream connections kept for any client (HTTP mode; `0`: one upstream "
        "connection per client connection)",
    )
    upstream_keepalive_timeout: timedelta = config_key(
        timedelta(seconds=60),
        kind=DURATION,
        doc="how long an idle upstream connection is kept",
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
        help="status listener host:port for /healthz, /readyz, /metrics",
        doc="status listener `host:port`: `/healthz`, `/readyz`, `/metrics`",
    )
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
    policy = values["policy"] = AccessPolicy(**values.get("policy", {}))
    if policy.is_empty:
        raise ConfigError(
            "no allow rule: the gateway would refuse every client (it fails closed)",
            "add --allow-cn/--allow-ou/--allow-dns/--allow-uri, or --allow-all to admit any "
            "client with a certificate from --client-ca",
        )
    values["workers"] = values.get("workers") or os.cpu_count() or 1
    upstream: UpstreamAddress = values["upstream"]
    mode = values.setdefault("mode", "tcp" if upstream.scheme == "tcp" else "http")
    if mode == "tcp" and upstream.scheme == "http":
        raise ConfigError("--mode tcp with an http:// upstream", "write it as tcp://host:port")
    if mode == "http" and upstream.scheme == "tcp":
        raise ConfigError("--mode http with a tcp:// upstream", "write it as http://host:port")
    resolve_protocols(values, mode, upstream)
    config: GatewayConfig = build(GatewayConfig, values)
    return config


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
