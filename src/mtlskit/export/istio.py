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
from mtlskit.export._routes import Route, deny_rules

__all__ = [
    "INGRESS_NAMESPACE",
    "INGRESS_SELECTOR",
    "YAML_COMMENTS",
    "KeyPath",
    "Mode",
    "authorization_policies",
    "gateway",
    "gateway_server",
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
Mode = Literal["MUTUAL", "OPTIONAL_MUTUAL"]


def gateway_server(
    *, port_name: str, mode: Mode, credential_name: str, min_version: str, hosts: Sequence[str]
) -> dict[str, Any]:
    """One `spec.servers[]` entry: HTTPS on 443, client certificates from credential_name.

    Each server gets its own port name: Istio then gives each its own route table, so a
    request on a connection made for one server's names never reaches another's routes
    (it gets 404, where the local gateway answers 421).
    """
    return {
        "port": {"number": 443, "name": port_name, "protocol": "HTTPS"},
        "tls": {
            "mode": mode,
            "credentialName": credential_name,
            "minProtocolVersion": _MIN_VERSION[min_version],
        },
        "hosts": list(hosts),
    }


def gateway(*, name: str, namespace: str, servers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The Istio Gateway on the ingress gateway with these servers."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": meta(name, namespace),
        "spec": {"selector": dict(INGRESS_SELECTOR), "servers": list(servers)},
    }


def _with_ports(hosts: Sequence[str]) -> list[str]:
    """Each host as `name` and `name:*` (Istio prefix match: any port); see YAML_COMMENTS."""
    return [form for host in hosts for form in (host, f"{host}:*")]


def _scoped(rules: Sequence[dict[str, Any]], hosts: Sequence[str]) -> list[dict[str, Any]]:
    """Each rule limited to the hosts: exact names by Host (with and without a port),
    wildcard names by SNI, since a suffix `*.x` cannot carry `:*` (one `*` per entry) and
    an SNI never has a port."""
    exact = [h for h in hosts if not h.startswith("*")]
    wild = [h for h in hosts if h.startswith("*")]
    out: list[dict[str, Any]] = []
    for rule in rules:
        if exact:
            scoped = {k: v for k, v in rule.items() if k != "to"}
            scoped["to"] = [
                {"operation": {"hosts": _with_ports(exact), **to["operation"]}} for to in rule["to"]
            ]
            out.append(scoped)
        if wild:
            sni = dict(rule)
            sni["when"] = [{"key": "connection.sni", "values": wild}]
            if not any(to["operation"] for to in rule["to"]):
                del sni["to"]
            out.append(sni)
    return out


def authorization_policies(
    routes: Sequence[Route], *, name: str, hosts: Sequence[str], optional: bool
) -> tuple[list[dict[str, Any]], list[ExportWarning]]:
    """The AuthorizationPolicy that enforces a server's routes at the ingress gateway.

    Args:
        routes: the server's routes (export._routes.site_routes), [policy] last.
        name: the AuthorizationPolicy's name.
        hosts: the exposed hosts the rules apply to.
        optional: OPTIONAL_MUTUAL: callers without a certificate pass the handshake, so
            every route that is not anonymous must require a principal.

    Returns:
        (objects, warnings): no object when nothing is denied (allow_all with MUTUAL);
        one warning per rule Istio cannot express, which the policy then denies.
    """
    rules, denied, warnings = deny_rules(routes, optional=optional)
    if not rules:
        return [], warnings  # MUTUAL already admits exactly the clients the CA verifies
    # DENY, not ALLOW: an ALLOW policy on the shared ingress gateway would deny every
    # other host it serves. Deny these hosts to every client that no expressible rule
    # admits, with and without a port in the Host header, or the port form slips past.
    metadata = meta(name, INGRESS_NAMESPACE)
    if denied:
        metadata["annotations"] = {"mtlskit.dev/rules-not-expressed": "; ".join(denied)}
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": dict(INGRESS_SELECTOR)},
            "action": "DENY",
            "rules": _scoped(rules, hosts),
        },
    }
    return [policy], warnings


def ingress_warnings(
    config: GatewayConfig, *, credential_name: str, crl_exported: bool = False
) -> list[ExportWarning]:
    """What the local gateway does that the ingress gateway will not: CRLs, Client-Cert."""
    warnings: list[ExportWarning] = []
    if config.tls.crl and not crl_exported:
        warnings.append(
            ExportWarning(
                "tls.crl",
                "revocation lists are not exported",
                "the ingress gateway reads a CRL only from its own secrets, not from files",
                f"render with the CRL files readable: they go into {credential_name}-cacert "
                "(key ca.crl)",
            )
        )
    if config.tls.crl_urls or config.tls.crl_from_cdp:
        warnings.append(
            ExportWarning(
                "tls.crl_urls / tls.crl_from_cdp",
                "CRLs fetched from URLs are not exported",
                "they are fetched by the running gateway, not at render time, and Istio's "
                "ingress gateway fetches no CRL itself",
                f"save the CRLs to files listed in tls.crl, then render: they go into "
                f"{credential_name}-cacert (key ca.crl)",
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
