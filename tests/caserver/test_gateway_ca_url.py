"""The gateway with [tls] ca_url renews its server certificate and reloads, connections kept."""

from __future__ import annotations

import io
import socket
import ssl
import time
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from mtlskit.config import load_gateway_config
from mtlskit.demo.echo import EchoServer
from mtlskit.gateway.embedded import embedded_gateway
from mtlskit.gateway.logs import EventLog
from mtlskit.pki import CertificateAuthority
from tests.caserver.conftest import start


def _connect(port: int, root: Path, client: Path) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(root))
    ctx.load_cert_chain(client / "alice.chain.pem", client / "alice.key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="gw.example.org")


def _get(tls: ssl.SSLSocket, path: str) -> bytes:
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: gw.example.org\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += tls.recv(4096)
    return head.split(b"\r\n")[0]


def _served(tls: ssl.SSLSocket) -> x509.Certificate:
    return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")


def test_gateway_renews_from_ca_url_without_dropping_connections(
    ca: CertificateAuthority, ca_dir: Path, tmp_path: Path
) -> None:
    online = start(ca, ca_dir, tmp_path)
    gw_dir = tmp_path / "gw"
    gw_dir.mkdir()
    # Issued for one minute: with the CA's 5 minutes of backdating it is past 2/3 already.
    ca.issue_server("gw.example.org", ["gw.example.org"], validity=timedelta(minutes=1)).write(
        gw_dir, "server"
    )
    ca.issue_client("alice", ["spiffe://example.org/alice"]).write(tmp_path, "alice")
    log = io.StringIO()
    with online.server, EchoServer() as echo:
        config = load_gateway_config(
            {
                "listen": "127.0.0.1:0",
                "upstream": echo.url,
                "workers": 1,
                "tls": {
                    "cert": str(gw_dir / "server.chain.pem"),
                    "key": str(gw_dir / "server.key"),
                    "client_ca": str(online.root),
                    "ca_url": online.url,
                },
                "policy": {"allow_all": True},
            }
        )
        with embedded_gateway(config, EventLog(log)) as gw:
            old = _connect(gw.port, online.root, tmp_path)
            try:
                assert _get(old, "/before") == b"HTTP/1.1 200 OK"
                first = _served(old)
                # The gateway's own renewal task ([tls] ca_url, started with the gateway):
                # the certificate is due (short-lived), renewed, then the gateway reloads.
                deadline = time.monotonic() + 20
                while "reloaded" not in log.getvalue() and time.monotonic() < deadline:
                    time.sleep(0.1)
                with _connect(gw.port, online.root, tmp_path) as new:
                    renewed = _served(new)
                    assert _get(new, "/after") == b"HTTP/1.1 200 OK"
                # The connection opened before the renewal is still served.
                assert _get(old, "/still") == b"HTTP/1.1 200 OK"
            finally:
                old.close()
    text = log.getvalue()
    assert "ca_renewed" in text and "ca_renew_scheduled" in text, text
    assert renewed.serial_number != first.serial_number
    assert renewed.subject == first.subject
    assert renewed.not_valid_after_utc - renewed.not_valid_before_utc > timedelta(hours=23)
    on_disk = x509.load_pem_x509_certificates((gw_dir / "server.chain.pem").read_bytes())[0]
    assert on_disk == renewed
    assert [r.event for r in ca.store.audit_records()].count("renewed") == 1
