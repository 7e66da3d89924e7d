"""kyma check on manifests shaped like Kyma's and Istio's documented examples (openssl PKI).

The documented setups pass (a note at most); what breaks a cluster or opens it is found,
with its severity, and --strict decides whether warnings fail.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlskit.export import check_manifests
from mtlskit.export.check import failing
from tests.opensslpki import CA_EXT, OpenSSLPKI, server_ext


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Istio's example_certs1 (example.com root, httpbin server) and a client root for Kyma."""
    made = OpenSSLPKI(tmp_path_factory.mktemp("check-pki"))
    example = made.root("example.com", key="rsa:2048")
    httpbin = made.issue("httpbin.example.com", example, ext=server_ext("httpbin.example.com"))
    client_root = made.root("Kyma Client Root", ext=CA_EXT)
    return {
        "example": example.cert,
        "httpbin": httpbin.cert,
        "httpbin.key": httpbin.key,
        "client_root": client_root.cert,
    }


def kyma_example(pki: dict[str, Path]) -> list[dict[str, Any]]:
    """Kyma's 'Configure mTLS' tutorial: Gardener Certificate and -cacert in istio-system,
    the Gateway in default, an APIRule v2 with path /* and noAuth forwarding the DN."""
    return list(
        yaml.safe_load_all(f"""
apiVersion: cert.gardener.cloud/v1alpha1
kind: Certificate
metadata: {{name: domain-certificate, namespace: istio-system}}
spec:
  secretName: kyma-mtls-certs
  commonName: "*.mtls.example.com"
  issuerRef: {{name: garden}}
---
apiVersion: v1
kind: Secret
metadata: {{name: kyma-mtls-certs-cacert, namespace: istio-system}}
type: Opaque
data: {{cacert: {_b64(pki["client_root"])}}}
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {{name: kyma-mtls-gateway, namespace: default}}
spec:
  selector: {{app: istio-ingressgateway, istio: ingressgateway}}
  servers:
    - hosts: ["*.mtls.example.com"]
      port: {{name: mtls, number: 443, protocol: HTTPS}}
      tls: {{mode: MUTUAL, credentialName: kyma-mtls-certs}}
---
apiVersion: gateway.kyma-project.io/v2
kind: APIRule
metadata: {{name: httpbin-mtls, namespace: test}}
spec:
  gateway: default/kyma-mtls-gateway
  hosts: [httpbin.mtls.example.com]
  service: {{name: httpbin, port: 8000}}
  rules:
    - path: /*
      methods: [GET]
      noAuth: true
      request:
        headers:
          X-CLIENT-SSL-CN: "%DOWNSTREAM_PEER_SUBJECT%"
          X-CLIENT-SSL-ISSUER: "%DOWNSTREAM_PEER_ISSUER%"
          X-CLIENT-SSL-SAN: "%DOWNSTREAM_PEER_URI_SAN%"
""")
    )


def istio_single_secret(pki: dict[str, Path]) -> list[dict[str, Any]]:
    """Istio's 'Configure a mutual TLS ingress gateway': one generic Secret with tls.key,
    tls.crt and ca.crt (kubectl create secret generic httpbin-credential --from-file=...)."""
    return list(
        yaml.safe_load_all(f"""
apiVersion: v1
kind: Secret
metadata: {{name: httpbin-credential, namespace: istio-system}}
type: Opaque
data:
  tls.key: {_b64(pki["httpbin.key"])}
  tls.crt: {_b64(pki["httpbin"])}
  ca.crt: {_b64(pki["example"])}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: mygateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
    - port: {{number: 443, name: https, protocol: HTTPS}}
      tls: {{mode: MUTUAL, credentialName: httpbin-credential}}
      hosts: [httpbin.example.com]
""")
    )


def _check(docs: list[dict[str, Any]], **kwargs: str) -> list[tuple[str, str, str]]:
    found = check_manifests([(f"set.yaml#{i}", d) for i, d in enumerate(docs, 1)], **kwargs)
    return [(f.code, f.severity, f.obj) for f in found]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def _write(tmp_path: Path, docs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


# -- the documented setups pass -------------------------------------------------------------
def test_kymas_documented_example_passes_with_a_note(pki, kyma_cli, tmp_path: Path) -> None:
    docs = list(kyma_example(pki))
    assert _check(docs) == [("wildcard-path", "note", "APIRule test/httpbin-mtls")]
    for argv in ((), ("--strict",)):
        result = kyma_cli("kyma", "check", _write(tmp_path, docs), *argv)
        assert result.code == 0, result.out
        assert "note: APIRule test/httpbin-mtls: [wildcard-path]" in result.out
        assert "ok: no errors" in result.out and "1 note(s)" in result.out


def test_istios_documented_single_secret_setup_passes(pki, kyma_cli, tmp_path: Path) -> None:
    docs = list(istio_single_secret(pki))
    assert _check(docs) == []
    result = kyma_cli("kyma", "check", _write(tmp_path, docs), "--strict")
    assert result.code == 0 and result.out.startswith("ok: no known pitfall in 2 object(s)")


def test_single_secret_ca_is_still_checked(pki) -> None:
    docs = list(istio_single_secret(pki))
    _by_kind(docs, "Secret")["data"]["ca.crt"] = _b64(pki["httpbin"])  # a leaf, not a CA
    found = _check(docs)
    assert found[0] == ("cacert-not-ca", "error", "Secret istio-system/httpbin-credential")
    assert {code for code, _, _ in found} == {"cacert-not-ca", "client-ca-serverauth"}


# -- what was missed ---------------------------------------------------------------------------
def test_credential_not_in_the_files(pki, kyma_cli, tmp_path: Path) -> None:
    docs = [d for d in kyma_example(pki) if d["kind"] != "Certificate"]
    found = check_manifests([("x", d) for d in docs])
    [(code, severity)] = [(f.code, f.severity) for f in found if f.severity != "note"][:1]
    assert (code, severity) == ("credential-not-found", "warning")
    finding = found[0]
    assert "'kyma-mtls-certs'" in finding.what and "istio-system" in finding.what
    assert "kubectl -n istio-system get secret kyma-mtls-certs" in finding.fix
    assert failing(found) == [] and failing(found, strict=True) == [finding]
    path = _write(tmp_path, docs)
    assert kyma_cli("kyma", "check", path).code == 0
    strict = kyma_cli("kyma", "check", path, "--strict")
    assert strict.code == 1 and "warning: Gateway default/kyma-mtls-gateway" in strict.out
    # no credential and no -cacert: missing-cacert cannot know about ca.crt, a warning too
    bare = [d for d in docs if d["kind"] != "Secret"]
    assert ("missing-cacert", "warning", "Gateway default/kyma-mtls-gateway") in _check(bare)


@pytest.mark.parametrize("kind", ["Certificate", "Secret"])
def test_tls_credential_outside_the_ingress_namespace(pki, kind: str) -> None:
    docs = list(kyma_example(pki))
    if kind == "Secret":  # a kubernetes.io/tls Secret instead of the Certificate
        docs.remove(_by_kind(docs, "Certificate"))
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": "kyma-mtls-certs", "namespace": "istio-system"},
                "data": {"tls.crt": _b64(pki["httpbin"]), "tls.key": _b64(pki["httpbin.key"])},
            }
        )
    holder = next(
        d for d in docs if d["metadata"]["name"] == "kyma-mtls-certs" or d["kind"] == "Certificate"
    )
    holder["metadata"]["namespace"] = "default"  # next to the Gateway, as people try first
    found = check_manifests([("x", d) for d in docs])
    finding = next(f for f in found if f.code == "tls-outside-ingress-namespace")
    assert finding.severity == "error"
    assert finding.obj == f"{kind} default/{holder['metadata']['name']}"
    assert "namespace 'default', not 'istio-system'" in finding.what
    assert "metadata.namespace: istio-system" in finding.fix
    # an ingress gateway that runs in default reads it there
    assert "tls-outside-ingress-namespace" not in [
        c for c, _, _ in _check(docs, ingress_namespace="default")
    ]


def test_optional_mutual_with_noauth_rules(pki) -> None:
    docs = list(kyma_example(pki))
    gateway = _by_kind(docs, "Gateway")
    gateway["spec"]["servers"][0]["tls"]["mode"] = "OPTIONAL_MUTUAL"
    found = check_manifests([("x", d) for d in docs])
    finding = next(f for f in found if f.code == "optional-mutual-noauth")
    assert (finding.severity, finding.obj) == ("error", "APIRule test/httpbin-mtls")
    assert "anyone without a certificate gets in" in finding.why
    assert "tls.mode: MUTUAL" in finding.fix
    # v1beta1's no_auth handler is the same opening
    legacy = copy.deepcopy(_by_kind(docs, "APIRule"))
    legacy["apiVersion"] = "gateway.kyma-project.io/v1beta1"
    legacy["spec"]["gateway"] = "kyma-mtls-gateway.default.svc.cluster.local"
    legacy["spec"]["rules"] = [{"path": "/.*", "accessStrategies": [{"handler": "no_auth"}]}]
    assert ("optional-mutual-noauth", "error", "APIRule test/httpbin-mtls") in _check(
        [gateway, legacy]
    )
    # a jwt rule, or a host served by another (MUTUAL) server, is not open
    rule = _by_kind(docs, "APIRule")
    rule["spec"]["rules"][0].pop("noAuth")
    rule["spec"]["rules"][0]["jwt"] = {"authentications": [{"issuer": "i", "jwksUri": "u"}]}
    assert "optional-mutual-noauth" not in [c for c, _, _ in _check(docs)]
    other = list(kyma_example(pki))
    servers = _by_kind(other, "Gateway")["spec"]["servers"]
    servers.append(copy.deepcopy(servers[0]))
    servers[1]["hosts"] = ["*.open.example.com"]
    servers[1]["tls"]["mode"] = "OPTIONAL_MUTUAL"
    assert "optional-mutual-noauth" not in [c for c, _, _ in _check(other)]


def test_mutual_without_credential_name(pki) -> None:
    docs = list(istio_single_secret(pki))
    tls = _by_kind(docs, "Gateway")["spec"]["servers"][0]["tls"]
    del tls["credentialName"]
    assert ("mutual-without-credential", "error", "Gateway istio-system/mygateway") in _check(docs)
    finding = check_manifests([("x", d) for d in docs])[0]
    assert "spec.servers[0].tls is MUTUAL but names no credentialName" in finding.what
    assert "credentialName" in finding.fix
    # the old file-mount form is not checked here: a warning, not an error
    tls.update(serverCertificate="/etc/istio/certs/tls.crt", caCertificates="/etc/ca.crt")
    assert _check(docs) == [
        ("mutual-without-credential", "warning", "Gateway istio-system/mygateway")
    ]
