"""Routes at the edges: their own workloads and headers, pipelining across them, absolute form.

Real TLS clients (a raw ssl socket for exact bytes, the h2 test client) against the real
gateway, with recording workloads that keep every request they saw.
"""

from __future__ import annotations

import socket
from typing import Any

from mtlskit.config import GatewayConfig
from tests.gateway.harness import PKI, H2Client, client_context, config_for, running_gateway
from tests.gateway.recorder import recording_upstream


def _config(pki: PKI, default: str, other: str, **overrides: Any) -> GatewayConfig:
    routes = [
        {
            "path": "/a/{**}",
            "allow_ou": ["demo"],
            "headers": {"X-Who": "%DOWNSTREAM_PEER_SUBJECT%"},
        },
        {"path": "/b/{**}", "allow_ou": ["demo"], "upstream": other},
        {"path": "/admin/{**}", "allow_cn": ["admin"]},
    ]
    certs = (pki["server.chain.pem"], pki["server.key"], pki["root.crt"])
    return config_for(*certs, default, {}, route=routes, **overrides)


def _read_all(tls: socket.socket) -> bytes:
    data = b""
    while chunk := tls.recv(65536):
        data += chunk
    return data


def _exchange(pki: PKI, port: int, raw: bytes) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with client_context(pki, "alice").wrap_socket(sock, server_hostname="localhost") as tls:
        tls.sendall(raw)
        return _read_all(tls)


def test_each_route_reaches_its_own_workload_on_one_connection(pki: PKI) -> None:
    with (
        recording_upstream() as first,
        recording_upstream() as second,
        running_gateway(_config(pki, first.url, second.url)) as gw,
    ):
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        with client_context(pki, "alice").wrap_socket(sock, server_hostname="localhost") as tls:
            for path in ("/a/1", "/b/2", "/a/3"):  # one after the other, keep-alive
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                assert tls.recv(65536).startswith(b"HTTP/1.1 200"), path
        assert [r.target for r in first.requests()] == ["/a/1", "/a/3"]
        assert [r.target for r in second.requests()] == ["/b/2"]


def test_over_http2_streams_of_one_connection_go_to_their_routes_workloads(pki: PKI) -> None:
    with (
        recording_upstream() as first,
        recording_upstream() as second,
        running_gateway(_config(pki, first.url, second.url)) as gw,
    ):
        client = H2Client(gw.port, client_context(pki, "alice"))
        try:
            answers = client.wait(client.request("/a/x"), client.request("/b/y"))
        finally:
            client.close()
        assert [a.status for a in answers] == [200, 200]
        assert [r.target for r in first.requests()] == ["/a/x"]
        assert [r.target for r in second.requests()] == ["/b/y"]


def test_a_pipelined_request_for_another_workload_is_left_for_the_client_to_resend(
    pki: PKI,
) -> None:
    """RFC 9112 9.3.2: the answers in flight are sent, then the connection closes."""
    with (
        recording_upstream() as first,
        recording_upstream() as second,
        running_gateway(_config(pki, first.url, second.url)) as gw,
    ):
        pipelined = b"GET /a/1 HTTP/1.1\r\nHost: localhost\r\n\r\n" * 2
        pipelined += b"GET /b/2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        answer = _exchange(pki, gw.port, pipelined)
        assert answer.count(b"HTTP/1.1 200") == 2, answer
        assert [r.target for r in first.requests()] == ["/a/1", "/a/1"]
        assert second.requests() == []  # never forwarded: the client sends it again


def test_route_headers_are_added_on_their_route_and_stripped_everywhere(pki: PKI) -> None:
    with (
        recording_upstream() as first,
        recording_upstream() as second,
        running_gateway(_config(pki, first.url, second.url)) as gw,
    ):
        forged = b"X-Who: CN=admin\r\n"
        for path in (b"/a/1", b"/b/2"):
            answer = _exchange(
                pki,
                gw.port,
                b"GET %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n"
                % (path, forged),
            )
            assert answer.startswith(b"HTTP/1.1 200"), answer
        (on_a,) = first.requests()
        (on_b,) = second.requests()
        assert on_a.values("x-who") == ["CN=alice,OU=demo,O=Example"]  # ours, not the forgery
        assert on_b.values("x-who") == []  # the route without the header: stripped


def test_an_absolute_form_target_is_routed_by_its_path(pki: PKI) -> None:
    """RFC 9112 3.2.2: `GET https://host/admin/x` is the path /admin/x for the rules."""
    with (
        recording_upstream() as first,
        recording_upstream() as second,
        running_gateway(_config(pki, first.url, second.url)) as gw,
    ):
        denied = _exchange(
            pki, gw.port, b"GET https://localhost/admin/x HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        assert denied.startswith(b"HTTP/1.1 403"), denied
        allowed = _exchange(
            pki,
            gw.port,
            b"GET https://localhost/a/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        assert allowed.startswith(b"HTTP/1.1 200"), allowed
        assert [r.target for r in first.requests()] == ["https://localhost/a/x"]
        assert second.requests() == []


def test_in_tcp_mode_sni_picks_the_servers_workload(pki: PKI) -> None:
    """A byte pipe per site: SNI b.test goes to that [[server]]'s tcp:// upstream."""
    with recording_upstream() as first, recording_upstream() as second:
        certs = (pki["server.chain.pem"], pki["server.key"], pki["root.crt"])
        server = {
            "server_names": ["b.test"],
            "cert": str(pki["server.chain.pem"]),
            "key": str(pki["server.key"]),
            "client_ca": str(pki["root.crt"]),
            "upstream": first.url.replace("http://", "tcp://"),
            "policy": {"allow_ou": ["demo"]},
        }
        tcp = second.url.replace("http://", "tcp://")
        config = config_for(*certs, tcp, {"allow_ou": ["demo"]}, server=[server])
        with running_gateway(config) as gw:
            for sni, path in (("b.test", b"/to-b"), ("localhost", b"/to-default")):
                ctx = client_context(pki, "alice")
                ctx.check_hostname = False  # one certificate serves both names here
                sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
                with ctx.wrap_socket(sock, server_hostname=sni) as tls:
                    tls.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                    assert tls.recv(65536).startswith(b"HTTP/1.1 200")
        seen = ([r.target for r in first.requests()], [r.target for r in second.requests()])
        assert seen == (["/to-b"], ["/to-default"]), gw.log.getvalue()
