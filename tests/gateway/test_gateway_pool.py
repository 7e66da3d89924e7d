"""Upstream connections shared by clients: one connection, many clients, each its own identity."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from tests.gateway.harness import PKI, gateway_config, running_gateway, tls_client
from tests.gateway.recorder import Reply, Request, default_script, ok, recording_upstream
from tests.gateway.test_gateway_smuggling import Responses


def _config(pki: PKI, upstream: str, **overrides: Any) -> Any:
    return gateway_config(pki, upstream, policy={"allow_all": True}, **overrides)


def _subject(req: Request) -> str:
    (xfcc,) = req.values("x-forwarded-client-cert")
    return xfcc.split('Subject="', 1)[1].split('"', 1)[0]


def test_one_upstream_connection_serves_many_clients(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(_config(pki, rec.url)) as gw:
        for name in ("alice", "carol", "alice", "carol"):
            with tls_client(pki, gw, name) as tls:
                tls.sendall(b"GET /" + name.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert Responses(tls).next() == (200, b"ok")
        requests = rec.wait_requests(4)
        assert len(rec.conns) == 1  # four clients, one after another, one upstream connection
        assert [(r.target, _subject(r)) for r in requests] == [
            ("/alice", "CN=alice,OU=demo,O=Example"),
            ("/carol", "CN=carol,OU=other"),
            ("/alice", "CN=alice,OU=demo,O=Example"),
            ("/carol", "CN=carol,OU=other"),
        ]


def test_clients_that_say_connection_close_still_share_one_upstream_connection(
    pki: PKI,
) -> None:
    with recording_upstream() as rec, running_gateway(_config(pki, rec.url)) as gw:
        for name in ("alice", "carol", "alice"):
            with tls_client(pki, gw, name) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                assert Responses(tls).next() == (200, b"ok")
                assert tls.recv(4096) == b""  # the gateway closed the client's connection
        rec.wait_requests(3)
        assert len(rec.conns) == 1  # ... but kept the upstream one for the next client


def test_clients_at_once_get_their_own_connections_and_identities(pki: PKI) -> None:
    # The workload answers the first two requests only once both have arrived, so both
    # are in flight at once (answered at once, one link could serve both in turn).
    both = threading.Barrier(2, timeout=5)

    def together(req: Request) -> Reply:
        if req.target in ("/a1", "/c1"):
            both.wait()
        return default_script(req)

    with recording_upstream(together) as rec, running_gateway(_config(pki, rec.url)) as gw:
        with tls_client(pki, gw, "alice") as a, tls_client(pki, gw, "carol") as c:
            a.sendall(b"GET /a1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            c.sendall(b"GET /c1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            ra, rc = Responses(a), Responses(c)
            assert ra.next() == (200, b"ok") and rc.next() == (200, b"ok")
            # once both are idle, either may take either connection: identity is per request
            a.sendall(b"GET /a2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert ra.next() == (200, b"ok")
            c.sendall(b"GET /c2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert rc.next() == (200, b"ok")
        requests = rec.wait_requests(4)
        assert len(rec.conns) == 2
        seen = {r.target: _subject(r) for r in requests}
        assert seen == {
            "/a1": "CN=alice,OU=demo,O=Example",
            "/a2": "CN=alice,OU=demo,O=Example",
            "/c1": "CN=carol,OU=other",
            "/c2": "CN=carol,OU=other",
        }


def test_without_a_pool_each_client_has_its_own_connection(pki: PKI) -> None:
    with recording_upstream() as rec:
        config = _config(pki, rec.url, limits={"upstream_keepalive": 0})
        with running_gateway(config) as gw:
            for name in ("alice", "carol"):
                with tls_client(pki, gw, name) as tls:
                    for _ in range(2):
                        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        assert Responses(tls).next() == (200, b"ok")
            rec.wait_requests(4)
            assert len(rec.conns) == 2  # one per client connection, kept for its requests


def _closes_second_request() -> Any:
    counter = itertools.count(1)

    def script(req: Request) -> Reply:
        if next(counter) == 2:
            return ("close", b"")  # the workload closed this keep-alive connection just now
        return ok()

    return script


@pytest.mark.parametrize(
    ("second", "answer", "seen"),
    [
        # idempotent and bodiless: sent again on a new connection
        (b"GET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n", 200, ["/1", "/2", "/2"]),
        # idempotent, but its body is gone: never sent twice
        (b"PUT /2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi", 502, ["/1", "/2"]),
        # not idempotent
        (b"POST /2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 502, ["/1", "/2"]),
    ],
    ids=["get-retried", "put-with-body-not", "post-not"],
)
def test_a_request_on_a_pooled_connection_the_workload_closed(
    pki: PKI, second: bytes, answer: int, seen: list[str]
) -> None:
    with (
        recording_upstream(_closes_second_request()) as rec,
        running_gateway(_config(pki, rec.url)) as gw,
        tls_client(pki, gw, "alice") as tls,
    ):
        responses = Responses(tls)
        tls.sendall(b"GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert responses.next() == (200, b"ok")
        tls.sendall(second)
        assert responses.next()[0] == answer
        assert [r.target for r in rec.wait_requests(len(seen))] == seen
