"""kyma check, AuthorizationPolicies: host lists that a Host with a port slips past (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final

from mtlskit.export._finding import Finding
from mtlskit.export._objects import Obj, items

__all__ = ["host_without_port"]

# Istio matches hosts/notHosts against the Host header with its port, and its gateways keep
# the port (ISTIO_GATEWAY_STRIP_HOST_PORT is off by default, istio/istio#25350). What a rule
# listing only `name` then does with `Host: name:443`, by action and field:
_PORT_MISSED: Final = {
    ("DENY", "hosts"): "does not match this DENY rule, so a client it should deny gets through",
    ("CUSTOM", "hosts"): "does not match this rule and skips its external authorizer",
    ("ALLOW", "notHosts"): "is not excluded by notHosts, so this ALLOW rule admits it, past "
    "the rules meant for that host",
    ("ALLOW", "hosts"): "does not match this ALLOW rule, so the clients it should admit get 403 "
    "(istio/istio#44080)",
    ("DENY", "notHosts"): "is not excluded by notHosts, so this DENY rule refuses it",
}
_WITH_PORT: Final = re.compile(r":(?:[0-9]+|\*)$")


def _prefix(entry: str) -> bool:
    return entry.endswith("*") and not entry.startswith("*")


def _misses_ports(entry: str, entries: Sequence[str]) -> bool:
    """Whether entry matches a host name while no entry matches that name with a port.

    Istio reads `*` as any host, `*x` as a suffix, `x*` as a prefix and the rest as an
    exact name, ignoring case (GHSA-7774-7vr3-cc8j). A prefix matches the port forms of
    the names it matches, so it never misses; a suffix cannot carry `:*` (one `*` only).
    """
    if entry == "*" or _prefix(entry) or _WITH_PORT.search(entry) or "*" in entries:
        return False
    if entry.startswith("*"):
        return True
    with_colon = f"{entry.lower()}:"
    return not any(_prefix(e) and with_colon.startswith(e[:-1].lower()) for e in entries)


def _host_lists(policy: Obj) -> Iterator[tuple[str, str, list[str]]]:
    """(where, field, entries) for each hosts/notHosts list in the policy's rules."""
    for i, rule in enumerate(items((policy.doc.get("spec") or {}).get("rules"))):
        for j, to in enumerate(items(rule.get("to"))):
            operation = to.get("operation") or {}
            for key in ("hosts", "notHosts"):
                listed = operation.get(key)
                if isinstance(listed, list):
                    yield f"rules[{i}].to[{j}].operation.{key}", key, [str(e) for e in listed]


def host_without_port(policies: list[Obj]) -> Iterator[Finding]:
    for obj in policies:
        action = str((obj.doc.get("spec") or {}).get("action") or "ALLOW")  # Istio's default
        for where, key, entries in _host_lists(obj):
            missed = _PORT_MISSED.get((action, key))
            if missed is None:
                continue  # AUDIT only logs
            for entry in dict.fromkeys(entries):
                if not _misses_ports(entry, entries):
                    continue
                if entry.startswith("*"):
                    example = f"x{entry[1:]}:443"
                    what = f"{where} lists {entry!r}, a suffix that no Host with a port matches"
                    fix = (
                        f"list each host {entry!r} stands for as 'name' and 'name:*' "
                        f"({entry + ':*'!r} is no pattern: Istio reads a leading '*' as a "
                        "suffix match and allows one '*')"
                    )
                else:
                    example = f"{entry}:443"
                    what = f"{where} lists {entry!r} but not {entry + ':*'!r}"
                    fix = f"add {entry + ':*'!r} to the same list (mtlskit kyma render does)"
                why = (
                    f"Istio matches {key} against the Host header including its port and does "
                    f"not strip the port by default: Host {example!r} {missed}"
                )
                yield Finding(
                    "host-without-port", obj.source, obj.label, what, why, fix, severity="error"
                )
