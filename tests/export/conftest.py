"""The demo setup for the export tests: an mtlskit CA, a localhost server cert, a gateway.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mtlskit.pki import CertificateAuthority

DEMO_HEADERS = {
    "X-CLIENT-SSL-CN": "%DOWNSTREAM_PEER_SUBJECT%",
    "X-CLIENT-SSL-ISSUER": "%DOWNSTREAM_PEER_ISSUER%",
    "X-CLIENT-SSL-SAN": "%DOWNSTREAM_PEER_URI_SAN%",
}


@dataclass
class Demo:
    """The files of the demo gateway."""

    dir: Path
    toml: Path
    client_ca: Path
    cert: Path
    key: Path


def write_gateway_toml(
    directory: Path, *, policy: str, upstream: str = "http://127.0.0.1:8080", extra: str = ""
) -> Path:
    """A gateway.toml next to demo files server.chain.pem, server.key and client-ca.pem."""
    headers = "\n".join(f'{k} = "{v}"' for k, v in DEMO_HEADERS.items())
    text = f"""listen = "127.0.0.1:8443"
upstream = "{upstream}"
{extra}
[tls]
cert = "server.chain.pem"
key = "server.key"
client_ca = "client-ca.pem"

[policy]
{policy}

[headers]
{headers}
"""
    path = directory / "gateway.toml"
    path.write_text(text)
    return path


@pytest.fixture
def demo(ca: CertificateAuthority, tmp_path: Path) -> Demo:
    """client CA = the CA's root; server cert for localhost; allow_ou = ["demo"]."""
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "client-ca.pem").write_bytes(ca.root_pem())
    ca.issue_server("localhost").write(directory, "server")
    toml = write_gateway_toml(directory, policy='allow_ou = ["demo"]')
    return Demo(
        directory,
        toml,
        directory / "client-ca.pem",
        directory / "server.chain.pem",
        directory / "server.key",
    )


@pytest.fixture
def kyma_cli(run_cli: Any) -> Any:
    """Run `mtlskit ...` in-process (the shared runner: the kyma group is registered)."""
    return run_cli
