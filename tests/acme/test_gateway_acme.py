"""The gateway with [tls] acme: it gets its server certificate from Pebble at start."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from cryptography import x509

from mtlskit.config import load_gateway_config
from mtlskit.demo.echo import EchoServer
from mtlskit.gateway.embedded import embedded_gateway
from mtlskit.pki import CertificateAuthority
from tests.acme.conftest import Pebble


def test_gateway_obtains_its_certificate_from_acme(
    pebble: Pebble, ca: CertificateAuthority, ca_dir: Path, tmp_path: Path
) -> None:
    client = ca.issue_client("alice", ["alice.example.org"])
    client.write(tmp_path, "alice")
    acme_dir = tmp_path / "acme"
    with EchoServer() as echo:
        config = load_gateway_config(
            {
                "listen": "127.0.0.1:0",
                "upstream": echo.url,
                "workers": 1,
                "tls": {
                    "client_ca": str(ca_dir / "root.crt"),
                    "acme": {
                        "directory": pebble.directory,
                        "domains": ["gw.example.com"],
                        "dir": str(acme_dir),
                        "http01": f"127.0.0.1:{pebble.http_port}",
                        "ca_bundle": str(pebble.ca_bundle),
                        "email": "ops@example.com",
                    },
                },
                "policy": {"allow_all": True},
            }
        )
        assert config.tls.cert == acme_dir / "server.chain.pem"
        with embedded_gateway(config) as gw:
            issued = x509.load_pem_x509_certificates((acme_dir / "server.chain.pem").read_bytes())
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # Pebble's roots change at every start
            ctx.load_cert_chain(tmp_path / "alice.chain.pem", tmp_path / "alice.key")
            with (
                socket.create_connection(("127.0.0.1", gw.port)) as raw,
                ctx.wrap_socket(raw, server_hostname="gw.example.com") as tls,
            ):
                served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
                tls.sendall(b"GET /acme HTTP/1.1\r\nHost: gw.example.com\r\n\r\n")
                assert tls.recv(12) == b"HTTP/1.1 200"
    assert served == issued[0]
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["gw.example.com"]
    assert len(issued) >= 2  # the chain from the ACME CA, sent in full


def _served_leaf(port: int, sni: str, client: Path) -> x509.Certificate:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # Pebble's roots change at every start
    ctx.load_cert_chain(client / "alice.chain.pem", client / "alice.key")
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
        tls.sendall(f"GET /acme HTTP/1.1\r\nHost: {sni}\r\n\r\n".encode())
        assert tls.recv(12) == b"HTTP/1.1 200"
    return served


def test_each_server_gets_its_own_acme_certificate(
    pebble: Pebble, ca: CertificateAuthority, ca_dir: Path, tmp_path: Path
) -> None:
    """A [[server]] with `acme` gets its certificate from the CA at start, beside the default."""
    ca.issue_client("alice", ["alice.example.org"]).write(tmp_path, "alice")

    def acme(name: str) -> dict[str, str | list[str]]:
        return {
            "directory": pebble.directory,
            "domains": [name],
            "dir": str(tmp_path / name),
            "http01": f"127.0.0.1:{pebble.http_port}",
            "ca_bundle": str(pebble.ca_bundle),
        }

    with EchoServer() as echo:
        config = load_gateway_config(
            {
                "listen": "127.0.0.1:0",
                "upstream": echo.url,
                "workers": 1,
                "tls": {"client_ca": str(ca_dir / "root.crt"), "acme": acme("gw.example.com")},
                "policy": {"allow_all": True},
                "server": [
                    {
                        "server_names": ["b.example.com"],
                        "client_ca": str(ca_dir / "root.crt"),
                        "acme": acme("b.example.com"),
                        "policy": {"allow_all": True},
                    }
                ],
            }
        )
        with embedded_gateway(config) as gw:
            default = _served_leaf(gw.port, "gw.example.com", tmp_path)
            other = _served_leaf(gw.port, "b.example.com", tmp_path)
    for leaf, name in ((default, "gw.example.com"), (other, "b.example.com")):
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [name]
    written = x509.load_pem_x509_certificates(
        (tmp_path / "b.example.com" / "server.chain.pem").read_bytes()
    )
    assert written[0] == other
