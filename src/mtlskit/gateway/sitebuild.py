"""From the config to the servers of a listener: their files, routes and names (pure).

The top-level keys are the `default` server; each `[[server]]` is another. A route's
upstream and identity headers fall back to its server's, a server's to the top level's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlskit._config_kinds import UpstreamAddress
from mtlskit.config import GatewayConfig, ServerConfig
from mtlskit.gateway.routing import DEFAULT, Route, Site
from mtlskit.identity import IdentityHeaders
from mtlskit.policy import AccessPolicy
from mtlskit.sites import RouteConfig, check_routes, check_server_name, route_policy

__all__ = [
    "ServerFiles",
    "build_site",
    "identity_headers",
    "merge_headers",
    "server_files",
    "stripped_names",
]


@dataclass(frozen=True, slots=True)
class ServerFiles:
    """What one server reads from disk, and how it asks for client certificates.

    Attributes:
        name: "default" or the [[server]]'s label.
        cert: its chain; key: its key; client_ca: its client CA bundle; crl: its CRLs.
        client_auth: "required" or "optional".
        explain: a certificate that does not verify gets a 403 page instead of an alert.
        server: the [[server]] table, None for the default server.
    """

    name: str
    cert: Path
    key: Path
    client_ca: Path
    crl: tuple[Path, ...]
    client_auth: str
    explain: bool
    server: ServerConfig | None = None

    @property
    def paths(self) -> list[Path]:
        """The files a reload re-reads."""
        return [self.cert, self.key, self.client_ca, *self.crl]


def server_files(config: GatewayConfig) -> list[ServerFiles]:
    """The default server first, then each [[server]] in file order."""
    tls = config.tls
    explain = tls.verify_optional == "explain"
    files = [
        ServerFiles(DEFAULT, tls.cert, tls.key, tls.client_ca, tls.crl, tls.client_auth, explain)
    ]
    for server in config.server:
        auth = server.client_auth or tls.client_auth
        files.append(
            ServerFiles(
                server.label,
                server.chain_path,
                server.key_path,
                server.client_ca,
                server.crl,
                auth,
                explain,
                server,
            )
        )
    return files


def merge_headers(
    base: tuple[tuple[str, str], ...], more: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """Header templates of `base` and then `more`; a name in `more` replaces base's."""
    names = {name.lower() for name, _ in more}
    return tuple(pair for pair in base if pair[0].lower() not in names) + more


def identity_headers(config: GatewayConfig, custom: tuple[tuple[str, str], ...]) -> IdentityHeaders:
    """The identity headers `identity_headers` names, and these custom ones."""
    return IdentityHeaders(
        xfcc="xfcc" in config.identity_headers,
        client_cert="client-cert" in config.identity_headers,
        custom=custom,
    )


def _route(
    config: GatewayConfig,
    route: RouteConfig,
    *,
    upstream: UpstreamAddress,
    h2c: bool,
    site_headers: tuple[tuple[str, str], ...],
    site_identity: IdentityHeaders,
) -> Route:
    own = route.upstream
    if own is not None:
        upstream, h2c = own, own.scheme == "h2c"
    headers = merge_headers(site_headers, route.headers)
    identity = identity_headers(config, headers) if route.headers else site_identity
    return Route(
        name=route.label,
        policy=route_policy(route),
        anonymous=route.allow_anonymous,
        upstream=upstream,
        h2c=h2c,
        identity=identity,
        own_headers=bool(route.headers),
    )


def build_site(
    config: GatewayConfig, files: ServerFiles, identity: IdentityHeaders
) -> tuple[Site, tuple[str, ...]]:
    """The routing of one server and its names (lowercase patterns; () for the default).

    Args:
        config: the whole config.
        files: the server (default or [[server]]).
        identity: the server's own identity headers (the top-level ones, then its own).

    Raises:
        ConfigError: a bad route or server name (already checked when the config was read).
    """
    server = files.server
    upstream = config.upstream
    h2c = config.upstream_protocol == "h2c"
    if server is not None and server.upstream is not None:
        upstream, h2c = server.upstream, server.upstream.scheme == "h2c"
    headers = identity.custom  # the top-level custom headers, then the server's
    routes_config = server.route if server is not None else config.route
    policy: AccessPolicy = server.policy if server is not None else config.policy
    where = f"server {files.name} " if server is not None else ""
    table = check_routes(
        routes_config,
        where=where,
        optional=files.client_auth == "optional",
        default_policy=policy,
    )
    routes = tuple(
        _route(
            config,
            r,
            upstream=upstream,
            h2c=h2c,
            site_headers=headers,
            site_identity=identity,
        )
        for r in routes_config
    )
    fallback = None
    if not policy.is_empty:
        fallback = Route(DEFAULT, policy, False, upstream, h2c, identity)
    names: tuple[str, ...] = ()
    if server is not None:
        names = tuple(check_server_name(n, f"server {files.name}") for n in server.server_names)
    # The default server answers 421 to another server's names; a [[server]] only its own.
    others: tuple[str, ...] = ()
    if server is None:
        others = tuple(
            check_server_name(n, "server_names")
            for other in config.server
            for n in other.server_names
        )
    return Site(files.name, names, routes, table, fallback, others), names


def stripped_names(identities: list[IdentityHeaders]) -> frozenset[bytes]:
    """Every header name any server or route adds: a client may send none of them."""
    names: set[bytes] = set()
    for identity in identities:
        names |= identity.stripped_names
    return frozenset(names)
