"""kyma check, OPTIONAL_MUTUAL: open rules and hosts that no DENY policy requires a principal on.

OPTIONAL_MUTUAL lets a caller without a certificate finish the handshake. What stops it is
a DENY AuthorizationPolicy rule that matches callers without a principal: one whose
`from` is absent (everyone) or has a source with only `notPrincipals` (an empty principal
is in no list). These checks read such rules as guards (host, paths, methods) and look for
open APIRule rules and hosts that no guard covers (pure).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mtlskit.export._certs import dns_covers
from mtlskit.export._finding import Finding
from mtlskit.export._objects import Obj, Server, items, tls_servers

__all__ = ["optional_mutual_no_principal", "optional_mutual_noauth"]

# APIRule v1beta1 handlers that let a request through without checking anything
_OPEN_HANDLERS: Final = ("no_auth", "allow", "noop")
ANONYMOUS: Final = "mtlskit.dev/anonymous-paths"
_ANY_METHOD: Final = ""  # an APIRule rule without methods: only a guard for any method covers it


def _spec(obj: Obj) -> Mapping[str, Any]:
    spec = obj.doc.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _strings(value: Any) -> tuple[str, ...] | None:
    return tuple(str(v) for v in value) if isinstance(value, list) else None


@dataclass(frozen=True, slots=True)
class _Guard:
    """One operation of a DENY rule that refuses callers without a principal (None: any)."""

    hosts: tuple[str, ...] | None
    not_hosts: tuple[str, ...]
    sni: tuple[str, ...] | None
    paths: tuple[str, ...] | None
    not_paths: tuple[str, ...]
    methods: tuple[str, ...] | None
    not_methods: tuple[str, ...]


def _refuses_anonymous(rule: Mapping[str, Any]) -> bool:
    sources = items(rule.get("from"))
    if "from" not in rule:
        return True
    return any(set(s.get("source") or {}) == {"notPrincipals"} for s in sources)


def _sni(rule: Mapping[str, Any]) -> tuple[bool, tuple[str, ...] | None]:
    """(usable, SNI values): a `when` on anything but connection.sni is not read."""
    sni: tuple[str, ...] | None = None
    for condition in items(rule.get("when")):
        values = _strings(condition.get("values"))
        if condition.get("key") != "connection.sni" or values is None or "notValues" in condition:
            return False, None
        sni = values if sni is None else tuple(v for v in sni if v in values)
    return True, sni


def _guards(policies: Sequence[Obj]) -> list[_Guard]:
    guards: list[_Guard] = []
    for obj in policies:
        if str(_spec(obj).get("action") or "ALLOW") != "DENY":
            continue
        for rule in items(_spec(obj).get("rules")):
            usable, sni = _sni(rule)
            if not usable or not _refuses_anonymous(rule):
                continue
            operations = [to.get("operation") or {} for to in items(rule.get("to"))] or [{}]
            for op in operations:
                if "ports" in op or "notPorts" in op:
                    continue  # narrower than a host: not read
                guards.append(
                    _Guard(
                        _strings(op.get("hosts")),
                        _strings(op.get("notHosts")) or (),
                        sni,
                        _strings(op.get("paths")),
                        _strings(op.get("notPaths")) or (),
                        _strings(op.get("methods")),
                        _strings(op.get("notMethods")) or (),
                    )
                )
    return guards


def _matches(entry: str, host: str) -> bool:
    """Istio's host match (exact, `*x` suffix, `x*` prefix, `*`, ignoring case) of a host,
    which may itself be a wildcard `*.x` (then only an entry covering all of it matches)."""
    entry, host = entry.lower(), host.lower()
    if entry in ("*", host):
        return True
    if entry.startswith("*"):
        return host.endswith(entry[1:])
    return entry.endswith("*") and not host.startswith("*") and host.startswith(entry[:-1])


def _in_scope(guard: _Guard, host: str) -> bool:
    if guard.hosts is not None and not any(_matches(e, host) for e in guard.hosts):
        return False
    if any(_matches(e, host) for e in guard.not_hosts):
        return False
    return guard.sni is None or any(_matches(e, host) for e in guard.sni)


def _template(path: str) -> str:
    return "/{**}" if path in ("/*", "*") else path


def _covers(guard: _Guard, host: str, path: str, method: str) -> bool:
    if not _in_scope(guard, host):
        return False
    path = _template(path)
    if guard.paths is not None and not {path, "/{**}"} & {_template(p) for p in guard.paths}:
        return False
    if path in {_template(p) for p in guard.not_paths}:
        return False
    if method == _ANY_METHOD:
        return guard.methods is None and not guard.not_methods
    return (guard.methods is None or method in guard.methods) and method not in guard.not_methods


def _on_server(hosts: tuple[str, ...], host: str) -> bool:
    if "." not in host:  # a short host takes the Gateway's domain
        return True
    return any(h == "*" or dns_covers(h, host) for h in hosts)


def _resolve(host: str, servers: Sequence[Server]) -> list[str]:
    """A short APIRule host as the full names the Gateway's `*.domain` servers give it."""
    if "." in host:
        return [host]
    return [f"{host}.{h[2:]}" for s in servers for h in s.hosts if h.startswith("*.")] or [host]


def _gateway_ref(apirule: Obj) -> str:
    ref = str(_spec(apirule).get("gateway") or "")
    if "/" in ref or "." not in ref:
        return ref
    name, _, rest = ref.partition(".")  # v1beta1 also took name.namespace.svc.cluster.local
    return f"{rest.partition('.')[0]}/{name}"


def _open_rules(apirule: Obj) -> Iterator[tuple[int, str]]:
    for i, rule in enumerate(items(_spec(apirule).get("rules"))):
        if rule.get("noAuth") is True:
            yield i, "noAuth: true"
        handlers = [str(a.get("handler")) for a in items(rule.get("accessStrategies"))]
        if any(h in _OPEN_HANDLERS for h in handlers):
            yield i, f"handler {next(h for h in handlers if h in _OPEN_HANDLERS)}"


def _anonymous(apirule: Obj) -> set[str]:
    meta = apirule.doc.get("metadata")
    notes = meta.get("annotations") if isinstance(meta, Mapping) else None
    text = str(notes.get(ANONYMOUS, "")) if isinstance(notes, Mapping) else ""
    return {p.strip() for p in text.split(",") if p.strip()}


def _optional_apirules(
    gw: Obj, apirules: Sequence[Obj]
) -> Iterator[tuple[Obj, list[Server], list[str]]]:
    """(APIRule, the OPTIONAL_MUTUAL servers it is on, its hosts resolved) for this Gateway."""
    optional = [s for s in tls_servers(gw) if s.mode == "OPTIONAL_MUTUAL"]
    ref = f"{gw.namespace}/{gw.name}"
    for rule_obj in (a for a in apirules if _gateway_ref(a) == ref):
        hosts = [str(h) for h in _spec(rule_obj).get("hosts") or []]
        on = [s for s in optional if any(_on_server(s.hosts, h) for h in hosts)]
        if on:
            yield rule_obj, on, [r for h in hosts for r in _resolve(h, on)]


def optional_mutual_noauth(
    gateways: list[Obj], apirules: list[Obj], policies: list[Obj]
) -> Iterator[Finding]:
    """Open (noAuth) APIRule rules on an OPTIONAL_MUTUAL server that no DENY guard covers.

    A (path, method) an earlier rule of the same APIRule takes is that rule's; a path listed
    in the APIRule's `mtlskit.dev/anonymous-paths` is open by design (a note).
    """
    guards = _guards(policies)
    for gw in gateways:
        ref = f"{gw.namespace}/{gw.name}"
        for rule_obj, _, hosts in _optional_apirules(gw, apirules):
            rules = items(_spec(rule_obj).get("rules"))
            taken: set[tuple[str, str]] = set()
            open_rules = dict(_open_rules(rule_obj))
            anonymous = _anonymous(rule_obj)
            for i, rule in enumerate(rules):
                path = str(rule.get("path", ""))
                methods = [str(m) for m in rule.get("methods") or []] or [_ANY_METHOD]
                mine = [m for m in methods if (path, m) not in taken]
                taken.update((path, m) for m in methods)
                if i not in open_rules:
                    continue
                bare = [
                    m
                    for m in mine
                    if not all(any(_covers(g, h, path, m) for g in guards) for h in hosts)
                ]
                if not bare:
                    continue
                where = f"rules[{i}] (path {path!r}) is {open_rules[i]} on Gateway {ref}"
                if path in anonymous:
                    yield Finding(
                        "optional-mutual-noauth",
                        rule_obj.source,
                        rule_obj.label,
                        f"{where}, on an OPTIONAL_MUTUAL server, and listed in {ANONYMOUS}",
                        "callers without a certificate get in on this path, as the annotation "
                        "says is meant (mtlskit kyma render writes it for allow_anonymous routes)",
                        "nothing to change if the path is public; else remove it from the "
                        "annotation and add a DENY rule with notPrincipals: ['*'] for it",
                        severity="note",
                    )
                    continue
                what = f"{where}, whose server for {', '.join(hosts)} is tls.mode OPTIONAL_MUTUAL"
                if guards and bare != [_ANY_METHOD]:
                    what += f", and no DENY policy requires a principal for {', '.join(bare)}"
                yield Finding(
                    "optional-mutual-noauth",
                    rule_obj.source,
                    rule_obj.label,
                    what,
                    "OPTIONAL_MUTUAL asks for a client certificate but accepts a handshake "
                    "without one, and noAuth checks nothing: anyone without a certificate gets "
                    "in (the identity headers are then empty)",
                    "set tls.mode: MUTUAL on the Gateway server, or protect these rules with "
                    "jwt or extAuth instead of noAuth, or with a DENY AuthorizationPolicy "
                    "(notPrincipals: ['*']) for these paths",
                    severity="error",
                )


def optional_mutual_no_principal(
    gateways: list[Obj], apirules: list[Obj], policies: list[Obj]
) -> Iterator[Finding]:
    """OPTIONAL_MUTUAL servers with a host no DENY rule requires a principal on.

    The hosts are those of the APIRules on the server that have an open rule outside
    their `mtlskit.dev/anonymous-paths`, or the server's own when no APIRule is on it.
    """
    guards = _guards(policies)
    for gw in gateways:
        on_gateway = list(_optional_apirules(gw, apirules))
        for server in (s for s in tls_servers(gw) if s.mode == "OPTIONAL_MUTUAL"):
            mine = [(o, h) for o, servers, h in on_gateway if server in servers]
            hosts = [
                host
                for obj, resolved in mine
                if any(
                    str(items(_spec(obj).get("rules"))[i].get("path", "")) not in _anonymous(obj)
                    for i, _ in _open_rules(obj)
                )
                for host in resolved
                if _on_server(server.hosts, host)
            ]
            if not mine:
                hosts = list(server.hosts)
            for host in dict.fromkeys(hosts):
                if any(_in_scope(g, host) for g in guards):
                    continue
                yield Finding(
                    "optional-mutual-no-principal",
                    gw.source,
                    gw.label,
                    f"spec.servers[{server.index}] is tls.mode OPTIONAL_MUTUAL and no DENY "
                    f"AuthorizationPolicy requires a principal for {host!r}",
                    "OPTIONAL_MUTUAL completes the handshake without a client certificate; "
                    "unless a policy refuses callers without a principal, they reach every "
                    "route of this host",
                    "add a DENY AuthorizationPolicy on the ingress gateway with from.source."
                    f"notPrincipals: ['*'] and hosts [{host!r}, '{host}:*'] (mtlskit kyma "
                    "render writes one per route), or set tls.mode: MUTUAL",
                    severity="error",
                )
