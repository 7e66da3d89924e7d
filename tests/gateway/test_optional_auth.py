"""`[tls] client_auth = "optional"`: anonymous routes, 401/403 pages, `verify_optional`.

Real clients (curl, httpx, openssl s_client, the hand-driven h2 client) with and without a
certificate; the recorder says what reached the workload, and what never did.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from mtlskit.config import GatewayConfig
from tests.gateway.harness import PKI, H2Client, client_context, running_gateway
from tests.gateway.recorder import recording_upstream
from tests.gateway.sites_pki import (
    context,
    h1,
    request_as,
    routes_config,
    s_client,
    wait_route_count,
)

PROTO = {"1.1": "--http1.1", "2": "--http2"}
BOTH = pytest.mark.parametrize("v", list(PROTO))

ROUTES: list[dict[str, Any]] = [
    {"path": "/public/{**}", "allow_anonymous": True, "name": "public"},
    {"path": "/{**}", "allow_cn": ["alice"], "name": "members"},
]
# what a client may send to pass for someone: every one must be stripped
FORGED = [
    "-H",
    'x-forwarded-client-cert: By=spiffe://evil;Subject="CN=admin"',
    "-H",
    "Client-Cert: :ZXZpbA==:",
    "-H",
    "X-Client-Subject: CN=admin",
]


def optional_config(pki: PKI, upstream: str, **tls: Any) -> GatewayConfig:
    """ROUTES with optional client certificates and every identity header on."""
    return routes_config(
        pki,
        upstream,
        ROUTES,
        tls={"client_auth": "optional", **tls},
        identity_headers="xfcc,client-cert",
        headers={"X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
    )


@BOTH
def test_a_caller_without_a_certificate_reaches_an_anonymous_route_with_no_identity(
    pki: PKI, v: str
) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        reply = request_as(pki, None, gw.url + "/public/a", PROTO[v], *FORGED)
        assert reply.status == 200, reply.raw
        (seen,) = rec.requests()
        assert seen.target == "/public/a"
        for name in ("x-forwarded-client-cert", "client-cert", "x-client-subject"):
            assert seen.values(name) == [], f"{name} reached the workload: {seen.headers}"
        line = gw.wait_for_log('"GET /public/a" 200')
        assert "allow(allow_anonymous)" in line and "route=public" in line, line
        wait_route_count(gw, 1, server="default", route="public", result="anonymous")


@BOTH
def test_without_a_certificate_a_route_that_needs_one_answers_401(pki: PKI, v: str) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        reply = request_as(pki, None, gw.url + "/private", PROTO[v], *FORGED)
        assert reply.status == 401, reply.raw
        assert "www-authenticate" in reply.headers
        assert reply.headers["content-type"].startswith("application/json")
        body = reply.json()
        assert body["error"] == "client_certificate_required" and body["status"] == 401
        assert body["route"] == "members" and "members" in body["reason"]
        assert body["presented_certificate"] is None
        assert any("Gateway Test Root CA" in n for n in body["accepted_ca_names"]), body
        assert rec.requests() == []
        assert "route=members" in gw.wait_for_log('"GET /private" 401')
        wait_route_count(gw, 1, server="default", route="members", result="unauthenticated")


def test_an_http1_401_closes_the_connection(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        request = b"GET /private HTTP/1.1\r\nHost: localhost\r\n\r\nGET /public/x HTTP/1.1\r\n"
        reply = h1(gw.port, context(pki["root.crt"]), "localhost", request + b"Host: l\r\n\r\n")
        assert reply.status == 401 and reply.closed, reply
        assert b"HTTP/1.1 200" not in reply.body, "the pipelined request was answered"
        assert rec.requests() == []


def test_a_browser_without_a_certificate_gets_an_html_page_that_says_what_to_install(
    pki: PKI,
) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        with httpx.Client(verify=client_context(pki, None), base_url=gw.url) as client:
            reply = client.get("/private", headers={"Accept": "text/html,*/*;q=0.8"})
        assert reply.status_code == 401
        assert reply.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        assert "www-authenticate" in reply.headers
        assert "Gateway Test Root CA" in reply.text and ".p12" in reply.text
        assert "presented no certificate" in reply.text
        assert rec.requests() == []


def test_a_grpc_call_without_a_certificate_gets_unauthenticated(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        client = H2Client(gw.port, client_context(pki, None))
        try:
            grpc = [("content-type", "application/grpc"), ("te", "trailers")]
            (resp,) = client.wait(client.request("/pkg.Svc/Call", "POST", grpc, b"\0\0\0\0\0"))
        finally:
            client.close()
        assert resp.status == 200 and resp.ended, resp
        assert resp.headers.get("grpc-status") == "16", resp.headers  # UNAUTHENTICATED
        assert rec.requests() == []


def test_over_http2_each_refusal_is_one_stream_of_the_anonymous_connection(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        client = H2Client(gw.port, client_context(pki, None))
        try:
            statuses = [
                client.wait(client.request(path))[0].status
                for path in ("/public/1", "/private", "/public/2")
            ]
        finally:
            client.close()
        assert statuses == [200, 401, 200]
        assert [r.target for r in rec.requests()] == ["/public/1", "/public/2"]


def test_a_verified_certificate_is_still_decided_by_the_rules(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        alice = request_as(pki, "alice", gw.url + "/private", *FORGED)
        assert alice.status == 200, alice.raw
        carol = request_as(pki, "carol", gw.url + "/private")
        assert carol.status == 403, carol.raw
        body = carol.json()
        assert body["error"] == "forbidden" and "CN=carol" in body["presented_certificate"]
        assert "www-authenticate" not in carol.headers
        (seen,) = rec.requests()
        (xfcc,) = seen.values("x-forwarded-client-cert")
        assert "evil" not in xfcc and "CN=alice" in xfcc
        assert seen.values("x-client-subject") == ["CN=alice,OU=demo,O=Example"]


@pytest.mark.parametrize(
    ("name", "why"),
    [("intruder", r"unknown|not trusted|untrusted|issuer|\bCA\b"), ("expired", r"expired")],
)
def test_explain_lets_an_unverified_certificate_through_to_a_403_only(
    pki: PKI, name: str, why: str
) -> None:
    with recording_upstream() as rec:
        config = optional_config(pki, rec.url, verify_optional="explain")
        with running_gateway(config) as gw:
            for path in ("/public/a", "/private"):  # not even the anonymous route
                reply = request_as(pki, name, gw.url + path, *FORGED)
                assert reply.status == 403, f"{name} on {path}: {reply.raw}"
                body = reply.json()
                assert body["error"] == "forbidden"
                assert f"CN={'old' if name == 'expired' else name}" in (
                    body["presented_certificate"] or ""
                ), body
                assert body["why"] and re.search(why, body["why"], re.I), body
            with httpx.Client(verify=client_context(pki, name), base_url=gw.url) as client:
                page = client.get("/public/b", headers={"Accept": "text/html"})
            assert page.status_code == 403 and "text/html" in page.headers["content-type"]
        assert rec.requests() == [], "an unverified certificate reached the workload"


def test_explain_names_a_revoked_certificate(pki: PKI) -> None:
    with recording_upstream() as rec:
        config = optional_config(
            pki,
            rec.url,
            verify_optional="explain",
            client_ca=str(pki["clients-ca.pem"]),
            crl=[str(pki["crl.pem"])],
        )
        with running_gateway(config) as gw:
            reply = request_as(pki, "revoked", gw.url + "/public/a")
            assert reply.status == 403, reply.raw
            body = reply.json()
            assert "CN=mallory" in (body["presented_certificate"] or ""), body
            assert body["why"] and "revoked" in body["why"].lower(), body
            assert request_as(pki, "alice", gw.url + "/private").status == 200
        assert [r.target for r in rec.requests()] == ["/private"]


def test_explain_answers_an_unverified_grpc_call_with_permission_denied(pki: PKI) -> None:
    with recording_upstream() as rec:
        config = optional_config(pki, rec.url, verify_optional="explain")
        with running_gateway(config) as gw:
            client = H2Client(gw.port, client_context(pki, "intruder"))
            try:
                grpc = [("content-type", "application/grpc"), ("te", "trailers")]
                sid = client.request("/public/Svc/Call", "POST", grpc, b"\0\0\0\0\0")
                (resp,) = client.wait(sid)
            finally:
                client.close()
        assert resp.status == 200 and resp.headers.get("grpc-status") == "7", resp
        assert rec.requests() == []


def test_by_default_an_unverified_certificate_is_refused_in_the_handshake(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        reply = request_as(pki, "intruder", gw.url + "/public/a")
        assert reply.status == 0, f"no HTTP answer expected: {reply.raw}"
        out = s_client(
            gw.port,
            "localhost",
            "-CAfile",
            pki["root.crt"],
            "-cert",
            pki["intruder.crt"],
            "-key",
            pki["intruder.key"],
            "-ign_eof",
            stdin="GET /public/a HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        assert "alert unknown ca" in out, out
        assert "HTTP/1.1 200" not in out
        assert rec.requests() == []
        gw.wait_for_log("handshake_failed")


def test_required_mode_still_refuses_a_caller_without_a_certificate(pki: PKI) -> None:
    routes = [{"path": "/{**}", "allow_all": True}]
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, routes)) as gw:
        reply = request_as(pki, None, gw.url + "/x")
        assert reply.status == 0, f"no HTTP answer expected: {reply.raw}"
        out = s_client(gw.port, "localhost", "-CAfile", pki["root.crt"], "-ign_eof", stdin="")
        assert "alert certificate required" in out, out
        assert rec.requests() == []


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_optional_mode_completes_the_handshake_without_a_certificate(
    pki: PKI, version: str
) -> None:
    with recording_upstream() as rec, running_gateway(optional_config(pki, rec.url)) as gw:
        out = s_client(
            gw.port,
            "localhost",
            "-CAfile",
            pki["root.crt"],
            version,
            "-ign_eof",
            stdin="GET /public/s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        assert "Acceptable client certificate CA names" in out and "alert" not in out, out
        assert "HTTP/1.1 200" in out
        assert [r.target for r in rec.requests()] == ["/public/s"]
