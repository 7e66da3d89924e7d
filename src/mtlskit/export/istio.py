"""Istio's part of the export: the MUTUAL Gateway, the AuthorizationPolicy, and its limits (pure).

What the ingress gateway cannot do that the local gateway does (rules it cannot express,
CRL files, the Client-Cert header) comes back as ExportWarning values, and the rules it
cannot express are denied there: the export fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from mtlskit.config import GatewayConfig
from mtlskit.export._manifest import ExportWarning, meta
from mtlskit.policy import AccessPolicy

__all__ = [
    "INGRESS_NAMESPACE",
    "INGRESS_SELECTOR",
    "YAML_COMMENTS",
    "KeyPath",
    "authorization_policies",
    "gateway",
    "ingress_warnings",
    "workload_service",
]

# Istio reads credentialName secrets (and `<name>-cacert`) from the ingress gateway's namespace.
INGRESS_NAMESPACE: Final = "istio-system"
INGRESS_SELECTOR: Final = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
_MIN_VERSION: Final = {"1.2": "TLSV1_2", "1.3": "TLSV1_3"}
# A key inside a manifest, from its root: mapping keys, None for every item of a list.
KeyPath = tuple[str | None, ...]

# Istio matches an AuthorizationPolicy's hosts against the Host header with its port, and its
# gateways keep the port (ISTIO_GATEWAY_STRIP_HOST_PORT is off by default, istio/istio#25350):
# `Host: name:443` is routed to `name` but matches no rule that lists only `name`
# (istio/istio#44080). The YAML says so where a reader sees the doubled hosts.
YAML_COMMENTS: Final[Mapping[str, tuple[tuple[KeyPath, tuple[str, ...]], ...]]] = {
    "AuthorizationPolicy": (
        (
            ("spec", "rules", None, "to", None, "operation", "hosts"),
            (
                "name and name:*: Istio matches hosts against the Host header with its port",
                "(Host: name:443) and does not strip the port by default; with the name alone,",
                "a client outside the allow list gets past this rule by adding the port.",
            ),
        ),
    ),
    # An h2c upstream's Service (workload_service) is meant to be merged into the workload's
    # own Service, so the YAML says what applying it changes and what it does not do.
    "Service": (
        (
            ("spec", "ports"),
            (
                "kubectl apply merges this into the workload's Service (ports merge by port",
                "number): it names the port and sets appProtocol, so that Envoy speaks HTTP/2",
                "(h2c) to the workload instead of HTTP/1.1. It has no selector: if the Service",
                "does not exist yet, add the selector of the workload's pods before applying.",
            ),
        ),
    ),
}
# Istio's protocol selection for a Service port: appProtocol (Kubernetes 1.18+), which wins
# over the port name `<protocol>[-<suffix>]`; grpc and http2 both make Envoy speak HTTP/2
# to the workload (a gateway otherwise forwards HTTP/1.1 whatever the client spoke).
# https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/
AppProtocol = Literal["grpc", "http2"]
_UNEXPRESSED: Final = {
    "allow_cn": "the subject CN",
    "allow_ou": "the subject OU",
    "allow_dns": "a DNS SAN",
}


def gateway(
    config: GatewayConfig, *, name: str, namespace: str, credential_name: str, domain: str
) -> dict[str, Any]:
    """The Istio Gateway serving `*.<domain>` on 443 with MUTUAL TLS from credential_name."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": meta(name, namespace),
        "spec": {
            "selector": dict(INGRESS_SELECTOR),
            "servers": [
                {
                    "port": {"number": 443, "name": "mtls", "protocol": "HTTPS"},
                    "tls": {
                        "mode": "MUTUAL",
                        "credentialName": credential_name,
                        "minProtocolVersion": _MIN_VERSION[config.tls.min_version],
                    },
                    "hosts": [f"*.{domain}"],
                }
            ],
        },
    }


def _principal(pattern: str) -> str | None:
    """An exact spiffe:// URI as an Istio principal (Istio prepends spiffe:// itself)."""
    if "*" in pattern or not pattern.lower().startswith("spiffe://"):
        return None
    return pattern[len("spiffe://") :]


def _with_ports(hosts: Sequence[str]) -> list[str]:
    """Each host as `name` and `name:*` (Istio prefix match: any port); see YAML_COMMENTS."""
    return [form for host in hosts for form in (host, f"{host}:*")]


def authorization_policies(
    policy: AccessPolicy, *, name: str, host: str
) -> tuple[list[dict[str, Any]], list[ExportWarning]]:
    """The AuthorizationPolicy that enforces `policy` for `host` at the ingress gateway.

    Args:
        policy: the gateway's allow rules.
        name: the AuthorizationPolicy's name.
        host: the exposed host the rules apply to.

    Returns:
        (objects, warnings): no object for allow_all; one warning per rule Istio cannot
        express, which the policy then denies.
    """
    if policy.allow_all:
        return [], []  # MUTUAL already admits exactly the clients the CA verifies
    principals: list[str] = []
    denied: list[str] = []
    warnings: list[ExportWarning] = []
    for key, why in _UNEXPRESSED.items():
        for value in getattr(policy, key):
            denied.append(f"policy.{key} = {value!r}")
            warnings.append(
                ExportWarning(
                    f"policy.{key} = {value!r}",
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
            principals.append(principal)
            continue
        denied.append(f"policy.allow_uri = {pattern!r}")
        warnings.append(
            ExportWarning(
                f"policy.allow_uri = {pattern!r}",
                "cannot be expressed exactly in Istio; the rendered AuthorizationPolicy "
                "denies these clients at the ingress gateway",
                "Istio principals are exact spiffe:// IDs with at most a leading or trailing "
                "'*' matching any characters, not whole path segments",
                "list the exact spiffe:// IDs in allow_uri, or keep mtlskit gateway in the path",
            )
        )
    # DENY, not ALLOW: an ALLOW policy on the shared ingress gateway would deny every
    # other host it serves. Deny this host to every client that no expressible rule admits,
    # with and without a port in the Host header, or the port form slips past the DENY.
    rule: dict[str, Any] = {}
    if principals:
        rule["from"] = [{"source": {"notPrincipals": principals}}]
    rule["to"] = [{"operation": {"hosts": _with_ports([host])}}]
    metadata = meta(name, INGRESS_NAMESPACE)
    if denied:
        metadata["annotations"] = {"mtlskit.dev/rules-not-expressed": "; ".join(denied)}
    policies = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": metadata,
            "spec": {
                "selector": {"matchLabels": dict(INGRESS_SELECTOR)},
                "action": "DENY",
                "rules": [rule],
            },
        }
    ]
    return policies, warnings


def ingress_warnings(config: GatewayConfig, *, credential_name: str) -> list[ExportWarning]:
    """What the local gateway does that the ingress gateway will not: CRLs, Client-Cert."""
    warnings: list[ExportWarning] = []
    if config.tls.crl:
        warnings.append(
            ExportWarning(
                "tls.crl",
                "revocation lists are not exported",
                "the ingress gateway reads a CRL only from its own secrets, not from files",
                f"add the CRL to {credential_name}-cacert as Istio's Gateway TLS "
                "docs describe (caCrl)",
            )
        )
    if "client-cert" in config.identity_headers:
        warnings.append(
            ExportWarning(
                "identity_headers = client-cert",
                "no RFC 9440 Client-Cert header is sent on Kyma",
                "Istio's ingress gateway (Envoy) cannot emit Client-Cert; it sets "
                "x-forwarded-client-cert (SANITIZE_SET)",
                "read x-forwarded-client-cert, or add a [headers] entry with "
                "%DOWNSTREAM_PEER_CERT% (URL-encoded PEM)",
            )
        )
    return warnings


def workload_service(
    *, name: str, namespace: str, port: int, app_protocol: AppProtocol
) -> dict[str, Any]:
    """The workload's Service port as Istio must see it to speak h2c to an h2c upstream.

    Only the port: `kubectl apply` merges it into the existing Service (ServicePort's merge
    key is `port`), naming it `app_protocol` and setting `appProtocol`, both of which
    Istio reads. No selector, so applying it never changes which pods the Service picks,
    and no labels, so it claims no ownership (a Helm chart's `managed-by` stays).
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "ports": [
                {"name": app_protocol, "port": port, "protocol": "TCP", "appProtocol": app_protocol}
            ]
        },
    }
