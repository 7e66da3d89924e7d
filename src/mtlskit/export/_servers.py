"""Each `[[server]]` in the cluster: its Secrets, Gateway server, APIRule and policy (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mtlskit.config import GatewayConfig
from mtlskit.errors import ExportError
from mtlskit.export._manifest import ExportWarning, meta
from mtlskit.export._routes import Route, apirule_rules, service_of, site_routes
from mtlskit.export._secrets import cacert_secret, cover_warnings, crl_warnings, tls_secret
from mtlskit.export.istio import Mode, authorization_policies, gateway_server
from mtlskit.sites import ServerConfig

__all__ = ["ServerInputs", "Sites", "anonymous_paths", "apirule", "render_servers"]


@dataclass(frozen=True, slots=True)
class ServerInputs:
    """The bytes of one `[[server]]`'s files, in the order of the config's servers.

    Attributes:
        client_ca_pem: its client_ca file.
        chain_pem: its cert file (leaf then intermediates).
        key_pem: its key file.
        crl: its crl files (PEM or DER), for the `-cacert` Secret's `ca.crl`.
    """

    client_ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    crl: tuple[bytes, ...] = ()


@dataclass(slots=True)
class Sites:
    """What the [[server]]s add, by place in the apply order."""

    secrets: list[dict[str, Any]] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    routing: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[ExportWarning] = field(default_factory=list)


def _slug(server: ServerConfig, i: int) -> str:
    text = (server.name or server.server_names[0]).lower().replace("*", "wildcard")
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40].strip("-")
    if not slug:
        raise ExportError(
            f"server[{i}] ({server.label}): no name to build object names from",
            "set name = \"api\" (letters, digits and '-') in the [[server]]",
        )
    return slug


def anonymous_paths(routes: Sequence[Route]) -> list[str]:
    """The paths of the anonymous routes, for the APIRule's `mtlskit.dev/anonymous-paths`."""
    return list(dict.fromkeys(p for r in routes if r.anonymous for p in r.paths))


def apirule(
    name: str,
    *,
    namespace: str,
    gateway: str,
    hosts: Sequence[str],
    service: tuple[str, int],
    rules: list[dict[str, Any]],
    anonymous: Sequence[str],
) -> dict[str, Any]:
    """An APIRule v2 for the hosts; `anonymous` lists the rule paths meant to be open
    (kyma check then says so in a note instead of flagging them on OPTIONAL_MUTUAL)."""
    if not rules:
        raise ExportError(
            f"APIRule {name}: no route has a method an APIRule can list",
            "give the routes methods such as GET or POST, or leave methods out",
        )
    metadata = meta(name, namespace)
    if anonymous:
        metadata["annotations"] = {"mtlskit.dev/anonymous-paths": ", ".join(anonymous)}
    return {
        "apiVersion": "gateway.kyma-project.io/v2",
        "kind": "APIRule",
        "metadata": metadata,
        "spec": {
            "gateway": gateway,
            "hosts": list(hosts),
            "service": {"name": service[0], "port": service[1]},
            "rules": rules,
        },
    }


def _service(
    server: ServerConfig, where: str, default: tuple[str, int], warnings: list[ExportWarning]
) -> tuple[str, int]:
    if server.upstream is None:
        return default
    own = service_of(server.upstream)
    if own is None:
        warnings.append(
            ExportWarning(
                f"{where}.upstream = '{server.upstream}'",
                f"is not a Service name; its APIRule routes to {default[0]}:{default[1]}",
                "an APIRule routes to a Kubernetes Service, not to an address",
                "write the upstream as http://SERVICE.NAMESPACE:PORT",
            )
        )
        return default
    return own


def render_servers(
    config: GatewayConfig,
    inputs: Sequence[ServerInputs],
    *,
    namespace: str,
    gateway_name: str,
    credential_name: str,
    service: tuple[str, int],
) -> Sites:
    """Per [[server]]: Secrets `<credential>-<name>` and `-cacert` from its files, a
    Gateway server for its server_names, an APIRule per server name (v2 takes one host)
    with its routes, and an AuthorizationPolicy with its routes and policy.

    Raises:
        ExportError: a missing input, two servers with one object name, a client CA that
            is not a CA.
    """
    if len(inputs) != len(config.server):
        raise ExportError(
            f"{len(config.server)} [[server]] table(s) but files for {len(inputs)}",
            "pass one ServerInputs per [[server]], in order",
        )
    out = Sites()
    seen: dict[str, int] = {}
    for i, (server, files) in enumerate(zip(config.server, inputs, strict=True), 1):
        where = f"server[{i}]"
        slug = _slug(server, i)
        if slug in seen:
            raise ExportError(
                f"{where} ({server.label}) and server[{seen[slug]}] both make objects named "
                f"{slug!r}",
                "give the [[server]] tables distinct names (name = ...)",
            )
        seen[slug] = i
        credential = f"{credential_name}-{slug}"
        hosts = [h.lower().rstrip(".") for h in server.server_names]
        optional = (server.client_auth or config.tls.client_auth) == "optional"
        mode: Mode = "OPTIONAL_MUTUAL" if optional else "MUTUAL"
        out.secrets += [
            cacert_secret(
                credential, files.client_ca_pem, f"{where}.client_ca", files.crl, f"{where}.crl"
            ),
            tls_secret(credential, files.chain_pem, files.key_pem),
        ]
        out.warnings += cover_warnings(
            files.chain_pem,
            hosts,
            subject=f"{where}.cert",
            key=f"{where}.cert",
            fix=f"issue {where}'s certificate for {', '.join(hosts)}",
        )
        out.servers.append(
            gateway_server(
                port_name=f"mtls-{slug}",
                mode=mode,
                credential_name=credential,
                min_version=config.tls.min_version,
                hosts=hosts,
            )
        )
        routes = site_routes(server.route, server.policy, where=f"{where}.")
        own = _service(server, where, service, out.warnings)
        rules, said = apirule_rules(routes, headers=[*config.headers, *server.headers], service=own)
        out.warnings += said
        policies, said = authorization_policies(
            routes, name=f"{gateway_name}-{slug}-clients", hosts=hosts, optional=optional
        )
        out.warnings += said
        # An APIRule v2 takes one host: one per server name, the same rules in each.
        out.routing += [
            apirule(
                f"{gateway_name}-{slug}" + (f"-{k}" if k > 1 else ""),
                namespace=namespace,
                gateway=f"{namespace}/{gateway_name}",
                hosts=[host],
                service=own,
                rules=rules,
                anonymous=anonymous_paths(routes),
            )
            for k, host in enumerate(hosts, 1)
        ]
        out.routing += policies
        out.warnings += crl_warnings(
            files.client_ca_pem, files.crl, key=f"{where}.client_ca", crl_key=f"{where}.crl"
        )
        if server.crl and not files.crl:
            out.warnings.append(
                ExportWarning(
                    f"{where}.crl",
                    "revocation lists are not exported",
                    "the ingress gateway reads a CRL only from its own secrets, not from files",
                    f"render with the CRL files readable: they go into {credential}-cacert "
                    "(key ca.crl)",
                )
            )
    return out
