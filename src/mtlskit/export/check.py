"""Lint Kyma/Istio mTLS manifests for the known pitfalls: what, why, fix, severity (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtlskit.export._certs import is_ca
from mtlskit.export._check_gateways import (
    credential_location,
    host_not_covered,
    mutual_without_credential,
    paths,
)
from mtlskit.export._check_optional import optional_mutual_no_principal, optional_mutual_noauth
from mtlskit.export._check_policies import host_without_port
from mtlskit.export._finding import SEVERITIES, Finding, Severity, failing
from mtlskit.export._objects import (
    CA_KEYS,
    MUTUAL,
    SERVER_KEYS,
    Obj,
    first,
    objects,
    read_certs,
    secret_data,
    tls_servers,
)
from mtlskit.export.istio import INGRESS_NAMESPACE

__all__ = ["CODES", "SEVERITIES", "Finding", "Severity", "check_manifests", "failing"]

CODES: Final = {
    "ca-in-server-secret": "the server secret holds a CA and a <name>-cacert secret exists too",
    "missing-cacert": "a MUTUAL server has no client CA: no ca.crt in its secret, no -cacert",
    "cacert-not-ca": "the client CA secret holds a certificate that is not a CA (or none)",
    "client-ca-serverauth": "the client CA issues (or may issue) server certificates",
    "host-not-covered": "a host is not covered by the server certificate",
    "wildcard-path": "an APIRule v2 path is the bare '/*', the same as '/{**}'",
    "old-path-syntax": "an APIRule path uses a '*' outside {*}/{**}, or a v1beta1 regex",
    "host-without-port": "an AuthorizationPolicy lists a host but not its 'host:*' form",
    "credential-not-found": "a credentialName has no Secret or Certificate in the files",
    "tls-outside-ingress-namespace": "a credential's Secret/Certificate is not in the "
    "ingress gateway's namespace",
    "optional-mutual-noauth": "noAuth APIRule rules on an OPTIONAL_MUTUAL server that no DENY "
    "policy requires a principal on",
    "optional-mutual-no-principal": "an OPTIONAL_MUTUAL server with a host that no DENY "
    "AuthorizationPolicy requires a principal for",
    "mutual-without-credential": "a MUTUAL server names no credentialName",
}


def _sibling(obj: Obj, secrets: list[Obj]) -> Obj | None:
    """The <name>-cacert Secret next to a server Secret (same namespace), if any."""
    return next(
        (s for s in secrets if s.name == f"{obj.name}-cacert" and s.namespace == obj.namespace),
        None,
    )


def _fingerprints(data: bytes) -> set[bytes]:
    return {c.fingerprint(hashes.SHA256()) for c in read_certs(data)}


def _ca_in_server_secret(secrets: list[Obj]) -> Iterator[Finding]:
    # Istio's documented single-secret setup (tls.crt, tls.key and ca.crt in one Secret) is
    # right; the pitfall is a -cacert Secret next to it, which Istio then ignores (#29856).
    for obj in secrets:
        data = secret_data(obj)
        server, ca = first(data, SERVER_KEYS), first(data, CA_KEYS)
        sibling = _sibling(obj, secrets)
        if server is None or ca is None or sibling is None:
            continue
        other = first(secret_data(sibling), CA_KEYS)
        same = other is not None and _fingerprints(ca[1]) == _fingerprints(other[1])
        yield Finding(
            "ca-in-server-secret",
            obj.source,
            obj.label,
            f"the server secret {obj.name!r} holds {server[0]} and also {ca[0]}, and "
            f"{sibling.name!r} exists too" + (" with the same CA" if same else " with another CA"),
            f"Istio validates clients against the {ca[0]} in {obj.name!r} and ignores "
            f"{sibling.name!r} (istio/istio#29856)"
            + (
                ": the same CA today, but two copies to keep in step"
                if same
                else f": clients of the CA in {sibling.name!r} are rejected"
            ),
            f"keep the client CA in one place: remove {ca[0]} from {obj.name!r} (then "
            f"{sibling.name!r} is used), or delete {sibling.name!r}",
            severity="note" if same else "error",
        )


def _missing_cacert(objs: list[Obj], secrets: list[Obj], ns: str) -> Iterator[Finding]:
    in_ns = {s.name: s for s in secrets if s.namespace == ns}
    # a Certificate's Secret holds tls.crt and tls.key: known to carry no client CA
    known = {s.name for s in secrets} | {
        str((o.doc.get("spec") or {}).get("secretName")) for o in objs if o.kind == "Certificate"
    }
    gateways = [o for o in objs if o.kind == "Gateway"]
    for gw in gateways:
        for server in tls_servers(gw):
            if server.mode not in MUTUAL:
                continue
            for credential in server.credentials:
                own = in_ns.get(credential)
                if own is not None and first(secret_data(own), CA_KEYS):
                    continue  # Istio's single-secret setup
                wanted = server.ca_credential or f"{credential}-cacert"
                if wanted in in_ns:
                    continue
                elsewhere = ", ".join(
                    sorted({s.namespace for s in secrets if s.name == wanted and s.namespace != ns})
                )
                unknown = own is None and credential not in known
                yield Finding(
                    "missing-cacert",
                    gw.source,
                    gw.label,
                    f"tls.mode {server.mode} with credentialName {credential!r} but no Secret "
                    f"{ns}/{wanted}"
                    + (f" (there is one in {elsewhere})" if elsewhere else "")
                    + (
                        f", and {credential!r} itself is not in the files, so whether it holds "
                        "ca.crt is unknown"
                        if unknown
                        else f", and {credential!r} holds no ca.crt"
                        if own is not None
                        else ""
                    ),
                    "without a client CA the ingress gateway cannot verify client certificates "
                    "and rejects every handshake",
                    f"create Secret {wanted} in {ns} with the client CA under the key cacert "
                    f"(mtlskit kyma render does), or add ca.crt to {credential!r}",
                    severity="warning" if unknown else "error",
                )


def _client_cas(secrets: list[Obj]) -> Iterator[tuple[Obj, list[x509.Certificate]]]:
    """-cacert Secrets, and server Secrets that carry the client CA themselves."""
    for obj in secrets:
        data = secret_data(obj)
        found = first(data, CA_KEYS)
        if obj.name.endswith("-cacert"):
            yield obj, read_certs(found[1]) if found else []
        elif found and first(data, SERVER_KEYS) and not _sibling(obj, secrets):
            yield obj, read_certs(found[1])  # Istio's single-secret setup


def _cacert_not_ca(cas: list[tuple[Obj, list[x509.Certificate]]]) -> Iterator[Finding]:
    fix = "put the root (or issuing) CA of your client certificates under the key cacert"
    for obj, certs in cas:
        if not certs:
            yield Finding(
                "cacert-not-ca",
                obj.source,
                obj.label,
                f"{obj.name!r} has no readable PEM certificate under ca.crt or cacert",
                "the ingress gateway cannot verify any client certificate",
                fix,
                severity="error",
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
                    severity="error",
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
        issued_under = obj.name.endswith("-cacert")  # a single-secret CA: its EKU only
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
                    severity="error",
                )
            for server, chain in chains:
                if issued_under and any(_issued_by(c, ca) for c in chain):
                    yield Finding(
                        "client-ca-serverauth",
                        server.source,
                        server.label,
                        f"the server certificate in {server.name!r} was issued under the "
                        f"client CA {subject!r}",
                        why,
                        "issue server certificates from another CA (or Let's Encrypt via "
                        "--server-cert acme), and keep the client CA for clients",
                        severity="error",
                    )


def check_manifests(
    manifests: Sequence[tuple[str, Any]], *, ingress_namespace: str = INGRESS_NAMESPACE
) -> list[Finding]:
    """Find the known mTLS pitfalls in a set of manifests read together.

    Args:
        manifests: (source, document) pairs as loaded from YAML; non-mappings are skipped
            and `kind: List` is expanded.
        ingress_namespace: where the ingress gateway runs and reads its Secrets.

    Returns:
        Every finding, of every severity, grouped by check; empty when the set is clean.
        `failing(findings, strict=...)` says which of them fail the check.
    """
    objs = list(objects(manifests))
    secrets = [o for o in objs if o.kind == "Secret"]
    gateways = [o for o in objs if o.kind == "Gateway"]
    apirules = [o for o in objs if o.kind == "APIRule"]
    policies = [o for o in objs if o.kind == "AuthorizationPolicy"]
    cas = list(_client_cas(secrets))
    return [
        *_ca_in_server_secret(secrets),
        *mutual_without_credential(gateways),
        *credential_location(gateways, objs, ingress_namespace),
        *_missing_cacert(objs, secrets, ingress_namespace),
        *_cacert_not_ca(cas),
        *_client_ca_serverauth(cas, secrets),
        *host_not_covered(objs),
        *optional_mutual_no_principal(gateways, apirules, policies),
        *optional_mutual_noauth(gateways, apirules, policies),
        *paths(apirules),
        *host_without_port(policies),
    ]
