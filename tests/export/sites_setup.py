"""Gateway configs with routes, optional client certificates and [[server]]s (export tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlskit.config import GatewayConfig, load_gateway_config, read_toml
from mtlskit.export import KymaExport, KymaInputs, KymaOptions, ServerInputs, render_kyma
from mtlskit.pki import CertificateAuthority

from .conftest import DEMO_HEADERS

ROUTES = """
[[route]]
name = "health"
path = "/healthz"
methods = ["GET"]
allow_all = true

[[route]]
name = "orders"
path = ["/orders/{*}", "/orders/{*}/items/{**}"]
methods = ["GET", "POST"]
allow_uri = ["spiffe://example.org/ns/shop/sa/web"]
upstream = "http://orders-api.shop:9000"

[[route]]
name = "admin"
path = "/admin/{**}"
allow_cn = ["alice"]
allow_uri = ["spiffe://example.org/ns/shop/sa/admin"]
headers = { X-Admin = "%DOWNSTREAM_PEER_URI_SAN%" }
"""

OPTIONAL = """
[[route]]
name = "public"
path = "/public/{**}"
allow_anonymous = true

[[route]]
name = "api"
path = "/api/{**}"
methods = ["GET"]
allow_all = true
"""

SERVERS = """
[[server]]
name = "api"
server_names = ["api.example.com"]
cert = "api.chain.pem"
key = "api.key"
client_ca = "client-ca.pem"
upstream = "http://api.shop:8080"

[server.policy]
allow_uri = ["spiffe://example.org/ns/shop/sa/web"]

[[server]]
name = "partners"
server_names = ["partners.example.com", "*.partners.example.com"]
cert = "partners.chain.pem"
key = "partners.key"
client_ca = "partner-ca.pem"

[[server.route]]
path = "/status"
methods = ["GET"]
allow_anonymous = true

[[server.route]]
path = "/{**}"
allow_dns = ["billing.partner.example"]
allow_uri = ["spiffe://partner.example/billing"]
"""

# (client_auth, [policy] body, the tables after [headers])
CASES: dict[str, tuple[str, str, str]] = {
    "routes": ("required", "", ROUTES),
    "optional": ("optional", 'allow_uri = ["spiffe://example.org/ns/shop/sa/web"]', OPTIONAL),
    # Both servers inherit "optional" (a [[server]]'s own client_auth is refused by the
    # config loader today; test_kyma_sites sets it on the loaded config instead).
    "two-servers": ("optional", "allow_all = true", SERVERS),
}


@dataclass
class Site:
    """A rendered case: the directory, its config and the export."""

    dir: Path
    config: GatewayConfig
    export: KymaExport

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.export.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        return next(o for o in self.kind(kind) if o["metadata"]["name"] == name)


def write_site(
    directory: Path,
    ca: CertificateAuthority,
    partner: CertificateAuthority,
    servers: CertificateAuthority,
    case: str,
) -> Path:
    """The case's gateway.toml and every file it names, in directory.

    ca issues the clients of the top-level server and of `api`, partner those of
    `partners`; servers issues the server certificates (a client CA must not, as kyma
    check says).
    """
    client_auth, policy, tables = CASES[case]
    directory.mkdir(exist_ok=True)
    (directory / "client-ca.pem").write_bytes(ca.root_pem())
    (directory / "partner-ca.pem").write_bytes(partner.root_pem())
    servers.issue_server("localhost").write(directory, "server")
    servers.issue_server("api.example.com").write(directory, "api")
    names = ["partners.example.com", "*.partners.example.com"]
    servers.issue_server(names[0], names).write(directory, "partners")
    headers = "\n".join(f'{k} = "{v}"' for k, v in DEMO_HEADERS.items())
    text = f"""listen = "127.0.0.1:8443"
upstream = "http://127.0.0.1:8080"

[tls]
cert = "server.chain.pem"
key = "server.key"
client_ca = "client-ca.pem"
client_auth = "{client_auth}"

[policy]
{policy}

[headers]
{headers}
{tables}"""
    path = directory / "gateway.toml"
    path.write_text(text)
    return path


def render_loaded(config: GatewayConfig, **options: Any) -> KymaExport:
    """Render a loaded config into namespace shop for orders:8080, reading its files."""
    settings: dict[str, Any] = {
        "domain": "mtls.example.com",
        "namespace": "shop",
        "service": "orders",
        "service_port": 8080,
    }
    inputs = KymaInputs(
        config.tls.client_ca.read_bytes(),
        servers=tuple(
            ServerInputs(
                s.client_ca.read_bytes(), s.chain_path.read_bytes(), s.key_path.read_bytes()
            )
            for s in config.server
        ),
    )
    return render_kyma(config, KymaOptions(**(settings | options)), inputs)


def render_site(toml: Path, **options: Any) -> Site:
    """Load the config as the CLI does and render it (render_loaded)."""
    config = load_gateway_config(read_toml(toml), base_dir=toml.parent)
    return Site(toml.parent, config, render_loaded(config, **options))
