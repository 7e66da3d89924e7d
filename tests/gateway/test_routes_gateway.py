"""[[route]]s through the real gateway: per-path rules, 404/405/400, path tricks, logs, metrics.

Clients are curl (both protocols), raw TLS sockets and the hand-driven h2 client; the
workload is the recorder, so each test can say exactly what reached it (and what never did).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.harness import PKI, H2Client, client_context, running_gateway, tls_client
from tests.gateway.recorder import recording_upstream
from tests.gateway.sites_pki import (
    add_client,
    get,
    h1,
    request_as,
    route_count,
    routes_config,
    wait_route_count,
)

PROTO = {"1.1": "--http1.1", "2": "--http2"}
BOTH = pytest.mark.parametrize("v", list(PROTO))

ADMIN: dict[str, Any] = {"path": "/admin/{**}", "allow_cn": ["admin"]}
PUBLIC: dict[str, Any] = {"path": "/public/{**}", "allow_all": True, "name": "public"}
ROUTES: list[dict[str, Any]] = [ADMIN, PUBLIC]
REFUSAL_KEYS = {
    "status",
    "error",
    "reason",
    "route",
    "accepted_ca_names",
    "presented_certificate",
    "why",
}


@pytest.fixture(scope="module", autouse=True)
def _clients(pki: PKI) -> None:
    add_client(pki, "admin", "admin", unit="ops")
    add_client(pki, "evil", "evil", unit="<script>alert(1)</script>")


@BOTH
def test_each_path_takes_its_route_and_only_admitted_requests_reach_the_workload(
    pki: PKI, v: str
) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        assert request_as(pki, "alice", gw.url + "/public/a", PROTO[v]).status == 200
        assert request_as(pki, "admin", gw.url + "/admin/x", PROTO[v]).status == 200
        denied = request_as(pki, "alice", gw.url + "/admin/secret", PROTO[v])
        assert denied.status == 403, denied.raw
        assert denied.json()["route"] == "/admin/{**}"
        missing = request_as(pki, "alice", gw.url + "/elsewhere", PROTO[v])
        assert missing.status == 404, missing.raw
        assert missing.headers["content-type"].startswith("text/plain")
        assert [r.target for r in rec.requests()] == ["/public/a", "/admin/x"]


def test_the_first_matching_route_in_file_order_wins(pki: PKI) -> None:
    narrow = {"path": "/a/{**}", "allow_cn": ["carol"]}
    wide = {"path": "/a/b", "allow_all": True}
    with recording_upstream() as rec:
        with running_gateway(routes_config(pki, rec.url, [narrow, wide])) as gw:
            refused = request_as(pki, "alice", gw.url + "/a/b")
            assert refused.status == 403, "the first route (/a/{**}, carol only) decides"
            assert refused.json()["route"] == "/a/{**}"
        with running_gateway(routes_config(pki, rec.url, [wide, narrow])) as gw:
            assert request_as(pki, "alice", gw.url + "/a/b").status == 200
        assert [r.target for r in rec.requests()] == ["/a/b"]


@BOTH
def test_a_method_no_matching_route_takes_gets_405_with_allow(pki: PKI, v: str) -> None:
    routes: list[dict[str, Any]] = [
        {"path": "/orders/{*}", "methods": ["GET"], "allow_all": True},
        {"path": "/orders/{*}", "methods": ["POST", "DELETE"], "allow_cn": ["alice"]},
    ]
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, routes)) as gw:
        put = request_as(pki, "alice", gw.url + "/orders/1", PROTO[v], "-X", "PUT")
        assert put.status == 405, put.raw
        allow = {m.strip() for m in put.headers["allow"].split(",")}
        assert allow == {"GET", "POST", "DELETE"}, put.headers
        assert request_as(pki, "alice", gw.url + "/orders/1", PROTO[v], "-X", "POST").status == 200
        # carol may GET (route 1) but POST is route 2's, which admits alice only
        assert request_as(pki, "carol", gw.url + "/orders/2", PROTO[v]).status == 200
        carol = request_as(pki, "carol", gw.url + "/orders/2", PROTO[v], "-X", "POST")
        assert carol.status == 403
        assert [(r.method, r.target) for r in rec.requests()] == [
            ("POST", "/orders/1"),
            ("GET", "/orders/2"),
        ]


@pytest.mark.parametrize("line", ["GET /a%00b HTTP/1.1", "GET /%zz HTTP/1.1", "OPTIONS * HTTP/1.1"])
def test_a_target_that_is_not_a_path_gets_400_and_the_connection_closes(
    pki: PKI, line: str
) -> None:
    routes = [{"path": "/{**}", "allow_all": True}]
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, routes)) as gw:
        request = f"{line}\r\nHost: localhost\r\n\r\n".encode()
        reply = h1(gw.port, client_context(pki, "alice"), "localhost", request)  # reads to EOF
        assert reply.status == 400, reply.raw
        assert reply.closed, "an HTTP/1.1 refusal closes the connection"
        assert rec.requests() == []


def _get_line(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def test_each_request_of_a_keep_alive_connection_is_decided_on_its_own(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        with tls_client(pki, gw, "alice") as tls:
            tls.sendall(_get_line("/public/1"))
            first = b""
            while not first.endswith(b"ok"):  # the recorder answers "ok" (2 bytes)
                chunk = tls.recv(65536)
                assert chunk, first
                first += chunk
            tls.sendall(_get_line("/admin/2"))
            second = b""
            while chunk := tls.recv(65536):
                second += chunk
        assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 403"), second
        assert [r.target for r in rec.requests()] == ["/public/1"]


@pytest.mark.parametrize(
    ("second", "status"), [("/admin/2", 403), ("/nowhere", 404), ("/%zz", 400)]
)
def test_pipelined_requests_are_answered_in_order(pki: PKI, second: str, status: int) -> None:
    pipelined = b"".join(_get_line(p) for p in ("/public/1", second, "/public/3"))
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        reply = h1(gw.port, client_context(pki, "alice"), "localhost", pipelined)
        reached = [r.target for r in rec.requests()]
        assert reply.status == 200 and reached == ["/public/1"], (
            f"GATEWAY: pipelined GET /public/1 (allowed), GET {second} ({status}): the first "
            f"answer on the wire is {reply.status} and the workload got {reached}:\n{reply.raw}"
        )
        assert reply.closed and b"HTTP/1.1 %d" % status in reply.body, reply.raw
        assert b"HTTP/1.1 200" not in reply.body, "a request after the refusal was answered"


def test_http2_refusals_answer_one_stream_and_the_connection_goes_on(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        client = H2Client(gw.port, client_context(pki, "alice"))
        try:
            for path, status in [("/%zz", 400), ("/admin/x", 403), ("/nope", 404)]:
                (resp,) = client.wait(client.request(path))
                assert resp.status == status, (path, resp)
            (ok,) = client.wait(client.request("/public/ok"))
            assert ok.status == 200 and client.goaway is None
        finally:
            client.close()
        assert [r.target for r in rec.requests()] == ["/public/ok"]


def test_the_top_level_policy_is_the_default_route(pki: PKI) -> None:
    with recording_upstream() as rec:
        config = routes_config(pki, rec.url, [ADMIN], {"allow_ou": ["demo"]})
        with running_gateway(config) as gw:
            assert request_as(pki, "alice", gw.url + "/other").status == 200  # ou=demo
            carol = request_as(pki, "carol", gw.url + "/other")
            assert carol.status == 403 and carol.json()["route"] == "default", carol.raw
            # a matched route decides alone: the default does not rescue alice on /admin
            admin = request_as(pki, "alice", gw.url + "/admin/x")
            assert admin.status == 403 and admin.json()["route"] == "/admin/{**}"
            assert "route=default" in gw.wait_for_log('"GET /other" 403')
        assert [r.target for r in rec.requests()] == ["/other"]


# (target as sent, status alice gets): alice is admitted on /public only, never on /admin.
TRICKS = [
    ("/public/../admin/x", 403),
    ("/%61dmin/x", 403),
    ("/%61%64%6D%69%6E/x", 403),
    ("//admin/x", 403),
    ("///admin//x", 403),
    ("/admin/./x", 403),
    ("/public/%2e%2e/admin/x", 403),
    ("/public/.%2E/admin", 403),
    ("/admin", 403),
    ("/admin/", 403),
    ("/admin?next=/public/", 403),
    ("/ADMIN/x", 404),  # case-sensitive: not /admin, and no other route matches
    ("/%2561dmin/x", 404),  # %25 is not unreserved: stays encoded, matches nothing
    ("/public/a%2Fb", 200),  # %2F is not decoded: one segment under /public
    ("/public/..%2Fadmin", 400),  # a workload decoding %2F first would see /admin: refused
    ("/public/..%5Cadmin", 400),  # the same with a backslash (IIS, some frameworks)
    ("/public/..;/admin/x", 400),  # servlet containers read ..;/ as ../ (path parameters)
    ("/admin/../public/x", 200),  # the rule sees /public/x; the workload the target as sent
]


@BOTH
@pytest.mark.parametrize(("target", "status"), TRICKS, ids=[t for t, _ in TRICKS])
def test_path_tricks_never_take_alice_to_admin(pki: PKI, v: str, target: str, status: int) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        reply = request_as(pki, "alice", gw.url + target, PROTO[v], "--path-as-is")
        assert reply.status == status, reply.raw
        if status == 200:
            (seen,) = rec.wait_requests(1)
            assert seen.target == target, "the workload gets the target as sent"
            assert "route=public" in gw.wait_for_log(target)
        else:
            assert rec.requests() == [], f"{target} reached the workload"
        if status == 403:
            assert reply.json()["route"] == "/admin/{**}"
            # the admin may use the same spelling: it is the same route, not a broken path
            assert request_as(pki, "admin", gw.url + target, PROTO[v], "--path-as-is").status == 200


def test_access_lines_name_the_route_and_the_rule(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        request_as(pki, "alice", gw.url + "/public/a")
        request_as(pki, "admin", gw.url + "/admin/b")
        request_as(pki, "alice", gw.url + "/admin/c")
        public = gw.wait_for_log('"GET /public/a" 200')
        assert "route=public" in public and "allow(allow_all)" in public, public
        admin = gw.wait_for_log('"GET /admin/b" 200')
        assert "route=/admin/{**}" in admin and "allow(cn=admin)" in admin, admin
        denied = gw.wait_for_log('"GET /admin/c" 403')
        assert "route=/admin/{**}" in denied and "deny(" in denied, denied
        assert "CN=alice" in denied


def test_route_metrics_count_each_result(pki: PKI) -> None:
    routes = [*ROUTES, {"path": "/orders", "methods": ["GET"], "allow_all": True}]
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, routes)) as gw:
        request_as(pki, "alice", gw.url + "/public/a")
        request_as(pki, "alice", gw.url + "/public/b")
        request_as(pki, "alice", gw.url + "/admin/c")
        request_as(pki, "alice", gw.url + "/nowhere")
        request_as(pki, "alice", gw.url + "/orders", "-X", "POST")
        h1(gw.port, client_context(pki), "localhost", b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_route_count(gw, 2, server="default", route="public", result="allowed")
        wait_route_count(gw, 1, server="default", route="/admin/{**}", result="denied")
        wait_route_count(gw, 1, server="default", result="no_route")
        wait_route_count(gw, 1, server="default", result="method_not_allowed")
        wait_route_count(gw, 1, server="default", result="bad_path")
        assert route_count(gw, result="allowed") == 2


def test_403_in_json_names_the_route_the_ca_and_the_certificate(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        reply = request_as(pki, "carol", gw.url + "/admin/x", "-H", "Accept: application/json")
        assert reply.status == 403 and reply.headers["content-type"].startswith("application/json")
        body: dict[str, Any] = reply.json()
        assert set(body) == REFUSAL_KEYS
        assert body["status"] == 403 and body["error"] == "forbidden"
        assert body["route"] == "/admin/{**}" and "/admin/{**}" in body["reason"]
        assert any("Gateway Test Root CA" in n for n in body["accepted_ca_names"]), body
        assert "CN=carol" in body["presented_certificate"]
        assert "www-authenticate" not in reply.headers
        assert rec.requests() == []


def test_403_for_a_browser_is_html_with_a_csp_and_escapes_the_subject(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        reply = request_as(pki, "evil", gw.url + "/admin/x", "-H", "Accept: text/html,*/*")
        assert reply.status == 403, reply.raw
        assert reply.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        page = reply.body.decode()
        # RFC 4514 writes the OU as \<script\>...: the page shows it, escaped, never as a tag
        assert "<script" not in page and "</script" not in page
        assert "OU=\\&lt;script\\&gt;alert(1)" in page, page
        assert "/admin/{**}" in page and "Gateway Test Root CA" in page
        assert rec.requests() == []


def test_a_grpc_call_refused_by_a_route_gets_permission_denied_trailers_only(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        client = H2Client(gw.port, client_context(pki, "alice"))
        try:
            grpc = [("content-type", "application/grpc"), ("te", "trailers")]
            sid = client.request("/admin/Svc/Call", "POST", grpc, body=b"\0\0\0\0\0")
            (resp,) = client.wait(sid)
        finally:
            client.close()
        assert resp.status == 200 and resp.ended and resp.body == b"", resp
        assert resp.headers.get("grpc-status") == "7", resp.headers  # PERMISSION_DENIED
        assert "/admin/{**}" in resp.headers.get("grpc-message", "")
        assert rec.requests() == []


def test_a_route_has_its_own_upstream_and_identity_headers(pki: PKI) -> None:
    with recording_upstream() as main, recording_upstream() as api:
        route = {
            "path": "/api/{**}",
            "allow_ou": ["demo"],
            "upstream": api.url,
            "headers": {"X-Route-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
        }
        config = routes_config(pki, main.url, [route, PUBLIC])
        with running_gateway(config) as gw:
            assert (
                request_as(pki, "alice", gw.url + "/api/v1", "-H", "X-Route-Subject: x").status
                == 200
            )
            assert request_as(pki, "alice", gw.url + "/public/p").status == 200
        (seen,) = api.requests()
        assert seen.target == "/api/v1"
        assert seen.values("x-route-subject") == ["CN=alice,OU=demo,O=Example"]
        (other,) = main.requests()
        assert other.target == "/public/p" and other.values("x-route-subject") == []


def test_a_header_one_route_adds_is_stripped_on_the_others(pki: PKI) -> None:
    # the workload trusts X-User because the gateway sets it on /api: on /public a client
    # must not be able to send its own
    api: dict[str, Any] = {
        "path": "/api/{**}",
        "allow_all": True,
        "headers": {"X-User": "%DOWNSTREAM_PEER_SUBJECT%", "X-Who": "%DOWNSTREAM_PEER_URI_SAN%"},
    }
    with recording_upstream() as rec:
        config = routes_config(
            pki, rec.url, [api, PUBLIC], headers={"X-Who": "%DOWNSTREAM_PEER_SUBJECT%"}
        )
        with running_gateway(config) as gw:
            forged = ("-H", "X-User: CN=admin", "-H", "X-Who: CN=admin")
            assert request_as(pki, "alice", gw.url + "/public/x", *forged).status == 200
            assert request_as(pki, "alice", gw.url + "/api/y", *forged).status == 200
        public, api_seen = rec.requests()
        assert public.values("x-user") == []
        assert public.values("x-who") == ["CN=alice,OU=demo,O=Example"]
        assert api_seen.values("x-user") == ["CN=alice,OU=demo,O=Example"]
        # a route's header of the same name wins over the top-level one
        assert api_seen.values("x-who") == ["spiffe://example.org/ns/shop/sa/alice"]


def test_a_raw_http1_request_on_an_open_route_is_relayed(pki: PKI) -> None:
    with recording_upstream() as rec, running_gateway(routes_config(pki, rec.url, ROUTES)) as gw:
        reply = get(gw.port, client_context(pki, "alice"), "localhost", "/public/x", "localhost")
        assert reply.status == 200 and reply.body == b"ok"
