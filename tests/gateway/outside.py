"""A PKI made with the openssl command for the gateway tests of issue 13, and its config."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlskit.config import GatewayConfig
from tests.gateway.harness import config_for
from tests.opensslpki import CA_EXT, CLIENT_EXT, OpenSSLPKI, server_ext


@dataclass(frozen=True)
class OutsidePKI:
    """Two roots, an intermediate under the first, a server and a client chain (openssl)."""

    dir: Path
    root: Path
    other_root: Path
    cas: Path  # both roots: the client CA bundle the gateway names in its CertificateRequest
    server_chain: Path
    server_key: Path
    client_chain: Path
    client_cert: Path
    client_key: Path
    intermediate: Path
    intermediate_key: Path


def make_outside_pki(base: Path) -> OutsidePKI:
    """Certificates as the outside world makes them: `openssl req` and `openssl x509`."""
    made = OpenSSLPKI(base)
    root = made.root("Outside Root CA")
    other = made.root("Partner Root CA")
    inter = made.issue("Outside Issuing CA", root, ext=CA_EXT + "authorityKeyIdentifier=keyid\n")
    server = made.issue("localhost", inter, ext=server_ext("localhost", "127.0.0.1"))
    client = made.issue("browser-user", inter, ext=CLIENT_EXT)
    return OutsidePKI(
        dir=base,
        root=root.cert,
        other_root=other.cert,
        cas=made.bundle("client-cas", root, other),
        server_chain=made.bundle("server.chain", server, inter),
        server_key=server.key,
        client_chain=made.bundle("browser-user.chain", client, inter),
        client_cert=client.cert,
        client_key=client.key,
        intermediate=inter.cert,
        intermediate_key=inter.key,
    )


def outside_config(pki: OutsidePKI, upstream: str, **overrides: Any) -> GatewayConfig:
    """A gateway on 127.0.0.1:0 serving the openssl-made chain, trusting both roots."""
    certs = (pki.server_chain, pki.server_key, pki.cas)
    # a policy given replaces this one (a test that refuses the client says whom it admits)
    policy = overrides.pop("policy", {"allow_uri": ["spiffe://example.org/app"]})
    return config_for(*certs, upstream, policy, **overrides)


def abandon_after_flight(port: int, root: Path, version: ssl.TLSVersion, *, reset: bool) -> int:
    """Behave as a browser's speculative connection: read the server's flight, then close.

    The stdlib client runs over memory BIOs, so the test decides what goes on the wire:
    its ClientHello, then nothing more. Once it has taken in the whole server flight
    (TLS 1.2: up to ServerHelloDone; TLS 1.3: up to the server's Finished, the
    CertificateRequest before it) it has its own answer ready, which is never sent: the
    socket is closed (FIN) or reset (RST, SO_LINGER 0) instead.

    Returns:
        How many bytes of the server's flight were read.
    """
    ctx = ssl.create_default_context(cafile=str(root))
    ctx.minimum_version = ctx.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    received = 0
    try:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        raw.sendall(outgoing.read())  # the ClientHello
        while True:
            data = raw.recv(65536)
            if not data:
                raise AssertionError("the gateway closed before its flight was complete")
            received += len(data)
            incoming.write(data)
            try:
                tls.do_handshake()  # TLS 1.3: done on the client's side after the flight
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:  # TLS 1.2: our Certificate... waits, unsent
                    break
    finally:
        if reset:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
    return received
