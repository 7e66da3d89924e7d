"""kyma check: each known pitfall found in a fixture, and a clean set passes."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.config import load_gateway_config, read_toml
from mtlskit.export import (
    KymaInputs,
    KymaOptions,
    check_manifests,
    render_kyma,
    to_yaml,
)
from mtlskit.export.check import CODES
from mtlskit.pki import CertificateAuthority

from .conftest import Demo


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _render(demo: Demo, server_cert: str = "acme") -> list[dict[str, Any]]:
    config = load_gateway_config(read_toml(demo.toml), base_dir=demo.dir)
    opts = KymaOptions("mtls.example.com", "shop", "orders", 8080, server_cert=server_cert)  # type: ignore[arg-type]
    inputs = KymaInputs(demo.client_ca.read_bytes(), demo.cert.read_bytes(), demo.key.read_bytes())
    return [copy.deepcopy(o) for o in render_kyma(config, opts, inputs).objects]


def _codes(docs: list[dict[str, Any]]) -> list[str]:
    return [f.code for f in check_manifests([(f"set.yaml#{i}", d) for i, d in enumerate(docs, 1)])]


def _kind(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix))


@pytest.fixture
def clean(demo: Demo) -> list[dict[str, Any]]:
    """The demo rendered with a Let's Encrypt (Gardener) server certificate."""
    return _render(demo)


@pytest.fixture
def clean_files(demo: Demo, tmp_path: Path) -> list[dict[str, Any]]:
    """Files mode with a server certificate from another CA, for *.mtls.example.com."""
    other = CertificateAuthority.create(tmp_path / "server-ca", name="Server CA")
    other.issue_server("orders.mtls.example.com", ["*.mtls.example.com"]).write(
        demo.dir, "server", force=True
    )
    other.close()
    return _render(demo, "files")


def test_clean_sets_pass(clean, clean_files) -> None:
    assert _codes(clean) == []
    assert _codes(clean_files) == []


def test_server_secret_with_ca_crt_and_a_cacert_secret(clean_files, demo: Demo) -> None:
    # both at once, with the same CA: harmless today, a note
    _kind(clean_files, "Secret", "certs")["data"]["ca.crt"] = _b64(demo.client_ca.read_bytes())
    assert _codes(clean_files) == ["ca-in-server-secret"]
    finding = check_manifests([("x", d) for d in clean_files])[0]
    assert finding.severity == "note" and "with the same CA" in finding.what
    assert "istio/istio#29856" in finding.why
    assert "kyma-mtls-certs-cacert" in finding.fix
    # with another CA in the server secret: the -cacert CA's clients are rejected, an error
    _kind(clean_files, "Secret", "certs")["data"]["ca.crt"] = _b64(_ca_with_server_auth())
    found = check_manifests([("x", d) for d in clean_files])
    finding = next(f for f in found if f.code == "ca-in-server-secret")
    assert finding.severity == "error" and "with another CA" in finding.what
    assert "clients of the CA in 'kyma-mtls-certs-cacert' are rejected" in finding.why


def test_server_secret_with_ca_crt_alone_is_istios_single_secret_setup(clean_files) -> None:
    cacert = _kind(clean_files, "Secret", "-cacert")
    _kind(clean_files, "Secret", "certs")["data"]["ca.crt"] = cacert["data"]["cacert"]
    clean_files.remove(cacert)
    assert _codes(clean_files) == []


def test_missing_cacert(clean) -> None:
    docs = [d for d in clean if not d["metadata"]["name"].endswith("-cacert")]
    assert _codes(docs) == ["missing-cacert"]
    assert check_manifests([("x", d) for d in docs])[0].severity == "error"
    moved = _kind(clean, "Secret", "-cacert")
    moved["metadata"]["namespace"] = "shop"  # Istio reads it from the gateway's namespace only
    findings = check_manifests([("x", d) for d in clean])
    assert [f.code for f in findings] == ["missing-cacert"]
    assert "there is one in shop" in findings[0].what


def test_cacert_that_is_not_a_ca(clean, ca: CertificateAuthority) -> None:
    secret = _kind(clean, "Secret", "-cacert")
    secret["data"]["cacert"] = _b64(ca.issue_client("alice").cert_pem())
    assert _codes(clean) == ["cacert-not-ca"]
    secret["data"] = {"cacert": _b64(b"not a certificate")}
    assert _codes(clean) == ["cacert-not-ca"]


def _ca_with_server_auth() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Everything CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_client_ca_with_server_auth(clean) -> None:
    _kind(clean, "Secret", "-cacert")["data"]["cacert"] = _b64(_ca_with_server_auth())
    assert _codes(clean) == ["client-ca-serverauth"]


def test_client_ca_that_issued_the_server_certificate(demo: Demo) -> None:
    # the demo's localhost certificate comes from the client CA; rendered for a matching host
    docs = _render(demo, "files")
    codes = _codes(docs)
    assert "client-ca-serverauth" in codes
    assert set(codes) == {"client-ca-serverauth", "host-not-covered"}


def test_gateway_host_not_covered(clean) -> None:
    _kind(clean, "Certificate")["spec"]["commonName"] = "*.other.example.com"
    findings = check_manifests([("x", d) for d in clean])
    assert [f.code for f in findings] == ["host-not-covered", "host-not-covered"]
    assert {f.obj.split()[0] for f in findings} == {"Gateway", "APIRule"}


def test_gateway_any_host_is_never_covered(clean) -> None:
    _kind(clean, "Gateway")["spec"]["servers"][0]["hosts"] = ["*"]
    assert "host-not-covered" in _codes(clean)


@pytest.mark.parametrize(
    ("path", "suggestion"),
    [("/orders/*", "/orders/{**}"), ("/a/*/b", "/a/{*}/b"), ("/.*", "/{**}"), ("/*/x", "/{*}/x")],
)
def test_old_path_syntax(clean, path: str, suggestion: str) -> None:
    _kind(clean, "APIRule")["spec"]["rules"][0]["path"] = path
    findings = check_manifests([("x", d) for d in clean])
    assert [(f.code, f.severity) for f in findings] == [("old-path-syntax", "error")]
    assert repr(suggestion) in findings[0].fix
    assert "schema rejects" in findings[0].why


def test_bare_wildcard_path_is_a_note(clean) -> None:
    # the v2 schema accepts '/*' and Kyma documents it as '/{**}': said, never failed
    _kind(clean, "APIRule")["spec"]["rules"][0]["path"] = "/*"
    [finding] = check_manifests([("x", d) for d in clean])
    assert (finding.code, finding.severity) == ("wildcard-path", "note")
    assert "'/{**}'" in finding.why and "nothing to change" in finding.fix


def test_v1beta1_regex_path_is_a_warning(clean) -> None:
    rule = _kind(clean, "APIRule")
    rule["apiVersion"] = "gateway.kyma-project.io/v1beta1"
    rule["spec"]["rules"][0]["path"] = "/.*"
    [finding] = check_manifests([("x", d) for d in clean])
    assert (finding.code, finding.severity) == ("old-path-syntax", "warning")
    assert "migrate to gateway.kyma-project.io/v2" in finding.fix


def test_new_path_syntax_passes(clean) -> None:
    for path in ("/{**}", "/orders/{*}/items/{**}", "/healthz"):
        _kind(clean, "APIRule")["spec"]["rules"][0]["path"] = path
        assert _codes(clean) == []


# A policy as people write it by hand: a DENY on the ingress gateway for the mTLS host.
HAND_WRITTEN = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: orders-clients
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  action: {action}
  rules:
    - from:
        - source:
            notPrincipals: ["example.org/ns/shop/sa/web"]
      to:
        - operation:
            {field}: {hosts}
"""


def _policy(hosts: list[str], action: str = "DENY", field: str = "hosts") -> dict[str, Any]:
    text = HAND_WRITTEN.format(action=action, field=field, hosts=json.dumps(hosts))
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def test_deny_policy_with_only_the_exact_host(kyma_cli, tmp_path: Path) -> None:
    # Host: orders.mtls.example.com:443 is routed to the workload and matches no DENY rule.
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(_policy(["orders.mtls.example.com"])))
    result = kyma_cli("kyma", "check", policy)
    assert result.code == 1
    assert (
        "error: AuthorizationPolicy istio-system/orders-clients: [host-without-port]" in result.out
    )
    assert "lists 'orders.mtls.example.com' but not 'orders.mtls.example.com:*'" in result.out
    assert "including its port and does not strip the port by default" in result.out
    assert "  fix: add 'orders.mtls.example.com:*' to the same list" in result.out
    [finding] = check_manifests([("p.yaml#1", _policy(["orders.mtls.example.com"]))])
    assert finding.what.startswith("rules[0].to[0].operation.hosts lists")
    assert "a client it should deny gets through" in finding.why


def test_deny_policy_with_both_host_forms_passes(kyma_cli, tmp_path: Path) -> None:
    both = tmp_path / "policy.yaml"
    both.write_text(
        yaml.safe_dump(_policy(["orders.mtls.example.com", "orders.mtls.example.com:*"]))
    )
    result = kyma_cli("kyma", "check", both)
    assert result.code == 0 and result.out.startswith("ok: no known pitfall in 1 object(s)")
    # other spellings that cover the port: a prefix pattern, any host, another case
    for hosts in (
        ["orders.mtls.example.com*"],
        ["orders.mtls.example.com", "*"],
        ["Orders.MTLS.example.com", "orders.mtls.example.com:*"],
    ):
        assert _codes([_policy(hosts)]) == [], hosts
    # the control: the same policy without the port form is flagged
    assert _codes([_policy(["orders.mtls.example.com"])]) == ["host-without-port"]


@pytest.mark.parametrize(
    ("hosts", "action", "field", "said"),
    [
        (["orders.mtls.example.com"], "ALLOW", "notHosts", "this ALLOW rule admits it"),
        (["orders.mtls.example.com"], "ALLOW", "hosts", "istio/istio#44080"),
        (["orders.mtls.example.com"], "CUSTOM", "hosts", "skips its external authorizer"),
        (["orders.mtls.example.com", "orders.mtls.example.com:443"], "DENY", "hosts", "gets"),
        (["*.mtls.example.com"], "DENY", "hosts", "'x.mtls.example.com:443'"),
    ],
)
def test_port_gaps_by_action_and_field(hosts, action: str, field: str, said: str) -> None:
    [finding] = check_manifests([("p.yaml#1", _policy(hosts, action, field))])
    assert finding.code == "host-without-port"
    assert said in finding.why
    assert repr(hosts[0]) in finding.what
    if hosts[0].startswith("*"):  # a suffix pattern cannot carry ':*'
        assert "as 'name' and 'name:*'" in finding.fix


def test_audit_policies_and_port_forms_are_not_flagged() -> None:
    assert _codes([_policy(["orders.mtls.example.com"], "AUDIT")]) == []
    assert _codes([_policy(["orders.mtls.example.com:*", "orders.mtls.example.com:8443"])]) == []
    assert _codes([_policy(["orders.mtls.example.com"])]) == ["host-without-port"]


def test_every_code_has_a_test() -> None:
    tested = "".join(p.read_text() for p in Path(__file__).parent.glob("test_kyma_check*.py"))
    assert [code for code in CODES if f'"{code}"' not in tested] == []


def test_cli_check(clean, kyma_cli, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(to_yaml(clean))
    result = kyma_cli("kyma", "check", good, "--strict")  # render's output: nothing at all
    assert result.code == 0 and result.out.startswith("ok: no known pitfall in 5 object(s)")
    assert "note" not in result.out and "warning" not in result.out
    _kind(clean, "APIRule")["spec"]["rules"][0]["path"] = "/orders/*"
    folder = tmp_path / "dir"
    folder.mkdir()
    for i, doc in enumerate(clean):
        (folder / f"{i}.yaml").write_text(yaml.safe_dump(doc))
    result = kyma_cli("kyma", "check", folder)
    assert result.code == 1
    assert ": error: APIRule shop/orders: [old-path-syntax]" in result.out
    assert "  why: " in result.out
    assert result.out.rstrip().endswith("1 finding(s) in 5 object(s): 1 error(s)")
    assert "  fix: write '/orders/{**}'" in result.out
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [")
    result = kyma_cli("kyma", "check", bad)
    assert result.code == 2 and "not valid YAML" in result.err
