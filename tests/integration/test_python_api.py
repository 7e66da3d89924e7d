"""The Python API configures real ssl.SSLContexts that complete an mTLS handshake."""

from __future__ import annotations

import socket
import ssl
import threading

from mtlskit.pki import CertificateAuthority


def test_contexts_from_the_api_handshake_over_loopback(ca: CertificateAuthority) -> None:
    server = ca.issue_server("localhost", ["localhost", "127.0.0.1"])
    client = ca.issue_client("alice", ["spiffe://td/ns/a"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca.root_pem().decode())
    client.configure_cert(client_ctx)

    seen: dict[str, object] = {}
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            seen["peer"] = tls.getpeercert()
            tls.sendall(b"hello " + tls.recv(16))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"alice")
            assert tls.recv(32) == b"hello alice"
    finally:
        thread.join(10)
        listener.close()
    peer = seen["peer"]
    assert isinstance(peer, dict)
    assert peer["subjectAltName"] == (("URI", "spiffe://td/ns/a"),)
