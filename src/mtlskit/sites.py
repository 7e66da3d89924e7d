"""`[[route]]` and `[[server]]`: rules per path and virtual hosts by SNI, as config keys (pure).

A route is a set of APIRule v2 path patterns (mtlskit.routes), the methods it takes, its
allow rules (the same as `[policy]`'s, plus `allow_anonymous` for callers without a
certificate) and, optionally, its own upstream and identity headers. A server is one site
on the shared listener: its names (matched against SNI), certificate, client CA, client
authentication mode, CRLs, upstream, headers, `[server.policy]` and `[[server.route]]`s.
The top-level keys are the `default` server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from mtlskit._config_acme import AcmeConfig
from mtlskit._config_keys import config_key, config_table, config_tables
from mtlskit._config_kinds import (
    BOOL,
    CHOICE,
    PATH,
    PATHS,
    STR,
    STRS,
    TEMPLATES,
    UPSTREAM,
    UpstreamAddress,
)
from mtlskit.errors import ConfigError
from mtlskit.policy import AccessPolicy
from mtlskit.routes import PathPattern, RouteTable

__all__ = [
    "ClientAuth",
    "RouteConfig",
    "ServerConfig",
    "VerifyOptional",
    "check_routes",
    "check_server_name",
    "route_policy",
]

ClientAuth = Literal["required", "optional"]
VerifyOptional = Literal["refuse", "explain"]

_RULES: Final = ("allow_all", "allow_cn", "allow_ou", "allow_dns", "allow_uri")
_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteConfig:
    """One `[[route]]`: paths and methods, who may call them, where they go."""

    path: tuple[str, ...] = config_key(
        kind=STRS,
        doc="path patterns in APIRule v2 syntax: an exact path, `{*}` for one segment, "
        "`{**}` as the last segment (it covers the parent too); a string or a list",
    )
    name: str = config_key(
        "",
        kind=STR,
        default_doc="the first path",
        doc="how the access log, the metrics and refusals name the route",
    )
    methods: tuple[str, ...] = config_key(
        (),
        kind=STRS,
        default_doc="any",
        doc="the methods the route takes (case-sensitive); another method gets 405",
    )
    allow_all: bool = config_key(False, kind=BOOL, doc="admit any verified client")
    allow_cn: tuple[str, ...] = config_key((), kind=STRS, doc="admit these subject CNs")
    allow_ou: tuple[str, ...] = config_key((), kind=STRS, doc="admit these subject OUs")
    allow_dns: tuple[str, ...] = config_key((), kind=STRS, doc="admit these DNS SANs")
    allow_uri: tuple[str, ...] = config_key(
        (), kind=STRS, doc="admit these URI SANs (`*` one path segment, `**` any number)"
    )
    allow_anonymous: bool = config_key(
        False,
        kind=BOOL,
        doc='admit callers without a certificate (needs `client_auth = "optional"`); they '
        "get no identity headers",
    )
    upstream: UpstreamAddress | None = config_key(
        None,
        kind=UPSTREAM,
        default_doc="the server's",
        doc="this route's workload (`http://`, `h2c://` or `unix:`)",
    )
    headers: tuple[tuple[str, str], ...] = config_key(
        (),
        kind=TEMPLATES,
        doc="identity headers added on this route, after the server's (a name here wins)",
    )

    @property
    def label(self) -> str:
        """The route's name, or its first path."""
        return self.name or (self.path[0] if self.path else "")


def route_policy(route: RouteConfig) -> AccessPolicy:
    """The allow rules of a route as an AccessPolicy (allow_anonymous is not one of them)."""
    return AccessPolicy(**{name: getattr(route, name) for name in _RULES})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """One `[[server]]`: a site on the shared listener, picked by SNI."""

    server_names: tuple[str, ...] = config_key(
        kind=STRS,
        doc="the names this server answers for (SNI and Host); `*.example.com` is one label",
    )
    name: str = config_key(
        "", kind=STR, default_doc="the first name", doc="the `server` label of logs and metrics"
    )
    cert: Path | None = config_key(
        None,
        kind=PATH,
        default_doc="required without acme",
        doc="its chain: leaf first, then intermediates",
    )
    key: Path | None = config_key(
        None, kind=PATH, default_doc="required without acme", doc="its leaf's private key"
    )
    client_ca: Path = config_key(kind=PATH, doc="root CA(s) its clients' chains lead to")
    client_auth: ClientAuth | None = config_key(
        None, kind=CHOICE, default_doc="`[tls] client_auth`", doc="`required` or `optional`"
    )
    crl: tuple[Path, ...] = config_key((), kind=PATHS, doc="CRLs of its client CAs")
    upstream: UpstreamAddress | None = config_key(
        None, kind=UPSTREAM, default_doc="the top-level one", doc="its workload"
    )
    headers: tuple[tuple[str, str], ...] = config_key(
        (), kind=TEMPLATES, doc="identity headers, after the top-level ones (a name here wins)"
    )
    acme: AcmeConfig | None = config_table(
        AcmeConfig,
        default=None,
        file_only=True,
        missing="a server's acme needs directory, domains and dir",
    )
    policy: AccessPolicy = config_table(AccessPolicy, factory=AccessPolicy)
    route: tuple[RouteConfig, ...] = config_tables(RouteConfig)

    @property
    def chain_path(self) -> Path:
        """Its certificate chain: `cert`, or server.chain.pem in its acme dir."""
        if self.acme is not None:
            return self.acme.dir / "server.chain.pem"
        assert self.cert is not None  # noqa: S101 - checked when the config was read
        return self.cert

    @property
    def key_path(self) -> Path:
        """Its private key: `key`, or server.key in its acme dir."""
        if self.acme is not None:
            return self.acme.dir / "server.key"
        assert self.key is not None  # noqa: S101 - checked when the config was read
        return self.key

    @property
    def label(self) -> str:
        """The server's name, or its first server name."""
        return self.name or (self.server_names[0] if self.server_names else "")


def check_server_name(name: str, where: str) -> str:
    """A server name as matched (lowercase); `*.` only as the whole leftmost label.

    Raises:
        ConfigError: not a DNS name or a wildcard of one.
    """
    lower = name.lower().rstrip(".")
    labels = lower.split(".")
    wildcard = labels[0] == "*" and len(labels) > 2
    if not all(_LABEL.match(label) for label in labels[1 if wildcard else 0 :]):
        raise ConfigError(
            f"{where}: {name!r} is not a DNS name",
            "write a name such as api.example.com, or *.example.com for one label",
        )
    return lower


def check_routes(
    routes: tuple[RouteConfig, ...], *, where: str, optional: bool, default_policy: AccessPolicy
) -> RouteTable | None:
    """Check the routes of one server and compile their paths (None: no routes).

    Fails closed: a route needs at least one rule, `allow_anonymous` only makes sense
    when certificates are optional, and a server with neither routes nor a policy would
    refuse every request.

    Raises:
        ConfigError: naming the route (`route[2]`) and the fix.
    """
    if not routes:
        if default_policy.is_empty:
            raise ConfigError(
                f"{where}: no allow rule and no route: every client would be refused (it "
                "fails closed)",
                "add allow rules ([policy] or --allow-cn/--allow-all ...) or [[route]] tables",
            )
        return None
    for i, route in enumerate(routes, 1):
        at = f"{where}route[{i}] ({route.label or 'no path'})"
        if not route.path:
            raise ConfigError(f"{at}: no path", 'set path = "/orders/{*}" (or a list of them)')
        try:
            for pattern in route.path:
                PathPattern(pattern)
            policy = route_policy(route)
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc.message}", exc.hint) from exc
        if policy.is_empty and not route.allow_anonymous:
            raise ConfigError(
                f"{at}: no allow rule: every caller would be refused (it fails closed)",
                "add allow_cn/allow_ou/allow_dns/allow_uri/allow_all, or allow_anonymous = "
                "true for callers without a certificate",
            )
        if route.allow_anonymous and not optional:
            raise ConfigError(
                f"{at}: allow_anonymous = true, but client certificates are required, so no "
                "caller without one gets this far",
                'set [tls] client_auth = "optional" (or the server\'s client_auth)',
            )
        if route.upstream is not None and route.upstream.scheme == "tcp":
            raise ConfigError(
                f"{at}: a route's upstream speaks HTTP (tcp:// is for mode tcp)",
                "write http://host:port, h2c://host:port or unix:/path",
            )
    try:
        return RouteTable([(route.path, route.methods) for route in routes])
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc.message}", exc.hint) from exc
