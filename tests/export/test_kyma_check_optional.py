"""kyma check on OPTIONAL_MUTUAL: hosts and open rules no DENY policy requires a principal on."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mtlskit.export import check_manifests, to_yaml
from mtlskit.pki import CertificateAuthority

from .sites_setup import Site, render_site, write_site

FQDN = "orders.mtls.example.com"


@pytest.fixture
def optional(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    """optional(): a fresh copy of the "optional" case as rendered."""
    made = [CertificateAuthority.create(tmp_path / n, name=n) for n in ("ca", "partner", "web")]
    ca, partner, web = made
    site: Site = render_site(write_site(tmp_path / "optional", ca, partner, web, "optional"))
    for authority in made:
        authority.close()
    return lambda: copy.deepcopy(list(site.export.objects))


def _found(docs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    found = check_manifests([(f"set.yaml#{i}", d) for i, d in enumerate(docs, 1)])
    return [(f.code, f.severity, f.what) for f in found]


def _without(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] != kind]


def test_rendered_optional_set_has_only_the_anonymous_notes(optional) -> None:
    found = _found(optional())
    assert {(code, severity) for code, severity, _ in found} == {("optional-mutual-noauth", "note")}
    assert sorted(w.split("'")[1] for _, _, w in found) == ["/public", "/public/{**}"]


def test_optional_mutual_without_a_principal_policy(optional) -> None:
    found = _found(_without(optional(), "AuthorizationPolicy"))
    [host] = [f for f in found if f[0] == "optional-mutual-no-principal"]
    assert host[1] == "error"
    assert f"no DENY AuthorizationPolicy requires a principal for {FQDN!r}" in host[2]
    # and each open rule that is not anonymous is an error of its own
    rules = [w for code, sev, w in found if code == "optional-mutual-noauth" and sev == "error"]
    assert [w.split("'")[1] for w in rules] == ["/api/{**}", "/api", "/{**}"]
    [finding] = [
        f
        for f in check_manifests([("x", d) for d in _without(optional(), "AuthorizationPolicy")])
        if f.code == "optional-mutual-no-principal"
    ]
    assert finding.obj == "Gateway shop/kyma-mtls-gateway"
    assert "notPrincipals: ['*']" in finding.fix and "tls.mode: MUTUAL" in finding.fix


def test_a_rule_the_policy_leaves_out_is_flagged(optional) -> None:
    docs = optional()
    policy = next(d for d in docs if d["kind"] == "AuthorizationPolicy")
    del policy["spec"]["rules"][0]  # the one that requires a certificate on GET /api/{**}
    errors = [w for code, sev, w in _found(docs) if sev == "error"]
    assert len(errors) == 2  # /api/{**} and /api, GET: no guard
    assert all("no DENY policy requires a principal for GET" in w for w in errors)


def test_a_guard_narrowed_by_the_source_does_not_count(optional) -> None:
    docs = optional()
    policy = next(d for d in docs if d["kind"] == "AuthorizationPolicy")
    for rule in policy["spec"]["rules"]:
        for source in rule.get("from", []):
            source["source"]["ipBlocks"] = ["10.0.0.0/8"]  # only denies callers from there
        rule.pop("to")  # and the path-less catch-alls, so nothing else guards the host
        rule.setdefault("from", [{"source": {"ipBlocks": ["10.0.0.0/8"]}}])
    codes = [code for code, sev, _ in _found(docs) if sev == "error"]
    assert "optional-mutual-no-principal" in codes and "optional-mutual-noauth" in codes


def test_an_open_path_needs_the_annotation_to_be_a_note(optional) -> None:
    docs = optional()
    rule = next(d for d in docs if d["kind"] == "APIRule")
    del rule["metadata"]["annotations"]
    errors = [w for code, sev, w in _found(docs) if code == "optional-mutual-noauth"]
    assert [w.split("'")[1] for w in errors] == ["/public/{**}", "/public"]
    assert all(sev == "error" for code, sev, _ in _found(docs) if code == "optional-mutual-noauth")


def test_a_wildcard_server_guarded_by_sni(optional) -> None:
    # A guard may scope a host by `when: connection.sni` (kyma render does, for *.x names).
    docs = optional()
    policy = next(d for d in docs if d["kind"] == "AuthorizationPolicy")
    for rule in policy["spec"]["rules"]:
        for to in rule["to"]:
            to["operation"].pop("hosts")
        rule["when"] = [{"key": "connection.sni", "values": ["*.mtls.example.com"]}]
    assert {sev for _, sev, _ in _found(docs)} == {"note"}
    for rule in policy["spec"]["rules"]:
        rule["when"] = [{"key": "request.headers[x-test]", "values": ["1"]}]  # not read
    assert "optional-mutual-no-principal" in [code for code, _, _ in _found(docs)]


def test_mutual_servers_need_no_principal_policy(optional) -> None:
    docs = _without(optional(), "AuthorizationPolicy")
    gateway = next(d for d in docs if d["kind"] == "Gateway")
    gateway["spec"]["servers"][0]["tls"]["mode"] = "MUTUAL"
    assert _found(docs) == []


def test_cli_check_fails_on_optional_mutual_without_principal(
    optional, kyma_cli: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(to_yaml(_without(optional(), "AuthorizationPolicy")))
    result = kyma_cli("kyma", "check", bad)
    assert result.code == 1
    assert ": error: Gateway shop/kyma-mtls-gateway: [optional-mutual-no-principal]" in result.out
    good = tmp_path / "good.yaml"
    good.write_text(to_yaml(optional()))
    result = kyma_cli("kyma", "check", good, "--strict")
    assert result.code == 0, result.out
    assert "note: APIRule shop/orders: [optional-mutual-noauth]" in result.out
    assert "in 5 object(s)" in result.out
