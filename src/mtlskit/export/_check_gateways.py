"""kyma check, Gateways and APIRules: credentials, namespaces, hosts, paths (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from cryptography import x509

from mtlskit.export._certs import dns_covers
from mtlskit.export._finding import Finding
from mtlskit.export._objects import (
    MUTUAL,
    SERVER_KEYS,
    Obj,
    first,
    items,
    mutual_servers,
    read_certs,
    secret_data,
    tls_servers,
)

__all__ = [
    "credential_location",
    "host_not_covered",
    "mutual_without_credential",
    "paths",
]

_BRACES: Final = re.compile(r"\{\*\*?\}")
_TERMINATING: Final = ("SIMPLE", *MUTUAL)


def _spec(obj: Obj) -> Mapping[str, Any]:
    spec = obj.doc.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def mutual_without_credential(gateways: list[Obj]) -> Iterator[Finding]:
    """MUTUAL / OPTIONAL_MUTUAL servers that name no credential."""
    for gw in gateways:
        for server in tls_servers(gw):
            if server.mode not in MUTUAL or server.credentials:
                continue
            where = f"spec.servers[{server.index}].tls"
            if server.tls.get("serverCertificate") or server.tls.get("tlsCertificates"):
                yield Finding(
                    "mutual-without-credential",
                    gw.source,
                    gw.label,
                    f"{where} is {server.mode} with file paths (serverCertificate/caCertificates "
                    "or tlsCertificates) instead of a credentialName",
                    "the files must be mounted into the ingress gateway's pod, which these "
                    "manifests cannot show, and nothing rotates them",
                    "put the server certificate in a Secret in the ingress gateway's namespace "
                    "and name it in credentialName",
                    severity="warning",
                )
                continue
            yield Finding(
                "mutual-without-credential",
                gw.source,
                gw.label,
                f"{where} is {server.mode} but names no credentialName",
                "the ingress gateway then has no server certificate and no client CA for this "
                "server: Istio rejects the listener and every handshake to these hosts fails",
                "set credentialName to a Secret in the ingress gateway's namespace holding "
                "tls.crt/tls.key (and <name>-cacert with the client CA); mtlskit kyma render "
                "writes both",
                severity="error",
            )


def _serves(obj: Obj, credential: str) -> bool:
    if obj.kind == "Secret":
        return obj.name == credential
    return obj.kind == "Certificate" and _spec(obj).get("secretName") == credential


def credential_location(gateways: list[Obj], objs: list[Obj], namespace: str) -> Iterator[Finding]:
    """credentialNames with no Secret/Certificate in the set, or one outside `namespace`."""
    holders = [o for o in objs if o.kind in ("Secret", "Certificate")]
    reported: set[tuple[str, str]] = set()
    for gw in gateways:
        for server in tls_servers(gw):
            if server.mode not in _TERMINATING:
                continue
            for credential in server.credentials:
                found = [o for o in holders if _serves(o, credential)]
                if any(o.namespace == namespace for o in found):
                    continue
                for obj in found:
                    if (obj.source, credential) in reported:
                        continue
                    reported.add((obj.source, credential))
                    yield Finding(
                        "tls-outside-ingress-namespace",
                        obj.source,
                        obj.label,
                        f"the {obj.kind} for credentialName {credential!r} (Gateway "
                        f"{gw.namespace}/{gw.name}) is in namespace {obj.namespace!r}, not "
                        f"{namespace!r}",
                        f"the ingress gateway reads credentialName Secrets from its own "
                        f"namespace ({namespace}) only, whatever the Gateway's namespace: it "
                        "finds no certificate and the handshakes to these hosts fail",
                        f"set metadata.namespace: {namespace} on this {obj.kind} (the "
                        "Gateway and the APIRule may stay in the workload's namespace)",
                        severity="error",
                    )
                if not found:
                    yield Finding(
                        "credential-not-found",
                        gw.source,
                        gw.label,
                        f"spec.servers[{server.index}].tls.credentialName {credential!r} has no "
                        f"Secret or Certificate in {namespace} among the manifests checked",
                        "if the Secret does not exist in the cluster either, the ingress gateway "
                        "has no certificate for these hosts and every handshake fails",
                        f"check it with kubectl -n {namespace} get secret {credential}, or add "
                        "its manifest (or the Certificate that makes it) to the set checked",
                        severity="warning",
                    )


def _names_for(credential: str, objs: list[Obj]) -> list[str] | None:
    names: list[str] = []
    seen = False
    for obj in objs:
        spec = obj.doc.get("spec") or {}
        if obj.kind == "Certificate" and spec.get("secretName") == credential:
            seen = True
            names += [str(spec["commonName"])] if spec.get("commonName") else []
            names += [str(n) for n in spec.get("dnsNames") or []]
        elif obj.kind == "Secret" and obj.name == credential:
            found = first(secret_data(obj), SERVER_KEYS)
            chain = read_certs(found[1]) if found else []
            if chain:
                seen = True
                try:
                    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
                    names += san.value.get_values_for_type(x509.DNSName)
                except x509.ExtensionNotFound:
                    pass
    return names if seen else None


def host_not_covered(objs: list[Obj]) -> Iterator[Finding]:
    gateways = [o for o in objs if o.kind == "Gateway"]
    for gw in gateways:
        for credential, hosts in mutual_servers(gw):
            names = _names_for(credential, objs)
            if names is None:
                continue  # the certificate is not in these files: nothing to compare
            routed = [
                (o, str(h))
                for o in objs
                if o.kind == "APIRule"
                and (o.doc.get("spec") or {}).get("gateway") == f"{gw.namespace}/{gw.name}"
                for h in (o.doc.get("spec") or {}).get("hosts") or []
                if "." in str(h)  # a short host takes the Gateway's domain
                # a host another server of this Gateway serves is that server's to cover
                and any(s == "*" or dns_covers(s, str(h)) for s in hosts)
            ]
            for obj, host in [(gw, h) for h in hosts] + routed:
                if host != "*" and any(dns_covers(n, host) for n in names):
                    continue
                yield Finding(
                    "host-not-covered",
                    obj.source,
                    obj.label,
                    f"host {host!r} is not covered by the certificate in {credential!r} "
                    f"({', '.join(names) or 'no DNS names'})",
                    "clients check the server's name against its certificate and abort the "
                    "handshake",
                    f"add {host!r} (or a wildcard one label above it) to the certificate, or "
                    "serve a host the certificate names",
                    severity="error",
                )


def _suggest(path: str) -> str:
    fixed = re.sub(r"/\.?\*$", "/{**}", path)
    return re.sub(r"(?<!\{)\*(?!\*?\})", "{*}", fixed.replace(".*", "*"))


def paths(apirules: list[Obj]) -> Iterator[Finding]:
    """Wildcards outside APIRule v2's {*}/{**} operators."""
    for obj in apirules:
        version = str(obj.doc.get("apiVersion", "")).rpartition("/")[2]
        for i, rule in enumerate(items(_spec(obj).get("rules"))):
            path = str(rule.get("path", ""))
            if "*" not in _BRACES.sub("", path):
                continue
            if path == "/*" and version != "v1beta1":
                yield Finding(
                    "wildcard-path",
                    obj.source,
                    obj.label,
                    f"rules[{i}].path '/*' matches every path",
                    "the APIRule v2 schema accepts a bare '/*' and Kyma documents it as the "
                    "same as '/{**}': it works as written",
                    "nothing to change; '/{**}' says the same in v2's operator syntax",
                    severity="note",
                )
                continue
            legacy = version == "v1beta1"
            yield Finding(
                "old-path-syntax",
                obj.source,
                obj.label,
                f"rules[{i}].path {path!r} uses the old wildcard syntax",
                "APIRule v1beta1 paths are regular expressions and v1beta1 is deprecated"
                if legacy
                else "APIRule v2 matches paths with {*} (one segment) and {**} (any); its "
                "schema rejects a '*' anywhere else (only a bare '/*' is allowed), so the "
                "APIRule is not applied",
                f"write {_suggest(path)!r}"
                + (" and migrate to gateway.kyma-project.io/v2" if legacy else ""),
                severity="warning" if legacy else "error",
            )
