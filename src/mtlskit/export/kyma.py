"""Kyma's "Configure an mTLS Gateway" as data: GatewayConfig + options -> manifests (pure).

The Istio objects and what Istio cannot express come from export.istio; this module adds
the Kyma and Gardener ones (APIRule, Certificate, DNSEntry) and the secrets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cryptography import x509

from mtlskit.config import GatewayConfig
from mtlskit.errors import CertificateLoadError, ExportError
from mtlskit.export._certs import dns_covers, is_ca
from mtlskit.export._manifest import ExportWarning, b64, meta
from mtlskit.export.istio import (
    INGRESS_NAMESPACE,
    YAML_COMMENTS,
    AppProtocol,
    KeyPath,
    authorization_policies,
    gateway,
    ingress_warnings,
    workload_service,
)
from mtlskit.pki.pem import certs_to_pem, load_certificates

__all__ = [
    "INGRESS_NAMESPACE",
    "YAML_COMMENTS",
    "AppProtocol",
    "ExportWarning",
    "KeyPath",
    "KymaExport",
    "KymaInputs",
    "KymaOptions",
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
    """

    client_ca_pem: bytes
    server_chain_pem: bytes | None = None
    server_key_pem: bytes | None = field(default=None, repr=False)


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


def _client_ca(pem: bytes) -> list[x509.Certificate]:
    try:
        certs = load_certificates(pem, "tls.client_ca")
    except CertificateLoadError as exc:
        raise ExportError(exc.message, exc.hint) from exc
    for cert in certs:
        if not is_ca(cert):
            raise ExportError(
                f"tls.client_ca holds {cert.subject.rfc4514_string()!r}, which is not a CA",
                "the -cacert secret must hold the CA that issues client certificates, not a leaf",
            )
    return certs


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
    try:
        leaf = load_certificates(inputs.server_chain_pem, "tls.cert")[0]
    except CertificateLoadError as exc:
        raise ExportError(exc.message, exc.hint) from exc
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    for host in (wildcard, opts.fqdn):
        if not any(dns_covers(n, host) for n in names):
            warnings.append(
                ExportWarning(
                    f"tls.cert ({', '.join(names) or 'no DNS name'})",
                    f"is exported but does not cover {host}",
                    "clients check the server's name against its certificate",
                    f"issue a server certificate for {wildcard}, or use --server-cert acme",
                )
            )
            break
    # Never ca.crt here: Istio would validate clients with it and ignore <name>-cacert
    # (istio/istio#29856).
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(opts.credential_name, INGRESS_NAMESPACE),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(inputs.server_chain_pem), "tls.key": b64(inputs.server_key_pem)},
    }


def _apirule(config: GatewayConfig, opts: KymaOptions) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "path": "/{**}",  # APIRule v2: every path; the old "/.*" and "/*" are gone
        "methods": ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
        "noAuth": True,  # the client certificate is the authentication (Gateway MUTUAL)
    }
    if config.headers:
        rule["request"] = {"headers": dict(config.headers)}
    return {
        "apiVersion": "gateway.kyma-project.io/v2",
        "kind": "APIRule",
        "metadata": meta(opts.service, opts.namespace),
        "spec": {
            "gateway": f"{opts.namespace}/{opts.gateway_name}",
            "hosts": [opts.fqdn],
            "service": {"name": opts.service, "port": opts.service_port},
            "rules": [rule],
        },
    }


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


def render_kyma(config: GatewayConfig, options: KymaOptions, inputs: KymaInputs) -> KymaExport:
    """Build the manifests of Kyma's "Configure an mTLS Gateway" for this gateway.

    In apply order: the client CA Secret `<credential>-cacert` (key `cacert`), the server
    certificate (Gardener Certificate or a kubernetes.io/tls Secret), an optional DNSEntry,
    the Istio Gateway (MUTUAL), for an h2c upstream the workload's Service port (named and
    with appProtocol `grpc` or `http2`, so that Envoy speaks HTTP/2 to the workload), the
    APIRule v2 carrying the gateway's [headers], and an AuthorizationPolicy for the allow
    rules, matching the host as `name` and `name:*`. Rules Istio cannot express are denied
    at the gateway (fail closed) and each one is named in a warning.

    Raises:
        ExportError: a bad option, or a client CA that is not a CA.
    """
    _check_options(options)
    if config.mode != "http":
        raise ExportError(
            "mode = tcp cannot be exposed through an APIRule (HTTP routes only)",
            "render an HTTP gateway, or expose the TCP service with your own Istio Gateway",
        )
    warnings: list[ExportWarning] = []
    cas = _client_ca(inputs.client_ca_pem)
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta(f"{options.credential_name}-cacert", INGRESS_NAMESPACE),
            "type": "Opaque",
            "data": {"cacert": b64(_pem(cas, inputs.client_ca_pem))},
        },
        _server_objects(options, inputs, warnings),
    ]
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
    istio_gateway = gateway(
        config,
        name=options.gateway_name,
        namespace=options.namespace,
        credential_name=options.credential_name,
        domain=options.domain,
    )
    policies, not_expressed = authorization_policies(
        config.policy,
        name=f"{options.gateway_name}-{options.service}-clients",
        host=options.fqdn,
    )
    objects += [istio_gateway, *_service(config, options), _apirule(config, options), *policies]
    warnings += not_expressed
    warnings += ingress_warnings(config, credential_name=options.credential_name)
    return KymaExport(tuple(objects), tuple(warnings))


def _pem(certs: Sequence[x509.Certificate], original: bytes) -> bytes:
    """The client CA file as given when it is PEM (byte for byte), else re-encoded."""
    if original.lstrip().startswith(b"-----BEGIN"):
        return original
    return certs_to_pem(certs)
