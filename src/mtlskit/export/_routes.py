"""Routes in the cluster: APIRule v2 rules and the DENY rules that keep first-match order (pure).

The gateway takes the first route whose path and method match, answers 404/405 when none
does, and uses a non-empty [policy] as a final catch-all. An APIRule routes the same paths;
the ingress gateway's AuthorizationPolicy only DENYs (an ALLOW on the shared gateway would
cut off every other host), so each route becomes "deny these callers on these paths,
except the paths an earlier route takes", per method, plus "deny every caller on the
paths no route takes". Path templates `{*}`/`{**}` in AuthorizationPolicy paths are Envoy
URI templates (Istio 1.22+, istio/istio#50365), in which `/admin/{**}` does not match
`/admin`: the parent path is listed too, as the gateway's `/admin/{**}` covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from mtlskit._config_kinds import UpstreamAddress
from mtlskit.export._manifest import ExportWarning
from mtlskit.export._principals import deny_source, principals
from mtlskit.policy import AccessPolicy
from mtlskit.sites import RouteConfig, route_policy

__all__ = [
    "APIRULE_METHODS",
    "DEFAULT_METHODS",
    "Route",
    "apirule_rules",
    "deny_rules",
    "merge_headers",
    "service_of",
    "site_routes",
]

# What an APIRule v2 rule's methods may list (its schema's enum).
APIRULE_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE")
APIRULE_METHODS_ALL: Final = (*APIRULE_METHODS, "PATCH")
# A route without methods takes any; its APIRule rule lists these (CONNECT and TRACE are
# not for a web workload, and the gateway's own default export never listed them).
DEFAULT_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_ANY: Final = "/{**}"


@dataclass(frozen=True, slots=True)
class Route:
    """One route as the cluster sees it.

    Attributes:
        where: how warnings name it ("route[2]", "server[1].route[1]", "policy").
        label: the route's name or first path ("" for the default route).
        paths: the patterns as templates (`/*` written `/{**}`), each `/x/{**}` followed
            by its parent `/x`.
        methods: upper-case; empty for any method.
        policy: its allow rules.
        anonymous: allow_anonymous: callers without a certificate are admitted.
        upstream: its own workload, or None for the server's.
        headers: its own identity headers.
        fallback: [policy] behind routes: it takes the paths no route's path matches
            (a path a route matches for another method gets 405).
    """

    where: str
    label: str
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    policy: AccessPolicy
    anonymous: bool = False
    upstream: UpstreamAddress | None = None
    headers: tuple[tuple[str, str], ...] = ()
    fallback: bool = False

    @property
    def about(self) -> str:
        """The route named after a warning's subject."""
        return f" (route {self.label})" if self.label else ""


def _templates(patterns: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for pattern in patterns:
        path = _ANY if pattern == "/*" else pattern
        out.append(path)
        if path.endswith("/{**}") and path != _ANY:
            out.append(path[: -len("/{**}")])
    return tuple(dict.fromkeys(out))


def site_routes(routes: Sequence[RouteConfig], policy: AccessPolicy, *, where: str) -> list[Route]:
    """The routes of one server in file order, with [policy] last as the fallback.

    Without routes, the policy is the only route (every path, any method); with routes, it
    takes the requests whose path no route matches (the gateway's 404 case), and a path a
    route matches for other methods only is refused (405).

    Args:
        routes: the server's [[route]] tables.
        policy: its [policy]; ignored when empty and there are routes (404 then).
        where: "" for the top-level server, "server[1]." for a [[server]].
    """
    out = [
        Route(
            f"{where}route[{i}]",
            route.label,
            _templates(route.path),
            tuple(dict.fromkeys(m.upper() for m in route.methods)),
            route_policy(route),
            route.allow_anonymous,
            route.upstream,
            route.headers,
        )
        for i, route in enumerate(routes, 1)
    ]
    if not routes or not policy.is_empty:
        out.append(Route(f"{where}policy", "", (_ANY,), (), policy, fallback=True))
    return out


def merge_headers(*layers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Header templates, later layers winning by name (case-insensitive), in first order."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer:
            merged[name.lower()] = (merged.get(name.lower(), (name, ""))[0], value)
    return dict(merged.values())


def service_of(upstream: UpstreamAddress) -> tuple[str, int] | None:
    """The Kubernetes Service an upstream names (`http://orders.shop:9000` -> orders:9000)."""
    host = upstream.host
    if upstream.scheme == "unix" or not host or host == "localhost" or host[0].isdigit():
        return None
    if ":" in host:  # an IPv6 literal
        return None
    return host.split(".")[0], upstream.port


def apirule_rules(
    routes: Sequence[Route], *, headers: Sequence[tuple[str, str]], service: tuple[str, int]
) -> tuple[list[dict[str, Any]], list[ExportWarning]]:
    """APIRule v2 rules for the routes, in order: one per path, its methods, noAuth.

    A (path, method) an earlier rule already takes is left out (the first match decides in
    the gateway and in the VirtualService alike), and so is a rule left with no method.

    Args:
        routes: site_routes' output.
        headers: the server's identity headers; a route's own win by name.
        service: the APIRule's spec.service; a route with another Service gets its own.
    """
    rules: list[dict[str, Any]] = []
    warnings: list[ExportWarning] = []
    taken: set[tuple[str, str]] = set()
    for route in routes:
        methods = list(route.methods or DEFAULT_METHODS)
        odd = [m for m in methods if m not in APIRULE_METHODS_ALL]
        if odd:
            warnings.append(
                ExportWarning(
                    f"{route.where}.methods = {odd!r}{route.about}",
                    "not routed in the cluster (Istio answers 404 for them)",
                    "an APIRule v2 rule lists only the methods of RFC 9110 and PATCH",
                    "keep mtlskit gateway in the path for these methods",
                )
            )
        own = _route_service(route, service, warnings)
        rule_headers = merge_headers(headers, route.headers)
        for path in route.paths:
            listed = [m for m in methods if m not in odd and (path, m) not in taken]
            taken.update((path, m) for m in listed)
            if not listed:
                continue
            rule: dict[str, Any] = {"path": path, "methods": listed}
            if own is not None:
                rule["service"] = {"name": own[0], "port": own[1]}
            # The client certificate is the authentication (Gateway MUTUAL, or the DENY
            # policy's principals in OPTIONAL_MUTUAL).
            rule["noAuth"] = True
            if rule_headers:
                rule["request"] = {"headers": rule_headers}
            rules.append(rule)
    return rules, warnings


def _route_service(
    route: Route, service: tuple[str, int], warnings: list[ExportWarning]
) -> tuple[str, int] | None:
    if route.upstream is None:
        return None
    own = service_of(route.upstream)
    if own is None:
        warnings.append(
            ExportWarning(
                f"{route.where}.upstream = '{route.upstream}'{route.about}",
                f"is not a Service name; its APIRule rules go to {service[0]}:{service[1]}",
                "an APIRule rule routes to a Kubernetes Service, not to an address",
                "write the upstream as http://SERVICE.NAMESPACE:PORT",
            )
        )
        return None
    if route.upstream.scheme == "h2c":
        warnings.append(
            ExportWarning(
                f"{route.where}.upstream = '{route.upstream}'{route.about}",
                f"no Service port with appProtocol is rendered for {own[0]}:{own[1]}",
                "Istio speaks HTTP/1.1 to a Service port unless its name or appProtocol says "
                "grpc or http2",
                f"set appProtocol: grpc (or http2) on port {own[1]} of Service {own[0]}",
            )
        )
    return None if own == service else own


def deny_rules(
    routes: Sequence[Route], *, optional: bool
) -> tuple[list[dict[str, Any]], list[str], list[ExportWarning]]:
    """DENY rules (without hosts) that give each request the route the gateway would.

    Per method the routes list (and one group for every other method): each route denies
    the callers its allow rules do not admit on its paths minus the paths of the earlier
    routes for that method; the paths a route takes for other methods only are denied to
    everyone (405); the paths no route takes go to the fallback [policy] or are denied to
    everyone (404). An anonymous route denies no one.

    Returns:
        (rules, denied, warnings): `denied` names every rule Istio cannot express.
    """
    warnings: list[ExportWarning] = []
    denied: list[str] = []
    sources: list[tuple[bool, list[dict[str, Any]]]] = []
    for route in routes:
        if route.anonymous:
            # Its allow rules guard nothing here: a caller they refuse can come back without
            # a certificate and is admitted.
            sources.append((False, []))
            continue
        allowed, said = principals(route.policy, route.where, route.about)
        warnings += said
        denied += allowed.denied
        sources.append(deny_source(allowed, optional=optional))
    explicit = [i for i, r in enumerate(routes) if not r.fallback]
    fallback = next((i for i, r in enumerate(routes) if r.fallback), None)
    routed = list(dict.fromkeys(p for i in explicit for p in routes[i].paths))
    mentioned = sorted({m for i in explicit for m in routes[i].methods})
    groups: list[tuple[dict[str, Any], list[int]]] = [
        ({"methods": [m]}, [i for i in explicit if not routes[i].methods or m in routes[i].methods])
        for m in mentioned
    ]
    rest = [i for i in explicit if not routes[i].methods]
    groups.append(({"notMethods": mentioned} if mentioned else {}, rest))
    rules: list[dict[str, Any]] = []

    def add(fields: dict[str, Any], paths: list[str], not_paths: list[str], source: Any) -> None:
        operation = dict(fields)
        if paths and _ANY not in paths:
            operation["paths"] = paths
        if not_paths:
            operation["notPaths"] = list(dict.fromkeys(not_paths))
        rule: dict[str, Any] = {"from": source} if source else {}
        rule["to"] = [{"operation": operation}]
        rules.append(rule)

    for fields, members in groups:
        earlier: list[str] = []
        for i in members:
            needed, source = sources[i]
            if needed:
                add(fields, list(routes[i].paths), earlier, source)
            earlier += routes[i].paths
        if _ANY in earlier:
            continue  # every path is some route's for these methods
        others = [p for p in routed if p not in earlier]
        if others:  # a route's path, but not for these methods: 405
            add(fields, others, earlier, None)
        if _ANY in routed:
            continue
        if fallback is None:  # no route's path: 404
            add(fields, [], routed, None)
            continue
        needed, source = sources[fallback]
        if needed:
            add(fields, [], routed, source)
    return rules, denied, warnings
