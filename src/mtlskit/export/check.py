"""Lint Kyma/Istio mTLS manifests for the known pitfalls: what, why, fix (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtlskit.export._certs import dns_covers, is_ca
from mtlskit.export._objects import (
    CA_KEYS,
    SERVER_KEYS,
    Obj,
    first,
    items,
    mutual_servers,
    objects,
    read_certs,
    secret_data,
)
from mtlskit.export.istio import INGRESS_NAMESPACE

__all__ = ["CODES", "Finding", "check_manifests"]

CODES: Final = {
    "ca-in-server-secret": "the server secret also holds a CA, so Istio ignores <name>-cacert",
    "missing-cacert": "a MUTUAL Gateway has no <credentialName>-cacert secret",
    "cacert-not-ca": "the -cacert secret holds a certificate that is not a CA (or none)",
    "client-ca-serverauth": "the client CA issues (or may issue) server certificates",
    "host-not-covered": "a host is not covered by the server certificate",
    "old-path-syntax": "an APIRule path uses the old '/*' or '/.*' syntax",
    "host-without-port": "an AuthorizationPolicy lists a host but not its 'host:*' form",
}
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
_BRACES: Final = re.compile(r"\{\*\*?\}")


@dataclass(frozen=True, slots=True)
class Finding:
    """One pitfall in one object.

    Attributes:
        code: a stable key from CODES.
        source: where the object was read ("file.yaml#2", the 1-based document number).
        obj: "Kind namespace/name".
        what: what is wrong.
        why: what goes wrong in the cluster because of it.
        fix: what to change.
    """

    code: str
    source: str
    obj: str
    what: str
    why: str
    fix: str


def _ca_in_server_secret(secrets: list[Obj]) -> Iterator[Finding]:
    for obj in secrets:
        data = secret_data(obj)
        server, ca = first(data, SERVER_KEYS), first(data, CA_KEYS)
        if server is None or ca is None:
            continue
        yield Finding(
            "ca-in-server-secret",
            obj.source,
            obj.label,
            f"the server secret {obj.name!r} holds {server[0]} and also {ca[0]}",
            f"Istio then validates clients against that {ca[0]} and ignores the secret "
            f"{obj.name}-cacert (istio/istio#29856)",
            f"remove {ca[0]} from {obj.name!r}; put the client CA in {obj.name}-cacert "
            "under the key cacert",
        )


def _missing_cacert(gateways: list[Obj], secrets: list[Obj]) -> Iterator[Finding]:
    by_name: dict[str, list[Obj]] = {}
    for s in secrets:
        by_name.setdefault(s.name, []).append(s)
    for gw in gateways:
        for credential, _hosts in mutual_servers(gw):
            server = [s for s in by_name.get(credential, []) if s.namespace == INGRESS_NAMESPACE]
            if any(first(secret_data(s), CA_KEYS) for s in server):
                continue  # reported as ca-in-server-secret
            found = by_name.get(f"{credential}-cacert", [])
            if any(s.namespace == INGRESS_NAMESPACE for s in found):
                continue
            elsewhere = ", ".join(sorted({s.namespace for s in found}))
            yield Finding(
                "missing-cacert",
                gw.source,
                gw.label,
                f"tls.mode MUTUAL with credentialName {credential!r} but no Secret "
                f"{INGRESS_NAMESPACE}/{credential}-cacert"
                + (f" (there is one in {elsewhere})" if elsewhere else ""),
                "without it the ingress gateway has no CA to verify client certificates "
                "against and rejects every handshake",
                f"create Secret {credential}-cacert in {INGRESS_NAMESPACE} with the client CA "
                "under the key cacert (mtlskit kyma render does)",
            )


def _client_cas(secrets: list[Obj]) -> Iterator[tuple[Obj, list[x509.Certificate]]]:
    for obj in secrets:
        if not obj.name.endswith("-cacert"):
            continue
        found = first(secret_data(obj), CA_KEYS)
        yield obj, read_certs(found[1]) if found else []


def _cacert_not_ca(cas: list[tuple[Obj, list[x509.Certificate]]]) -> Iterator[Finding]:
    fix = "put the root (or issuing) CA of your client certificates under the key cacert"
    for obj, certs in cas:
        if not certs:
            yield Finding(
                "cacert-not-ca",
                obj.source,
                obj.label,
                f"{obj.name!r} has no readable PEM certificate under cacert or ca.crt",
                "the ingress gateway cannot verify any client certificate",
                fix,
            )
        for cert in certs:
            if not is_ca(cert):
                yield Finding(
                    "cacert-not-ca",
                    obj.source,
                    obj.label,
                    f"{cert.subject.rfc4514_string()!r} in {obj.name!r} is not a CA "
                    "(basicConstraints CA:FALSE or absent)",
                    "a leaf is no trust anchor: clients whose chain leads to a CA are "
                    "rejected, and pinning one leaf this way breaks at its renewal",
                    fix,
                )


def _ekus(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert == ca:
        return True
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _client_ca_serverauth(
    cas: list[tuple[Obj, list[x509.Certificate]]], secrets: list[Obj]
) -> Iterator[Finding]:
    server_eku = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
    why = (
        "a CA trusted for clients should issue client certificates only: every server "
        "certificate it issues with clientAuth is then accepted as a client identity"
    )
    chains = []
    for s in secrets:
        found = first(secret_data(s), SERVER_KEYS)
        if found:
            chains.append((s, read_certs(found[1])))
    for obj, certs in cas:
        for ca in certs:
            subject = ca.subject.rfc4514_string()
            if any(oid in server_eku for oid in _ekus(ca)):
                yield Finding(
                    "client-ca-serverauth",
                    obj.source,
                    obj.label,
                    f"client CA {subject!r} allows serverAuth in its extended key usage",
                    why,
                    "use a client CA whose EKU is clientAuth only (mtlskit ca init does), or "
                    "none on the root",
                )
            for server, chain in chains:
                if any(_issued_by(c, ca) for c in chain):
                    yield Finding(
                        "client-ca-serverauth",
                        server.source,
                        server.label,
                        f"the server certificate in {server.name!r} was issued under the "
                        f"client CA {subject!r}",
                        why,
                        "issue server certificates from another CA (or Let's Encrypt via "
                        "--server-cert acme), and keep the client CA for clients",
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


def _host_not_covered(objs: list[Obj]) -> Iterator[Finding]:
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
                )


def _suggest(path: str) -> str:
    fixed = re.sub(r"/\.?\*$", "/{**}", path)
    return re.sub(r"(?<!\{)\*(?!\*?\})", "{*}", fixed.replace(".*", "*"))


def _old_paths(apirules: list[Obj]) -> Iterator[Finding]:
    for obj in apirules:
        version = str(obj.doc.get("apiVersion", "")).rpartition("/")[2]
        for rule in (obj.doc.get("spec") or {}).get("rules") or []:
            path = str(rule.get("path", ""))
            if "*" not in _BRACES.sub("", path):
                continue
            yield Finding(
                "old-path-syntax",
                obj.source,
                obj.label,
                f"path {path!r} uses the old wildcard syntax",
                "APIRule v2 matches paths with {*} (one segment) and {**} (any); its schema "
                "rejects '/orders/*', and a bare '/*' or v1beta1's regex '/.*' is legacy",
                f"write {_suggest(path)!r}"
                + (" and migrate to gateway.kyma-project.io/v2" if version == "v1beta1" else ""),
            )


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


def _host_without_port(policies: list[Obj]) -> Iterator[Finding]:
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
                yield Finding("host-without-port", obj.source, obj.label, what, why, fix)


def check_manifests(manifests: Sequence[tuple[str, Any]]) -> list[Finding]:
    """Find the known mTLS pitfalls in a set of manifests read together.

    Args:
        manifests: (source, document) pairs as loaded from YAML; non-mappings are skipped
            and `kind: List` is expanded.

    Returns:
        Every finding, grouped by check; empty when the set is clean.
    """
    objs = list(objects(manifests))
    secrets = [o for o in objs if o.kind == "Secret"]
    gateways = [o for o in objs if o.kind == "Gateway"]
    cas = list(_client_cas(secrets))
    return [
        *_ca_in_server_secret(secrets),
        *_missing_cacert(gateways, secrets),
        *_cacert_not_ca(cas),
        *_client_ca_serverauth(cas, secrets),
        *_host_not_covered(objs),
        *_old_paths([o for o in objs if o.kind == "APIRule"]),
        *_host_without_port([o for o in objs if o.kind == "AuthorizationPolicy"]),
    ]
