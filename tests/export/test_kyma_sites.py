"""kyma render of routes, optional client certificates and [[server]]s: golden, schemas, meaning."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlskit.errors import ExportError
from mtlskit.export import check_manifests, to_yaml
from mtlskit.export.check import failing
from mtlskit.pki import CertificateAuthority
from mtlskit.routes import RouteTable
from mtlskit.sites import route_policy

from .conftest import DEMO_HEADERS
from .istio_model import Request, denied
from .sites_setup import CASES, Site, render_loaded, render_site, write_site
from .validate import assert_valid

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MTLSKIT_UPDATE_GOLDEN") == "1"
_B64_LINE = re.compile(r"^(\s+(?:cacert|tls\.crt|tls\.key): )[A-Za-z0-9+/=]{16,}$", re.M)
FQDN = "orders.mtls.example.com"
WEB = "example.org/ns/shop/sa/web"
ADMIN = "example.org/ns/shop/sa/admin"


@pytest.fixture
def cas(tmp_path: Path) -> Iterator[tuple[CertificateAuthority, ...]]:
    """(client CA, partner client CA, server CA)."""
    made = [
        CertificateAuthority.create(tmp_path / name, name=title)
        for name, title in (("ca", "Test Root CA"), ("ca2", "Partner Root CA"), ("ca3", "Web CA"))
    ]
    yield tuple(made)
    for authority in made:
        authority.close()


@pytest.fixture
def site(cas: tuple[CertificateAuthority, ...], tmp_path: Path) -> Callable[..., Site]:
    """site(case, **options): the case written to tmp_path/case and rendered."""

    def make(case: str, **options: Any) -> Site:
        ca, partner, servers = cas
        return render_site(write_site(tmp_path / case, ca, partner, servers, case), **options)

    return make


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(site: Callable[..., Site], case: str) -> None:
    export = site(case).export
    text = _B64_LINE.sub(r"\1<base64>", to_yaml(export.objects, export.warnings))
    golden = GOLDEN / f"{case}.yaml"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"re-run with MTLSKIT_UPDATE_GOLDEN=1 to see {golden}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_validates_and_kyma_check_passes(site: Callable[..., Site], case: str) -> None:
    export = site(case).export
    for obj in export.objects:
        assert_valid(obj)
    text = to_yaml(export.objects, export.warnings)
    assert list(yaml.safe_load_all(text)) == list(export.objects)
    assert "&id" not in text and "*id" not in text  # no YAML aliases for shared lists
    findings = check_manifests([(f"{case}#{i}", o) for i, o in enumerate(export.objects, 1)])
    assert failing(findings, strict=True) == []
    # the only notes: the anonymous routes, said to be open by design
    for f in findings:
        assert (f.code, f.severity) == ("optional-mutual-noauth", "note"), f
        assert "mtlskit.dev/anonymous-paths" in f.what


def _gateway_allows(site: Site, server: int | None, req: Request) -> bool:
    """What mtlskit gateway decides, minus the rules Istio cannot express (they deny there).

    A principal stands for a client certificate with that spiffe:// URI SAN; None for none.
    """
    config = site.config
    conf = config if server is None else config.server[server]
    routes, policy = conf.route, conf.policy
    table = RouteTable([(r.path, r.methods) for r in routes]) if routes else None
    if table is not None:
        match = table.match(req.method, req.path)
        if match.status == 0:
            route = routes[match.index]
            if route.allow_anonymous:
                return True
            policy = route_policy(route)
        elif match.status == 405 or policy.is_empty:
            return False  # 405, or 404 without a [policy] fallback
    if req.principal is None and not policy.allow_all and not policy.allow_uri:
        return False
    if req.principal is None:
        return False  # a route that needs a certificate: 401
    return policy.allow_all or f"spiffe://{req.principal}" in policy.allow_uri


PATHS = ["/", "/healthz", "/orders/1", "/orders/1/items", "/orders/1/items/2/x", "/orders",
         "/admin", "/admin/", "/admin/users/3", "/administrator", "/public", "/public/a/b",
         "/api", "/api/v1", "/other", "/status", "/status/x"]  # fmt: skip
METHODS = ["GET", "POST", "DELETE", "PROPFIND"]
PRINCIPALS = [None, WEB, ADMIN, "partner.example/billing", "example.org/ns/other/sa/x"]


def _requests(host: str, sni: str) -> Iterator[Request]:
    for path, method, principal in itertools.product(PATHS, METHODS, PRINCIPALS):
        for form in (host, f"{host}:443"):
            yield Request(form, path, method, principal, sni)


@pytest.mark.parametrize(
    ("case", "server", "host"),
    [
        ("routes", None, FQDN),
        ("optional", None, FQDN),
        ("two-servers", None, FQDN),
        ("two-servers", 0, "api.example.com"),
        ("two-servers", 1, "partners.example.com"),
        ("two-servers", 1, "eu.partners.example.com"),
    ],
)
def test_the_cluster_decides_as_the_gateway(
    site: Callable[..., Site], case: str, server: int | None, host: str
) -> None:
    # Every request, with and without a port in Host: Istio's DENY rules (as modelled in
    # istio_model) leave through exactly what the gateway admits with the rules Istio can
    # express; first match order, 404/405 and anonymous routes included.
    rendered = site(case)
    policies = rendered.kind("AuthorizationPolicy")
    servers = rendered.kind("Gateway")[0]["spec"]["servers"]
    optional = servers[0 if server is None else server + 1]["tls"]["mode"] == "OPTIONAL_MUTUAL"
    wrong = []
    for req in _requests(host, sni=host):
        if req.principal is None and not optional:
            continue  # MUTUAL: no handshake without a certificate
        cluster = not denied(policies, req)
        if cluster != _gateway_allows(rendered, server, req):
            wrong.append((req, cluster))
    assert not wrong, wrong[:5]


def test_routes_become_apirule_rules_in_order(site: Callable[..., Site]) -> None:
    rendered = site("routes")
    rules = rendered.named("APIRule", "orders")["spec"]["rules"]
    assert [(r["path"], r["methods"]) for r in rules[:4]] == [
        ("/healthz", ["GET"]),
        ("/orders/{*}", ["GET", "POST"]),
        ("/orders/{*}/items/{**}", ["GET", "POST"]),
        ("/orders/{*}/items", ["GET", "POST"]),  # the gateway's {**} covers the parent too
    ]
    assert [r["path"] for r in rules[4:]] == ["/admin/{**}", "/admin"]
    assert all(r["noAuth"] is True for r in rules)
    # the route's own upstream is a Service: that rule goes there, the others to the APIRule's
    assert rules[1]["service"] == {"name": "orders-api", "port": 9000}
    assert "service" not in rules[0] and "service" not in rules[4]
    # headers: the server's, then the route's own
    assert rules[0]["request"]["headers"] == DEMO_HEADERS
    assert rules[4]["request"]["headers"] == DEMO_HEADERS | {"X-Admin": "%DOWNSTREAM_PEER_URI_SAN%"}
    # allow_cn on the admin route cannot be expressed: named, and denied in the cluster
    policy = rendered.kind("AuthorizationPolicy")[0]
    assert (
        "route[3].allow_cn = 'alice'"
        in policy["metadata"]["annotations"]["mtlskit.dev/rules-not-expressed"]
    )
    assert any(
        w.subject == "route[3].allow_cn = 'alice' (route admin)" for w in rendered.export.warnings
    )
    assert any("MERGE_SLASHES" in w.fix for w in rendered.export.warnings)


def test_optional_mode(site: Callable[..., Site]) -> None:
    rendered = site("optional")
    [server] = rendered.kind("Gateway")[0]["spec"]["servers"]
    assert server["tls"]["mode"] == "OPTIONAL_MUTUAL"
    rule = rendered.named("APIRule", "orders")
    assert rule["metadata"]["annotations"] == {
        "mtlskit.dev/anonymous-paths": "/public/{**}, /public"
    }
    rules = rendered.kind("AuthorizationPolicy")[0]["spec"]["rules"]
    # allow_all on /api needs a certificate: "*" is any principal, and none is no principal
    assert rules[0]["from"] == [{"source": {"notPrincipals": ["*"]}}]
    assert rules[0]["to"][0]["operation"]["paths"] == ["/api/{**}", "/api"]
    # no rule mentions the anonymous paths but to exclude them
    assert all("/public" not in to["operation"].get("paths", []) for r in rules for to in r["to"])
    assert any("401 page" in w.what for w in rendered.export.warnings)


def test_optional_allow_all_without_routes_requires_a_certificate(
    site: Callable[..., Site],
) -> None:
    rendered = site("two-servers")  # top level: allow_all, client_auth optional, no routes
    [rule] = rendered.named("AuthorizationPolicy", "kyma-mtls-gateway-orders-clients")["spec"][
        "rules"
    ]
    assert rule == {
        "from": [{"source": {"notPrincipals": ["*"]}}],
        "to": [{"operation": {"hosts": [FQDN, f"{FQDN}:*"]}}],
    }


def test_each_server_gets_its_gateway_server_secrets_apirule_and_policy(
    site: Callable[..., Site], cas: tuple[CertificateAuthority, ...]
) -> None:
    rendered = site("two-servers")
    servers = rendered.kind("Gateway")[0]["spec"]["servers"]
    assert [(s["port"]["name"], s["tls"]["credentialName"], s["hosts"]) for s in servers] == [
        ("mtls", "kyma-mtls-certs", ["*.mtls.example.com"]),
        ("mtls-api", "kyma-mtls-certs-api", ["api.example.com"]),
        (
            "mtls-partners",
            "kyma-mtls-certs-partners",
            ["partners.example.com", "*.partners.example.com"],
        ),
    ]
    files = rendered.dir
    for name, ca_file, chain in (
        ("api", "client-ca.pem", "api"),
        ("partners", "partner-ca.pem", "partners"),
    ):
        cacert = rendered.named("Secret", f"kyma-mtls-certs-{name}-cacert")
        assert base64.b64decode(cacert["data"]["cacert"]) == (files / ca_file).read_bytes()
        tls = rendered.named("Secret", f"kyma-mtls-certs-{name}")
        assert tls["type"] == "kubernetes.io/tls" and "ca.crt" not in tls["data"]
        assert (
            base64.b64decode(tls["data"]["tls.crt"]) == (files / f"{chain}.chain.pem").read_bytes()
        )
        assert base64.b64decode(tls["data"]["tls.key"]) == (files / f"{chain}.key").read_bytes()
        assert cacert["metadata"]["namespace"] == tls["metadata"]["namespace"] == "istio-system"
    api = rendered.named("APIRule", "kyma-mtls-gateway-api")["spec"]
    assert api["hosts"] == ["api.example.com"]
    assert api["service"] == {"name": "api", "port": 8080}  # the server's upstream
    partners = rendered.named("APIRule", "kyma-mtls-gateway-partners")["spec"]
    assert partners["service"] == {"name": "orders", "port": 8080}  # none: the top-level one
    # the wildcard name is matched by SNI (a suffix cannot carry ':*'), the others by Host
    rules = rendered.named("AuthorizationPolicy", "kyma-mtls-gateway-partners-clients")["spec"][
        "rules"
    ]
    assert {"key": "connection.sni", "values": ["*.partners.example.com"]} in rules[1]["when"]
    assert rules[0]["to"][0]["operation"]["hosts"] == [
        "partners.example.com",
        "partners.example.com:*",
    ]


def test_a_server_keeps_its_own_client_auth(site: Callable[..., Site]) -> None:
    rendered = site("two-servers")
    # The loader refuses a [[server]]'s own client_auth today; set it on the loaded config.
    config = rendered.config
    api = dataclasses.replace(config.server[0], client_auth="required")
    changed = dataclasses.replace(config, server=(api, config.server[1]))
    export = render_loaded(changed)
    modes = [
        s["tls"]["mode"]
        for s in next(o for o in export.objects if o["kind"] == "Gateway")["spec"]["servers"]
    ]
    assert modes == ["OPTIONAL_MUTUAL", "MUTUAL", "OPTIONAL_MUTUAL"]


def test_two_servers_with_one_name_are_refused(site: Callable[..., Site]) -> None:
    config = site("two-servers").config
    twin = dataclasses.replace(config.server[1], name="API")
    with pytest.raises(ExportError, match="both make objects named 'api'"):
        render_loaded(dataclasses.replace(config, server=(config.server[0], twin)))


def test_methods_an_apirule_cannot_list_are_named(site: Callable[..., Site]) -> None:
    config = site("routes").config
    webdav = dataclasses.replace(config.route[2], methods=("PROPFIND", "GET"))
    export = render_loaded(dataclasses.replace(config, route=(*config.route[:2], webdav)))
    rules = next(o for o in export.objects if o["kind"] == "APIRule")["spec"]["rules"]
    assert [r["methods"] for r in rules if r["path"] == "/admin/{**}"] == [["GET"]]
    assert any(w.subject.startswith("route[3].methods = ['PROPFIND']") for w in export.warnings)


def test_a_route_upstream_that_is_no_service_is_named(site: Callable[..., Site]) -> None:
    config = site("routes").config
    local = dataclasses.replace(config.route[1], upstream=config.upstream)  # 127.0.0.1
    export = render_loaded(
        dataclasses.replace(config, route=(config.route[0], local, config.route[2]))
    )
    rules = next(o for o in export.objects if o["kind"] == "APIRule")["spec"]["rules"]
    assert all("service" not in r for r in rules)
    [said] = [w for w in export.warnings if w.subject.startswith("route[2].upstream")]
    assert "goes to orders:8080" in said.what or "go to orders:8080" in said.what


def test_cli_renders_the_servers_files(
    site: Callable[..., Site], kyma_cli: Any, tmp_path: Path
) -> None:
    toml = site("two-servers").dir / "gateway.toml"
    out = tmp_path / "out.yaml"
    argv = ["kyma", "render", "--config", toml, "--domain", "mtls.example.com"]
    result = kyma_cli(*argv, "--namespace", "shop", "--service", "orders:8080", "--out", out)
    assert result.code == 0, result.err
    docs = list(yaml.safe_load_all(out.read_text()))
    names = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    assert "kyma-mtls-certs-partners-cacert" in names and "kyma-mtls-certs-api" in names
    assert "server[2].route[2].allow_dns = 'billing.partner.example'" in result.err
    check = kyma_cli("kyma", "check", out, "--strict")
    assert check.code == 0, check.out
