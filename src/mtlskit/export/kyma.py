"""Kyma's "Configure an mTLS Gateway" as data: GatewayConfig + options -> manifests (pure).

The Istio objects and what Istio cannot express come from export.istio; this module adds
the Kyma and Gardener ones (APIRule, Certificate, DNSEntry) and the secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mtlskit.config import GatewayConfig
from mtlskit.errors import ExportError
from mtlskit.export._certs import dns_covers, is_ca
from mtlskit.export._manifest import ExportWarning, meta
from mtlskit.export._routes import Route, apirule_rules, site_routes
from mtlskit.export._secrets import cacert_secret, cover_warnings, crl_warnings, tls_secret
from mtlskit.export._servers import ServerInputs, anonymous_paths, apirule, render_servers
from mtlskit.export.istio import (
    INGRESS_NAMESPACE,
    YAML_COMMENTS,
    AppProtocol,
    KeyPath,
    Mode,
    authorization_policies,
    gateway,
    gateway_server,
    ingress_warnings,
    workload_service,
)

__all__ = [
    "INGRESS_NAMESPACE",
    "YAML_COMMENTS",
    "AppProtocol",
    "ExportWarning",
    "KeyPath",
    "KymaExport",
    "KymaInputs",
    "KymaOptions",
    "ServerInputs",
    "dns_covers",
    "is_ca",
    "render_kyma",
]

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN: Final = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]{2,63}")
ServerCert = Literal["acme", "files"]


@dataclass(frozen=True, slots=True)
class KymaOptions:
    """How to expose the gateway's workload on Kyma.

    Attributes:
        domain: the subdomain the Gateway serves; hosts are `*.<domain>`.
        namespace: where the workload, its Gateway, APIRule and DNSEntry live.
        service: the Kubernetes Service name the APIRule routes to.
        service_port: its port.
        host: the first label of the exposed host (`<host>.<domain>`); the service name
            when empty.
        server_cert: "acme": a Gardener Certificate (Let's Encrypt, issuer `garden`);
            "files": a kubernetes.io/tls Secret from the gateway's own cert and key.
        gateway_name: the Istio Gateway's name.
        credential_name: the server certificate Secret; the client CA goes to
            `<credential_name>-cacert`.
        dns_target: when set, a Gardener DNSEntry points `*.<domain>` at it.
        issuer: the Gardener issuer of the Certificate.
        app_protocol: for an h2c upstream, what the workload's Service port is named and
            its appProtocol (`grpc`, the default, or `http2`), so that Istio speaks HTTP/2
            to it; refused for an HTTP/1.1 upstream.
    """

    domain: str
    namespace: str
    service: str
    service_port: int
    host: str = ""
    server_cert: ServerCert = "acme"
    gateway_name: str = "kyma-mtls-gateway"
    credential_name: str = "kyma-mtls-certs"
    dns_target: str | None = None
    issuer: str = "garden"
    app_protocol: AppProtocol | None = None

    @property
    def fqdn(self) -> str:
        """The exposed host: `<host or service>.<domain>`."""
        return f"{self.host or self.service}.{self.domain}"


@dataclass(frozen=True, slots=True)
class KymaInputs:
    """The bytes the manifests embed (the CLI reads them from the gateway's tls files).

    Attributes:
        client_ca_pem: the gateway's client_ca file: the roots clients must chain to.
        server_chain_pem: the gateway's cert file (leaf then intermediates), for "files".
        server_key_pem: the gateway's key file, for "files".
        servers: each `[[server]]`'s files, in the config's order.
        crl: the gateway's tls.crl files (PEM or DER): the `-cacert` Secret's `ca.crl`.
            CRLs the gateway fetches from URLs exist only while it runs: not here.
    """

    client_ca_pem: bytes
    server_chain_pem: bytes | None = None
    server_key_pem: bytes | None = field(default=None, repr=False)
    servers: tuple[ServerInputs, ...] = ()
    crl: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class KymaExport:
    """The rendered manifests, in apply order, and every difference from the local gateway."""

    objects: tuple[dict[str, Any], ...]
    warnings: tuple[ExportWarning, ...]


def _check_options(opts: KymaOptions) -> None:
    checks = [
        ("--domain", opts.domain, _DOMAIN, "a lowercase DNS name such as mtls.example.com"),
        ("--namespace", opts.namespace, _LABEL, "a lowercase RFC 1123 label"),
        ("--service", opts.service, _LABEL, "a Service name (lowercase RFC 1123 label)"),
        ("--gateway-name", opts.gateway_name, _LABEL, "a lowercase RFC 1123 label"),
        ("--credential-name", opts.credential_name, _LABEL, "a lowercase RFC 1123 label"),
    ]
    if opts.host:
        checks.append(("--host", opts.host, _LABEL, "one lowercase DNS label"))
    for flag, value, pattern, expected in checks:
        if not pattern.fullmatch(value):
            raise ExportError(f"{flag} {value!r} is not {expected}", f"fix {flag}")
    if not 1 <= opts.service_port <= 65535:
        raise ExportError(f"service port {opts.service_port} is out of range", "use 1-65535")
    if len(f"*.{opts.domain}") > 64:  # Certificate.spec.commonName maxLength, X.509 ub-common-name
        raise ExportError(
            f"--domain {opts.domain!r} is too long for a certificate common name (64 characters)",
            "use a shorter domain",
        )


def _server_objects(
    opts: KymaOptions, inputs: KymaInputs, warnings: list[ExportWarning]
) -> dict[str, Any]:
    wildcard = f"*.{opts.domain}"
    if opts.server_cert == "acme":
        return {
            "apiVersion": "cert.gardener.cloud/v1alpha1",
            "kind": "Certificate",
            "metadata": meta(opts.credential_name, INGRESS_NAMESPACE),
            "spec": {
                "secretName": opts.credential_name,
                "commonName": wildcard,
                "issuerRef": {"name": opts.issuer},
            },
        }
    if inputs.server_chain_pem is None or inputs.server_key_pem is None:
        raise ExportError("--server-cert files needs tls.cert and tls.key", "set both in [tls]")
    warnings += cover_warnings(
        inputs.server_chain_pem,
        (wildcard, opts.fqdn),
        subject="tls.cert",
        key="tls.cert",
        fix=f"issue a server certificate for {wildcard}, or use --server-cert acme",
    )
    return tls_secret(opts.credential_name, inputs.server_chain_pem, inputs.server_key_pem)


def _service(config: GatewayConfig, opts: KymaOptions) -> list[dict[str, Any]]:
    """The Service port an h2c upstream needs, or nothing for an HTTP/1.1 one."""
    if config.upstream_protocol != "h2c":
        if opts.app_protocol is not None:
            raise ExportError(
                f"--app-protocol {opts.app_protocol} with an HTTP/1.1 upstream ({config.upstream})",
                "an HTTP/1.1 workload needs no protocol on its Service: leave --app-protocol "
                "out, or give an h2c:// upstream",
            )
        return []
    return [
        workload_service(
            name=opts.service,
            namespace=opts.namespace,
            port=opts.service_port,
            app_protocol=opts.app_protocol or "grpc",
        )
    ]


def _site_warnings(config: GatewayConfig) -> list[ExportWarning]:
    """What the cluster does differently with routes and optional client certificates."""
    warnings: list[ExportWarning] = []
    modes = [
        config.tls.client_auth,
        *(s.client_auth or config.tls.client_auth for s in config.server),
    ]
    if "optional" in modes:
        warnings.append(
            ExportWarning(
                "client_auth = 'optional'",
                "a caller without a certificate on a route that needs one gets Istio's 403 "
                "'RBAC: access denied', not the gateway's 401 page",
                "the ingress gateway answers a DENY policy with its own fixed 403",
                "keep mtlskit gateway in the path for the pages that explain the refusal",
            )
        )
        if config.tls.verify_optional == "explain":
            warnings.append(
                ExportWarning(
                    "tls.verify_optional = 'explain'",
                    "a certificate that does not verify is refused at the handshake",
                    "OPTIONAL_MUTUAL verifies every certificate a client presents",
                    "keep mtlskit gateway in the path for the explaining page",
                )
            )
    if config.route or any(s.route for s in config.server):
        warnings.append(
            ExportWarning(
                "route paths",
                "are matched after Istio's path normalisation, which by default (BASE) "
                "resolves '.' and '..' but keeps '//', so '//admin/x' matches no '/admin/{**}'",
                "the gateway matches '//admin/x' as '/admin/x'; in the cluster it falls to a "
                "later route (or to the paths no route takes, which are denied)",
                "set meshConfig.pathNormalization.normalization: MERGE_SLASHES in Istio",
            )
        )
    return warnings


def _mode(optional: bool) -> Mode:
    return "OPTIONAL_MUTUAL" if optional else "MUTUAL"


def render_kyma(config: GatewayConfig, options: KymaOptions, inputs: KymaInputs) -> KymaExport:
    """Build the manifests of Kyma's "Configure an mTLS Gateway" for this gateway.

    In apply order: the client CA Secret `<credential>-cacert` (key `cacert`, and the CRL
    files in `ca.crl`, where Istio reads them), the server
    certificate (Gardener Certificate or a kubernetes.io/tls Secret), each [[server]]'s
    two Secrets, an optional DNSEntry, the Istio Gateway (MUTUAL, or OPTIONAL_MUTUAL for
    `client_auth = "optional"`; one server per [[server]]), for an h2c upstream the
    workload's Service port (named and with appProtocol `grpc` or `http2`, so that Envoy
    speaks HTTP/2 to the workload), the APIRule v2 (one rule per route path, carrying the
    [headers]) and an AuthorizationPolicy for the allow rules, matching the host as `name`
    and `name:*`; then each [[server]]'s APIRule and AuthorizationPolicy. Rules Istio
    cannot express are denied at the gateway (fail closed) and each one is named in a
    warning; so are the paths no route takes.

    Raises:
        ExportError: a bad option, a client CA that is not a CA, an unreadable CRL, or a
            `-cacert` Secret over Kubernetes' 1 MiB.
    """
    _check_options(options)
    if config.mode != "http":
        raise ExportError(
            "mode = tcp cannot be exposed through an APIRule (HTTP routes only)",
            "render an HTTP gateway, or expose the TCP service with your own Istio Gateway",
        )
    warnings: list[ExportWarning] = []
    service = (options.service, options.service_port)
    objects: list[dict[str, Any]] = [
        cacert_secret(options.credential_name, inputs.client_ca_pem, "tls.client_ca", inputs.crl),
        _server_objects(options, inputs, warnings),
    ]
    warnings += crl_warnings(
        inputs.client_ca_pem, inputs.crl, key="tls.client_ca", crl_key="tls.crl"
    )
    sites = render_servers(
        config,
        inputs.servers,
        namespace=options.namespace,
        gateway_name=options.gateway_name,
        credential_name=options.credential_name,
        service=service,
    )
    objects += sites.secrets
    if options.dns_target:
        entry = meta(f"{options.gateway_name}-dns", options.namespace)
        entry["annotations"] = {"dns.gardener.cloud/class": "garden"}
        objects.append(
            {
                "apiVersion": "dns.gardener.cloud/v1alpha1",
                "kind": "DNSEntry",
                "metadata": entry,
                "spec": {
                    "dnsName": f"*.{options.domain}",
                    "ttl": 600,
                    "targets": [options.dns_target],
                },
            }
        )
    optional = config.tls.client_auth == "optional"
    top = gateway_server(
        port_name="mtls",
        mode=_mode(optional),
        credential_name=options.credential_name,
        min_version=config.tls.min_version,
        hosts=[f"*.{options.domain}"],
    )
    istio_gateway = gateway(
        name=options.gateway_name, namespace=options.namespace, servers=[top, *sites.servers]
    )
    routes: list[Route] = site_routes(config.route, config.policy, where="")
    rules, said = apirule_rules(routes, headers=config.headers, service=service)
    warnings += said
    policies, said = authorization_policies(
        routes,
        name=f"{options.gateway_name}-{options.service}-clients",
        hosts=[options.fqdn],
        optional=optional,
    )
    warnings += said
    top_rule = apirule(
        options.service,
        namespace=options.namespace,
        gateway=f"{options.namespace}/{options.gateway_name}",
        hosts=[options.fqdn],
        service=service,
        rules=rules,
        anonymous=anonymous_paths(routes),
    )
    objects += [istio_gateway, *_service(config, options), top_rule, *policies, *sites.routing]
    warnings += sites.warnings
    warnings += ingress_warnings(
        config, credential_name=options.credential_name, crl_exported=bool(inputs.crl)
    )
    warnings += _site_warnings(config)
    return KymaExport(tuple(objects), tuple(warnings))
