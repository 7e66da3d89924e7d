"""Allow rules as Istio sees a client: SPIFFE principals, and the rules it cannot express (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mtlskit.export._manifest import ExportWarning
from mtlskit.policy import AccessPolicy

__all__ = ["Principals", "deny_source", "principals"]

_UNEXPRESSED: Final = {
    "allow_cn": "the subject CN",
    "allow_ou": "the subject OU",
    "allow_dns": "a DNS SAN",
}


@dataclass(frozen=True, slots=True)
class Principals:
    """What an AuthorizationPolicy can say about one set of allow rules.

    Attributes:
        any: allow_all: every client the CA verifies.
        names: the exact principals the rules admit (spiffe:// IDs without the scheme).
        denied: the rules Istio cannot express, as "where.key = 'value'" (denied there).
    """

    any: bool
    names: tuple[str, ...]
    denied: tuple[str, ...]


def _principal(pattern: str) -> str | None:
    """An exact spiffe:// URI as an Istio principal (Istio prepends spiffe:// itself)."""
    if "*" in pattern or not pattern.lower().startswith("spiffe://"):
        return None
    return pattern[len("spiffe://") :]


def principals(
    policy: AccessPolicy, where: str, about: str = ""
) -> tuple[Principals, list[ExportWarning]]:
    """The principals of `policy`, and one warning per rule Istio cannot express.

    Args:
        policy: the allow rules.
        where: how warnings name the rules' table ("policy", "route[2]", "server[1].policy").
        about: appended to each warning's subject, e.g. " (route /admin/{**})".
    """
    if policy.allow_all:
        return Principals(True, (), ()), []
    names: list[str] = []
    denied: list[str] = []
    warnings: list[ExportWarning] = []
    for key, why in _UNEXPRESSED.items():
        for value in getattr(policy, key):
            denied.append(f"{where}.{key} = {value!r}")
            warnings.append(
                ExportWarning(
                    f"{where}.{key} = {value!r}{about}",
                    "cannot be expressed in Istio; the rendered AuthorizationPolicy denies "
                    "these clients at the ingress gateway",
                    f"an AuthorizationPolicy matches a client certificate only by its SPIFFE "
                    f"URI SAN (source.principals), never by {why}",
                    "give these clients a spiffe:// URI SAN and allow it with allow_uri, or "
                    "keep mtlskit gateway in the path to enforce this rule",
                )
            )
    for pattern in policy.allow_uri:
        principal = _principal(pattern)
        if principal is not None:
            names.append(principal)
            continue
        denied.append(f"{where}.allow_uri = {pattern!r}")
        warnings.append(
            ExportWarning(
                f"{where}.allow_uri = {pattern!r}{about}",
                "cannot be expressed exactly in Istio; the rendered AuthorizationPolicy "
                "denies these clients at the ingress gateway",
                "Istio principals are exact spiffe:// IDs with at most a leading or trailing "
                "'*' matching any characters, not whole path segments",
                "list the exact spiffe:// IDs in allow_uri, or keep mtlskit gateway in the path",
            )
        )
    return Principals(False, tuple(dict.fromkeys(names)), tuple(denied)), warnings


def deny_source(allowed: Principals, *, optional: bool) -> tuple[bool, list[dict[str, Any]]]:
    """The `from` of a DENY rule that refuses every client `allowed` does not admit.

    Returns:
        (needed, from): needed is False when no client has to be refused (allow_all with
        MUTUAL TLS: the handshake already admits exactly the verified clients). An empty
        `from` refuses every caller (no rule Istio can express admits anyone).
    """
    if allowed.any:
        if not optional:
            return False, []
        # OPTIONAL_MUTUAL lets a caller without a certificate through the handshake. Istio
        # reads the principal "*" as the regex ".+" (any non-empty principal; Envoy falls
        # back to a DNS SAN, then the subject, when there is no URI SAN), so this denies
        # exactly the callers that presented no certificate.
        return True, [{"source": {"notPrincipals": ["*"]}}]
    if allowed.names:
        # A caller without a certificate has no principal: notPrincipals refuses it too.
        return True, [{"source": {"notPrincipals": list(allowed.names)}}]
    return True, []
