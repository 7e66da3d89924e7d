"""Per request: which site and route, whether the caller may, and where it goes (pure).

A `Site` is one server of the listener (the top-level keys, or a `[[server]]`): its names,
its routes in file order and, when it has a policy besides routes, a catch-all default
route. `Site.verdict()` answers one request: 421 when its Host names another site than
the SNI did, 400/404/405 from the route table, 401/403 from the route's rules, or the
route to forward it on. A site without routes decides once per connection
(`Site.fixed()`), as the gateway always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mtlskit._config_kinds import UpstreamAddress
from mtlskit.identity import IdentityHeaders, PeerIdentity
from mtlskit.policy import AccessPolicy, Decision, evaluate
from mtlskit.routes import RouteTable

__all__ = ["Caller", "Route", "Site", "Verdict", "host_name", "name_matches"]

DEFAULT: Final = "default"


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One route, ready to serve.

    Attributes:
        name: its label in logs, metrics and refusals.
        policy: its allow rules.
        anonymous: callers without a certificate may pass.
        upstream: the workload it forwards to.
        h2c: that workload speaks HTTP/2 cleartext.
        identity: the identity headers it adds (the site's, then its own).
        own_headers: its identity headers differ from the site's (a header block of its own).
    """

    name: str
    policy: AccessPolicy
    anonymous: bool
    upstream: UpstreamAddress
    h2c: bool
    identity: IdentityHeaders
    own_headers: bool = False


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, as the handshake and admission found.

    Attributes:
        identity: the verified client, or None (no certificate, or one that did not verify).
        decision: for a verified client, validity and revocation (and, on a site without
            routes, its policy); None otherwise.
        presented: the subject of a certificate that did not verify (explain mode).
        why: why it did not verify; "" for a verified client or none presented.
    """

    identity: PeerIdentity | None
    decision: Decision | None = None
    presented: str = ""
    why: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one request.

    Attributes:
        status: 0 to forward on `route`, else the status the gateway answers itself.
        result: the `result` label of mtlskit_route_requests_total; for a refusal also
            the gateway.replies code of the answer (denied, no_route, misdirected, ...).
        route: the route that decided (None for 400/404/421).
        decision: the rule that allowed, or the denial's rule and reason (for the log and
            the refusal page).
        allow: for 405, the methods the path takes (the Allow header).
    """

    status: int
    result: str
    route: Route | None
    decision: Decision
    allow: tuple[str, ...] = ()


def host_name(host: str) -> str:
    """The name in a Host header or :authority, lowercase, without port or final dot."""
    if host.startswith("["):  # an IPv6 literal
        return host.partition("]")[0][1:].lower()
    return host.rpartition(":")[0].lower().rstrip(".") if ":" in host else host.lower().rstrip(".")


def name_matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether a lowercase name matches one of `patterns` (`*.x` stands for one label)."""
    for pattern in patterns:
        if pattern == name:
            return True
        if pattern.startswith("*."):
            head, dot, rest = name.partition(".")
            if dot and head and rest == pattern[2:]:
                return True
    return False


class Site:
    """One server of the listener: its names, routes and default route.

    Args:
        name: "default" for the top-level keys, else the [[server]]'s label.
        names: its server names (lowercase patterns); () for the default site.
        routes: its routes, in file order.
        table: their paths and methods (None: a site without routes).
        fallback: the default route for a path no route matches (the site's policy), or
            None when such a path gets 404. A site without routes has only this one.
        others: the names of the other sites on the listener (the default site answers
            421 to a Host among them; a [[server]] to a Host not among its own names).
    """

    __slots__ = ("fallback", "name", "names", "others", "routes", "table")

    def __init__(
        self,
        name: str,
        names: tuple[str, ...],
        routes: tuple[Route, ...],
        table: RouteTable | None,
        fallback: Route | None,
        others: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.names = names
        self.routes = routes
        self.table = table
        self.fallback = fallback
        self.others = others

    @property
    def checks_host(self) -> bool:
        """Whether requests must be checked for another site's Host (several sites)."""
        return bool(self.names or self.others)

    def misdirected(self, host: str) -> bool:
        """A Host (or :authority) this connection's site does not answer for (421)."""
        name = host_name(host)
        if self.names:
            return not name_matches(name, self.names)
        return name_matches(name, self.others)

    def fixed(self, caller: Caller) -> Verdict | None:
        """The verdict of every request of a connection, for a site without routes."""
        if self.table is not None or self.fallback is None:
            return None
        route = self.fallback
        if caller.identity is not None and caller.decision is not None:
            decision = caller.decision
            if decision.allowed:
                return Verdict(0, "allowed", route, decision)
            return Verdict(403, "denied", route, decision)
        return admit(route, caller)

    def verdict(self, method: str, target: str, caller: Caller) -> Verdict:
        """Route one request and decide whether its caller may take that route."""
        table = self.table
        if table is None:
            fixed = self.fixed(caller)
            assert fixed is not None  # noqa: S101 - a site has routes or a policy
            return fixed
        match = table.match(method, target)
        if match.status == 400:
            why = "the request target is not a valid path"
            return Verdict(400, "bad_path", None, Decision(False, "bad_path", why))
        if match.status == 405:
            why = f"this path takes {', '.join(match.allow)}, not {method}"
            return Verdict(405, "method_not_allowed", None, Decision(False, "", why), match.allow)
        if match.status == 404:
            if self.fallback is None:
                why = "no route for this path"
                return Verdict(404, "no_route", None, Decision(False, "no_route", why))
            return admit(self.fallback, caller)
        return admit(self.routes[match.index], caller)


def admit(route: Route, caller: Caller) -> Verdict:
    """Whether this caller may take this route (401/403 with a reason naming the route)."""
    if caller.why:  # a certificate that did not verify (explain mode): never forwarded
        reason = f"route {route.name!r}: the client certificate did not verify: {caller.why}"
        return Verdict(403, "denied", route, Decision(False, "unverified", reason))
    identity = caller.identity
    if identity is None:
        if route.anonymous:
            return Verdict(0, "anonymous", route, Decision(True, "allow_anonymous"))
        reason = f"route {route.name!r} needs a client certificate"
        return Verdict(401, "unauthenticated", route, Decision(False, "no_certificate", reason))
    base = caller.decision
    if base is not None and not base.allowed:  # expired, revoked, stale CRL, unreadable
        return Verdict(403, "denied", route, base)
    decision = evaluate(route.policy, identity)
    if decision.allowed:
        return Verdict(0, "allowed", route, decision)
    if route.anonymous:  # anyone may call it without a certificate: so may this client
        return Verdict(0, "allowed", route, Decision(True, "allow_anonymous"))
    reason = f"route {route.name!r}: {decision.reason}"
    return Verdict(403, "denied", route, Decision(False, decision.rule, reason))
