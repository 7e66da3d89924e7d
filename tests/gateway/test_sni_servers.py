"""`[[server]]`s on one listener: SNI picks certificate, CA names and rules; 421; resumption.

Site A is the top-level keys (CN=localhost, the test PKI, admits ou=demo: alice); site B is
a [[server]] for b.test and *.b.test with its own CA (sites_pki.make_site, client bob). Each
site has its own recording workload, so a test can say which site a request reached.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway.harness import PKI, client_context, config_for, running_gateway
from tests.gateway.recorder import recording_upstream
from tests.gateway.sites_pki import (
    Site,
    as_bob,
    ca_names,
    context,
    curl_reply,
    get,
    h1,
    h2_exchange,
    make_site,
    metric,
    pem_der,
    s_client,
    served_der,
    site_server,
    sites,
    wait_route_count,
)

SITE_A = "CN=Gateway Test Root CA"
SITE_B = "CN=Site B Root CA"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(Path(tmp_path_factory.mktemp("siteb")))


@pytest.mark.parametrize(
    ("servername", "subject", "names"),
    [
        ("b.test", "CN=b.test", [SITE_B]),
        ("x.b.test", "CN=b.test", [SITE_B]),  # *.b.test
        ("B.Test", "CN=b.test", [SITE_B]),  # names are case-insensitive
        ("a.x.b.test", "CN=localhost", [SITE_A]),  # a wildcard is one label
        ("localhost", "CN=localhost", [SITE_A]),
        ("other.test", "CN=localhost", [SITE_A]),  # unknown: the top-level server
        (None, "CN=localhost", [SITE_A]),
    ],
)
def test_sni_picks_the_certificate_and_the_client_ca_names(
    pki: PKI, site: Site, servername: str | None, subject: str, names: list[str]
) -> None:
    with sites(pki, site) as (gw, _, _):
        out = s_client(gw.port, servername, "-ign_eof", stdin="")
        assert f"subject={subject}\n" in out, out
        # only that site's CA: its names must not leak the other site's clients' CA
        assert ca_names(out) == names, out


def test_each_site_admits_its_own_clients_and_its_workload_gets_only_its_requests(
    pki: PKI, site: Site
) -> None:
    with sites(pki, site) as (gw, rec_a, rec_b):
        assert as_bob(site, gw, "b.test", "/b1").status == 200
        assert as_bob(site, gw, "api.b.test", "/b2", "--http1.1").status == 200
        with httpx.Client(verify=client_context(pki, "alice"), base_url=gw.url) as client:
            assert client.get("/a1").status_code == 200
        assert [r.target for r in rec_a.requests()] == ["/a1"]
        assert [r.target for r in rec_b.requests()] == ["/b1", "/b2"]
        for request in rec_b.requests():
            (xfcc,) = request.values("x-forwarded-client-cert")
            assert "CN=bob" in xfcc
        wait_route_count(gw, 2, server="b.test", result="allowed")
        wait_route_count(gw, 1, server="default", result="allowed")


def test_a_client_of_one_sites_ca_is_refused_on_the_other(pki: PKI, site: Site) -> None:
    with sites(pki, site) as (gw, rec_a, rec_b):
        bob_on_a = curl_reply(
            *("--cacert", str(pki["root.crt"]), "--cert", str(site.client)),
            *("--key", str(site.client_key), gw.url + "/x"),
        )
        assert bob_on_a.status == 0, bob_on_a.raw
        alice_on_b = curl_reply(
            *("--cacert", str(site.root), "--cert", str(pki["alice.chain.pem"])),
            *("--key", str(pki["alice.key"]), "--resolve", f"b.test:{gw.port}:127.0.0.1"),
            f"https://b.test:{gw.port}/x",
        )
        assert alice_on_b.status == 0, alice_on_b.raw
        out = s_client(
            gw.port,
            "b.test",
            *("-cert", pki["alice.crt"], "-key", pki["alice.key"]),
            *("-cert_chain", pki["intermediate.crt"], "-ign_eof"),
            stdin="GET /x HTTP/1.1\r\nHost: b.test\r\n\r\n",
        )
        assert "alert unknown ca" in out, out
        assert rec_a.requests() == [] and rec_b.requests() == []


# (client, SNI, Host, status): a Host naming another site than the SNI's is 421.
MISDIRECTED = [
    ("alice", "localhost", "localhost", 200),
    ("alice", "localhost", "b.test", 421),
    ("alice", "localhost", "B.TEST:443", 421),
    ("alice", "localhost", "x.b.test", 421),
    ("alice", None, "b.test", 421),
    ("alice", None, "localhost", 200),
    ("alice", "localhost", "b.test.", 421),  # a trailing dot is the same name
    ("alice", "localhost", "127.0.0.1", 200),  # a name of no [[server]]: the SNI's site
    ("bob", "b.test", "b.test", 200),
    ("bob", "b.test", "x.b.test", 200),  # another name of the same server
    ("bob", "b.test", "b.test:1234", 200),  # the port is ignored
    ("bob", "x.b.test", "b.test", 200),
    ("bob", "b.test", "b.test.", 200),
    ("bob", "b.test", "localhost", 421),
    ("bob", "b.test", "other.test", 421),
]


@pytest.mark.parametrize(("who", "sni", "host", "status"), MISDIRECTED)
def test_a_host_that_names_another_site_than_the_sni_gets_421(
    pki: PKI, site: Site, who: str, sni: str | None, host: str, status: int
) -> None:
    if who == "alice":
        ctx = context(pki["root.crt"], pki["alice.chain.pem"], pki["alice.key"], check=False)
    else:
        ctx = context(site.root, site.client, site.client_key, check=False)
    with sites(pki, site) as (gw, rec_a, rec_b):
        reply = get(gw.port, ctx, sni, "/where", host)
        assert reply.status == status, reply.raw
        reached = rec_a.requests() + rec_b.requests()
        if status == 421:
            assert reached == [], "a misdirected request reached a workload"
            wait_route_count(gw, 1, result="misdirected")
        else:
            assert [r.target for r in (rec_a if who == "alice" else rec_b).requests()] == ["/where"]


def test_curl_changing_host_is_misdirected(pki: PKI, site: Site) -> None:
    with sites(pki, site) as (gw, rec_a, rec_b):
        for proto in ("--http1.1", "--http2"):
            reply = curl_reply(
                *("--cacert", str(pki["root.crt"]), "--cert", str(pki["alice.chain.pem"])),
                *("--key", str(pki["alice.key"]), proto, "-H", "Host: b.test"),
                gw.url + "/x",
            )
            assert reply.status == 421, (proto, reply.raw)
        assert rec_a.requests() == [] and rec_b.requests() == []


def test_an_absolute_form_target_naming_another_site_is_misdirected(pki: PKI, site: Site) -> None:
    # RFC 9112 3.2.2: with an absolute-form target the server ignores Host and uses the
    # target's authority, so the workload would take this for a request to b.test.
    alice = context(pki["root.crt"], pki["alice.chain.pem"], pki["alice.key"])
    with sites(pki, site) as (gw, rec_a, rec_b):
        request = b"GET https://b.test/abs HTTP/1.1\r\nHost: localhost\r\n\r\n"
        reply = h1(gw.port, alice, "localhost", request)
        reached = [(r.target, r.values("host")) for r in rec_a.requests() + rec_b.requests()]
        assert reply.status in (400, 421) and reached == [], (
            f"GATEWAY: an absolute-form target for b.test on SNI localhost got {reply.status} "
            f"and reached a workload as {reached}"
        )


@pytest.mark.parametrize(
    "hosts",
    [
        ["Host: localhost", "Host: b.test"],  # two Host fields: which one would the workload use?
        ["Host: x@b.test"],  # userinfo is not allowed in Host; URL parsers read b.test
        ["Host: localhost, b.test"],
    ],
    ids=["two-hosts", "userinfo", "list"],
)
def test_a_malformed_host_is_refused(pki: PKI, site: Site, hosts: list[str]) -> None:
    alice = context(pki["root.crt"], pki["alice.chain.pem"], pki["alice.key"])
    with sites(pki, site) as (gw, rec_a, rec_b):
        head = "\r\n".join(["GET /h HTTP/1.1", *hosts, "", ""]).encode()
        reply = h1(gw.port, alice, "localhost", head)
        reached = [r.values("host") for r in rec_a.requests() + rec_b.requests()]
        assert reply.status in (400, 421) and reached == [], (
            f"GATEWAY: {hosts} on SNI localhost got {reply.status}; the workload saw Host {reached}"
        )


def test_over_http2_a_host_field_that_disagrees_with_authority_is_not_forwarded(
    pki: PKI, site: Site
) -> None:
    alice = context(pki["root.crt"], pki["alice.chain.pem"], pki["alice.key"])
    with sites(pki, site) as (gw, rec_a, rec_b):
        (got,) = h2_exchange(
            gw.port, alice, "localhost", [("localhost", "/h", [("host", "b.test")])], validate=False
        )
        assert got.status in (0, 400, 421), got  # 0: the connection was closed instead
        # no :authority at all: the Host field names the site
        (got,) = h2_exchange(
            gw.port, alice, "localhost", [(None, "/n", [("host", "b.test")])], validate=False
        )
        assert got.status in (0, 400, 421), got
        assert rec_a.requests() == [] and rec_b.requests() == []


def test_over_http2_an_authority_with_userinfo_is_refused(pki: PKI, site: Site) -> None:
    # RFC 9113 8.3.1: :authority MUST NOT carry userinfo; URL parsers read this as b.test
    alice = context(pki["root.crt"], pki["alice.chain.pem"], pki["alice.key"])
    with sites(pki, site) as (gw, rec_a, rec_b):
        (got,) = h2_exchange(gw.port, alice, "localhost", [("x@b.test", "/u", [])], validate=False)
        reached = [r.values("host") for r in rec_a.requests() + rec_b.requests()]
        assert got.status in (0, 400, 421) and reached == [], (
            f"GATEWAY: :authority x@b.test on SNI localhost got {got.status}; the workload saw "
            f"Host {reached}"
        )


def test_over_http2_a_misdirected_authority_is_one_stream(pki: PKI, site: Site) -> None:
    alice = context(pki["root.crt"], pki["alice.chain.pem"], pki["alice.key"])
    bob = context(site.root, site.client, site.client_key)
    with sites(pki, site) as (gw, rec_a, rec_b):
        got = h2_exchange(
            gw.port, alice, "localhost", [("b.test", "/1", []), ("localhost", "/2", [])]
        )
        assert [r.status for r in got] == [421, 200], got
        got = h2_exchange(
            gw.port,
            bob,
            "b.test",
            [("x.b.test", "/3", []), ("localhost", "/4", []), ("b.test:8443", "/5", [])],
        )
        assert [r.status for r in got] == [200, 421, 200], got
        assert [r.target for r in rec_a.requests()] == ["/2"]
        assert [r.target for r in rec_b.requests()] == ["/3", "/5"]


def test_unknown_server_refuse_fails_the_handshake_and_logs_why(pki: PKI, site: Site) -> None:
    """No certificate is shown to a name no server lists (alert 40: see docs/gateway.md)."""
    with sites(pki, site, tls={"unknown_server": "refuse"}) as (gw, rec_a, rec_b):
        outs = {sn: s_client(gw.port, sn, "-ign_eof", stdin="") for sn in ("other.test", None)}
        outs["localhost"] = s_client(gw.port, "localhost", "-ign_eof", stdin="")
        for servername, out in outs.items():
            assert "subject=" not in out and "alert number 40" in out, f"{servername}:\n{out}"
        assert as_bob(site, gw, "b.test", "/ok").status == 200
        assert rec_a.requests() == [] and [r.target for r in rec_b.requests()] == ["/ok"]
        line = gw.wait_for_log("code=unknown_server_name")
        assert "other.test" in line or "localhost" in line or "no name" in line, line
        assert "step 1" in line and "fix=" in line, line


def _session(port: int, servername: str, who: list[str | Path], *more: str | Path) -> str:
    return s_client(
        port,
        servername,
        *who,
        *more,
        "-ign_eof",
        stdin=f"GET /s HTTP/1.1\r\nHost: {servername}\r\nConnection: close\r\n\r\n",
    )


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_a_session_from_one_site_is_not_resumed_under_the_others_sni(
    pki: PKI, site: Site, tmp_path: Path, version: str
) -> None:
    alice: list[str | Path] = ["-cert", pki["alice.crt"], "-key", pki["alice.key"]]
    alice += ["-cert_chain", pki["intermediate.crt"], version]
    bob: list[str | Path] = ["-cert", site.client, "-key", site.client_key]
    bob += ["-cert_chain", site.intermediate, version]
    sess = tmp_path / "a.sess"
    with sites(pki, site) as (gw, rec_a, rec_b):
        first = _session(gw.port, "localhost", alice, "-sess_out", sess)
        assert "New," in first and "HTTP/1.1 200" in first, first
        if version == "-tls1_2" and not sess.exists():
            return  # TLS 1.2 with resumption off: no session ID, no ticket, nothing to offer
        assert sess.stat().st_size > 0, "s_client kept no session to offer"
        # (with [[server]]s the gateway turns resumption off: a session is looked up before
        # SNI picks the server; without them the same s_client calls print "Reused,")
        # alice's session from site A offered to site B: a full handshake, which B's CA
        # refuses for alice's certificate
        stolen = _session(gw.port, "b.test", alice, "-sess_in", sess)
        assert "Reused," not in stolen, stolen
        # bob offering A's session (a client that picked up a ticket): a full handshake too
        bobs = _session(gw.port, "b.test", bob, "-sess_in", sess)
        assert "Reused," not in bobs and "HTTP/1.1 200" in bobs, bobs
        assert [r.target for r in rec_a.requests()] == ["/s"]
        (only,) = rec_b.requests()
        (xfcc,) = only.values("x-forwarded-client-cert")
        assert "CN=bob" in xfcc and "CN=alice" not in xfcc


def test_reloading_one_sites_certificate_leaves_the_other_and_its_connections(
    pki: PKI, site: Site, tmp_path: Path
) -> None:
    cert, key = tmp_path / "b.pem", tmp_path / "b.key"
    cert.write_bytes(site.cert.read_bytes())
    key.write_bytes(site.key.read_bytes())
    server = {"cert": str(cert), "key": str(key)}
    with sites(pki, site, server) as (gw, rec_a, _):
        a_before = served_der(gw.port, pki["root.crt"], "localhost")
        assert served_der(gw.port, site.root, "b.test") == pem_der(site.cert)
        with httpx.Client(verify=client_context(pki, "alice"), base_url=gw.url) as client:
            assert client.get("/before").status_code == 200
            handshakes = metric(gw, "mtlskit_handshakes_total", result="ok")
            key.write_bytes(site.new_key.read_bytes())
            cert.write_bytes(site.new_cert.read_bytes())
            assert gw.call(gw.gateway.reload, "test") is True
            assert client.get("/during").status_code == 200  # the open connection to A
            assert metric(gw, "mtlskit_handshakes_total", result="ok") == handshakes
        assert served_der(gw.port, site.root, "b.test") == pem_der(site.new_cert)
        assert served_der(gw.port, pki["root.crt"], "localhost") == a_before
        assert as_bob(site, gw, "b.test", "/after").status == 200
        assert [r.target for r in rec_a.requests()] == ["/before", "/during"]
        cert.write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")  # a broken file for B
        assert gw.call(gw.gateway.reload, "test") is False
        assert str(cert) in gw.wait_for_log("reload_failed")
        assert served_der(gw.port, site.root, "b.test") == pem_der(site.new_cert)  # kept
        assert served_der(gw.port, pki["root.crt"], "localhost") == a_before


def test_a_server_has_its_own_routes(pki: PKI, site: Site) -> None:
    routes = [
        {"path": "/admin/{**}", "allow_cn": ["root"]},
        {"path": "/{**}", "allow_cn": ["bob"], "name": "site-b"},
    ]
    with sites(pki, site, {"route": routes}) as (gw, rec_a, rec_b):
        denied = as_bob(site, gw, "b.test", "/admin/x")
        assert denied.status == 403 and denied.json()["route"] == "/admin/{**}", denied.raw
        assert as_bob(site, gw, "b.test", "/shop").status == 200
        # site A has no routes: its policy (ou=demo) admits alice on /admin
        with httpx.Client(verify=client_context(pki, "alice"), base_url=gw.url) as client:
            assert client.get("/admin/x").status_code == 200
        assert [r.target for r in rec_b.requests()] == ["/shop"]
        assert [r.target for r in rec_a.requests()] == ["/admin/x"]
        wait_route_count(gw, 1, server="b.test", route="/admin/{**}", result="denied")
        wait_route_count(gw, 1, server="b.test", route="site-b", result="allowed")


def test_a_server_has_its_own_crl_headers_and_name(pki: PKI, site: Site) -> None:
    server = {
        "name": "site-b",
        "crl": [str(site.crl)],
        "client_ca": str(site.clients_ca),
        "policy": {"allow_ou": ["b"]},
        "headers": {"X-B-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
    }
    with sites(pki, site, server) as (gw, rec_a, rec_b):
        assert as_bob(site, gw, "b.test", "/b").status == 200
        out = s_client(
            gw.port,
            "b.test",
            *("-cert", site.revoked, "-key", site.revoked_key, "-cert_chain", site.intermediate),
            "-ign_eof",
            stdin="GET /eve HTTP/1.1\r\nHost: b.test\r\n\r\n",
        )
        assert "alert certificate revoked" in out, out
        with httpx.Client(verify=client_context(pki, "alice"), base_url=gw.url) as client:
            assert client.get("/a", headers={"X-B-Subject": "CN=bob"}).status_code == 200
        (b,) = rec_b.requests()
        assert b.values("x-b-subject") == ["CN=bob,OU=b"]
        (a,) = rec_a.requests()
        assert "CN=bob" not in " ".join(a.values("x-b-subject"))
        wait_route_count(gw, 1, server="site-b", result="allowed")


def test_a_server_without_an_upstream_uses_the_top_level_one(pki: PKI, site: Site) -> None:
    with recording_upstream() as rec_a:
        table = site_server(site, rec_a.url)
        del table["upstream"]
        certs = (pki["server.chain.pem"], pki["server.key"], pki["root.crt"])
        config = config_for(*certs, rec_a.url, {"allow_ou": ["demo"]}, server=[table])
        with running_gateway(config) as gw:
            assert as_bob(site, gw, "b.test", "/from-b").status == 200
        (seen,) = rec_a.requests()
        assert seen.target == "/from-b" and "CN=bob" in seen.values("x-forwarded-client-cert")[0]


def test_a_server_can_make_certificates_optional_on_its_own(pki: PKI, site: Site) -> None:
    server = {
        "client_auth": "optional",
        "route": [
            {"path": "/open/{**}", "allow_anonymous": True},
            {"path": "/{**}", "allow_cn": ["bob"]},
        ],
    }
    with sites(pki, site, server) as (gw, rec_a, rec_b):
        resolve = ("--resolve", f"b.test:{gw.port}:127.0.0.1", "--cacert", str(site.root))
        assert curl_reply(*resolve, f"https://b.test:{gw.port}/open/1").status == 200
        assert curl_reply(*resolve, f"https://b.test:{gw.port}/closed").status == 401
        # site A still requires a certificate: no HTTP answer without one
        assert curl_reply("--cacert", str(pki["root.crt"]), gw.url + "/x").status == 0
        assert [r.target for r in rec_b.requests()] == ["/open/1"]
        assert rec_a.requests() == []
