"""A small model of how Istio's ingress gateway evaluates DENY AuthorizationPolicies (tests only).

Enough to ask "would this request be denied?" of what kyma render writes: hosts (exact,
`*x` suffix, `x*` prefix, `*`), paths (exact, or Envoy URI templates where `{*}` is one
segment and `{**}` any characters including `/`, istio/istio#50365), methods, notX
fields, `from.source.principals/notPrincipals` (`*` = any non-empty principal) and
`when: connection.sni`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    """What the policies see of one request."""

    host: str  # the Host header, maybe with a port
    path: str
    method: str
    principal: str | None  # None: no client certificate
    sni: str = ""


def _value(entry: str, value: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        entry, value = entry.lower(), value.lower()
    if entry == "*":
        return value != ""
    if entry.startswith("*"):
        return value.endswith(entry[1:])
    if entry.endswith("*"):
        return value.startswith(entry[:-1])
    return value == entry


def _path(entry: str, path: str) -> bool:
    if "{*}" in entry or "{**}" in entry:
        regex = "".join(
            "[^/]+" if part == "{*}" else "[^?#]*" if part == "{**}" else re.escape(part)
            for part in re.split(r"(\{\*\*?\})", entry)
        )
        return re.fullmatch(regex, path) is not None
    return _value(entry, path)


def _any(entries: Any, test: Any) -> bool:
    return any(test(str(e)) for e in entries)


def _field(op: Mapping[str, Any], key: str, test: Any) -> bool:
    """A positive field must match if present; its not-field must not."""
    if key in op and not _any(op[key], test):
        return False
    negative = "not" + key[0].upper() + key[1:]
    return not (negative in op and _any(op[negative], test))


def _operation(op: Mapping[str, Any], req: Request) -> bool:
    return (
        _field(op, "hosts", lambda e: _value(e, req.host, ignore_case=True))
        and _field(op, "paths", lambda e: _path(e, req.path))
        and _field(op, "methods", lambda e: e == req.method)
    )


def _source(source: Mapping[str, Any], req: Request) -> bool:
    principal = req.principal or ""
    return _field(source, "principals", lambda e: _value(e, principal))


def _rule(rule: Mapping[str, Any], req: Request) -> bool:
    if "from" in rule and not any(_source(f.get("source") or {}, req) for f in rule["from"]):
        return False
    if "to" in rule and not any(_operation(t.get("operation") or {}, req) for t in rule["to"]):
        return False
    for condition in rule.get("when") or []:
        assert condition["key"] == "connection.sni", condition
        if not _any(condition["values"], lambda e: _value(e, req.sni, ignore_case=True)):
            return False
    return True


def denied(objects: Iterable[Mapping[str, Any]], req: Request) -> bool:
    """Whether any DENY AuthorizationPolicy among objects matches the request."""
    for obj in objects:
        if obj.get("kind") != "AuthorizationPolicy" or obj["spec"].get("action") != "DENY":
            continue
        if any(_rule(rule, req) for rule in obj["spec"].get("rules") or []):
            return True
    return False
