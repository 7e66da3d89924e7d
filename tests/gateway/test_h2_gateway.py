"""HTTP/2 clients through the gateway: curl, httpx, nghttp and a hand-driven h2 client.

Every test runs the real gateway on 127.0.0.1 with real TLS and a real workload (the echo
server, which answers with the headers it received), and asserts what the client got and
what the workload saw.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from mtlskit.demo.echo import EchoServer
from tests.gateway.harness import (
    PKI,
    H2Client,
    H2Response,
    Running,
    client_context,
    curl_as,
    gateway_config,
    running_gateway,
)
from tests.integration.peers import openssl


def _seen(answer: dict[str, Any]) -> dict[str, list[str]]:
    """The echo's view of the request headers: lowercase name -> values."""
    out: dict[str, list[str]] = {}
    for name, value in answer["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def _metrics_say(gw: Running, line: str) -> None:
    """Wait until /metrics has `line` (the count lands just after the client has its answer)."""
    gw.wait_until(lambda: line in gw.gateway.metrics.render().decode())


def test_curl_http2_carries_the_identity_and_the_clients_own_xfcc_is_removed(
    pki: PKI, echo: EchoServer
) -> None:
    config = gateway_config(pki, echo.url, identity_headers="xfcc,client-cert")
    with running_gateway(config) as gw:
        done = curl_as(
            pki,
            "alice",
            gw.url + "/who?x=1",
            "--http2",
            "-H",
            'x-forwarded-client-cert: By=spiffe://evil;Subject="CN=admin"',
            "-H",
            "Client-Cert: :ZXZpbA==:",
            "-w",
            "\n%{http_version}",
        )
        body, _, version = done.stdout.rpartition("\n")
        assert version == "2", done.stderr
        answer = json.loads(body)
        seen = _seen(answer)
        assert answer["path"] == "/who?x=1"
        assert answer["identity"]["subject"] == "CN=alice,OU=demo,O=Example"
        (xfcc,) = seen["x-forwarded-client-cert"]
        assert "evil" not in xfcc and 'Subject="CN=alice,OU=demo,O=Example"' in xfcc
        (cert,) = seen["client-cert"]
        assert cert != ":ZXZpbA==:"
        assert seen["host"] == [f"localhost:{gw.port}"]  # :authority became Host
        assert seen["x-forwarded-proto"] == ["https"]
        assert seen["x-forwarded-for"] == ["127.0.0.1"]
        line = gw.wait_for_log('"GET /who?x=1" 200')
        assert "CN=alice" in line


def test_prior_knowledge_over_tls_without_alpn_is_refused(pki: PKI, echo: EchoServer) -> None:
    """No ALPN means HTTP/1.1 (RFC 9113 3.2): the h2 preface is a malformed request, 400."""
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        done = curl_as(pki, "alice", gw.url + "/pk", "--http2-prior-knowledge", "--no-alpn", "-v")
        assert done.returncode == 52, done.stderr  # curl: "Empty reply", no HTTP/2 answer
        assert "ALPN" not in done.stderr  # nothing was offered, nothing selected
        line = gw.wait_for_log('"- -" 400')  # read as HTTP/1.1: "PRI * HTTP/2.0" is malformed
        assert "malformed request" in line
        assert not any("/pk" in line for line in gw.lines())  # never reached a stream
        # The same client with ALPN is served over h2.
        ok = curl_as(
            pki, "alice", gw.url + "/pk", "--http2", "-o", "/dev/null", "-w", "%{http_version}"
        )
        assert ok.stdout == "2"


def test_httpx_runs_many_concurrent_streams_on_one_connection(pki: PKI, echo: EchoServer) -> None:
    async def fetch_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(http2=True, verify=client_context(pki)) as client:
            first = await client.get(gw.url + "/warm")  # one connection, then 40 streams on it
            rest = await asyncio.gather(*(client.get(f"{gw.url}/n/{i}") for i in range(40)))
            return [first, *rest]

    with running_gateway(gateway_config(pki, echo.url)) as gw:
        answers = asyncio.run(fetch_all())
        assert {r.http_version for r in answers} == {"HTTP/2"}
        assert [r.status_code for r in answers] == [200] * 41
        paths = sorted(r.json()["path"] for r in answers[1:])
        assert paths == sorted(f"/n/{i}" for i in range(40))
        assert all(r.json()["identity"]["subject"].startswith("CN=alice") for r in answers)
        gw.wait_until(lambda: len(gw.lines()) >= 42)  # one access line per stream
        _metrics_say(gw, "mtlskit_connections_total 1.0")
        _metrics_say(gw, 'mtlskit_requests_by_protocol_total{protocol="h2"} 41.0')


def test_a_refused_identity_gets_403_on_each_stream(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        client = H2Client(gw.port, client_context(pki, "carol"))
        try:
            sids = [client.request(f"/no/{i}") for i in range(3)]
            answers = client.wait(*sids)
        finally:
            client.close()
        assert [a.status for a in answers] == [403, 403, 403]
        assert all(json.loads(a.body)["error"] == "forbidden" for a in answers)  # the JSON page
        assert client.goaway is None
        gw.wait_until(lambda: sum("deny(no_rule_matched)" in x for x in gw.lines()) == 3)


def test_grpc_calls_get_grpc_statuses_not_hangs(pki: PKI, echo: EchoServer) -> None:
    grpc = [("content-type", "application/grpc"), ("te", "trailers")]
    message = b"\x00\x00\x00\x00\x00"  # one empty length-prefixed message
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        for name, status, says in (("alice", "14", "h2c://"), ("carol", "7", "no allow rule")):
            client = H2Client(gw.port, client_context(pki, name))
            try:
                sid = client.request("/pkg.Svc/Call", "POST", grpc, message)
                (answer,) = client.wait(sid)
            finally:
                client.close()
            fields = answer.headers | answer.trailers  # a trailers-only response
            assert answer.status == 200 and fields["grpc-status"] == status, fields
            assert says in fields["grpc-message"], fields
        assert not any("pkg.Svc" in line and "200" not in line for line in gw.lines())


def test_http11_and_h2_clients_share_one_listener(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2"), ("--http1.1", "1.1")):
            done = curl_as(pki, "alice", gw.url + "/mixed", flag, "-w", "\n%{http_version}")
            body, _, seen = done.stdout.rpartition("\n")
            assert seen == version, done.stderr
            assert json.loads(body)["identity"]["subject"].startswith("CN=alice")
        _metrics_say(gw, 'mtlskit_requests_by_protocol_total{protocol="http/1.1"} 2.0')
        _metrics_say(gw, 'mtlskit_requests_by_protocol_total{protocol="h2"} 1.0')


def test_nghttp_with_a_client_certificate(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        argv = ["nghttp", "-v", "--cert", str(pki["alice.chain.pem"])]
        argv += ["--key", str(pki["alice.key"]), gw.url + "/ng"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        assert done.returncode == 0, done.stderr
        assert ":status: 200" in done.stdout
        assert "CN=alice,OU=demo,O=Example" in done.stdout  # the echo's body


def test_pseudo_headers_are_checked(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        client = H2Client(gw.port, client_context(pki))
        try:
            connect = client.h2.get_next_available_stream_id()
            client.h2.send_headers(
                connect, [(":method", "CONNECT"), (":authority", "db:5432")], end_stream=True
            )
            client.responses[connect] = H2Response()
            head = client.request("/b", "HEAD")
            answers = client.wait(connect, head)
        finally:
            client.close()
        assert [a.status for a in answers] == [405, 200]
        assert answers[1].body == b"" and int(answers[1].headers["content-length"]) > 0
        assert client.goaway is None
        # Host differing from :authority (RFC 9113 8.3.1): h2 refuses the whole connection.
        client = H2Client(gw.port, client_context(pki), validate=False)
        try:
            sid = client.request("/a", headers=[("host", "elsewhere.example")])
            client.pump(lambda: client.goaway is not None)
        finally:
            client.close()
        assert client.goaway is not None and client.goaway.error_code == 1  # PROTOCOL_ERROR
        assert client.responses[sid].status == 0
        gw.wait_for_log("h2_goaway")
        assert not any('"GET /a"' in line for line in gw.lines())


def test_gateway_answers_on_a_stream_have_their_body(pki: PKI, echo: EchoServer) -> None:
    """The 502 of an unreachable workload and the 431 of a too large head, over HTTP/2."""
    from tests.integration.peers import free_port

    with running_gateway(gateway_config(pki, f"http://127.0.0.1:{free_port()}")) as gw:
        done = curl_as(pki, "alice", gw.url + "/down", "--http2", "-w", "\n%{http_code}")
        assert done.stdout.endswith("\n502") and "not reachable" in done.stdout, done.stderr
    config = gateway_config(pki, echo.url, limits={"max_header_bytes": 4096})
    with running_gateway(config) as gw:
        big = "x-big: " + "b" * 5000
        done = curl_as(pki, "alice", gw.url + "/big", "--http2", "-H", big, "-w", "\n%{http_code}")
        assert done.stdout.endswith("\n431"), (done.stdout, done.stderr)
        ok = curl_as(pki, "alice", gw.url + "/small", "--http2", "-w", "\n%{http_code}")
        assert ok.stdout.endswith("\n200")


def _alpn(port: int, pki: PKI, offer: str) -> str:
    alice: list[str | Path] = [
        "-cert",
        pki["alice.chain.pem"],
        "-key",
        pki["alice.key"],
        "-CAfile",
        pki["root.crt"],
    ]
    done = openssl("s_client", "-connect", f"127.0.0.1:{port}", *alice, "-alpn", offer)
    return next(x for x in done.stdout.splitlines() if "ALPN" in x)


def test_alpn_offers_h2_first_and_can_turn_it_off(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        assert _alpn(gw.port, pki, "http/1.1,h2") == "ALPN protocol: h2"  # ours first
        assert _alpn(gw.port, pki, "http/1.1") == "ALPN protocol: http/1.1"
        assert _alpn(gw.port, pki, "spdy/3") == "No ALPN negotiated"  # no overlap: HTTP/1.1
    config = gateway_config(pki, echo.url, tls={"alpn": ["http/1.1"]})
    with running_gateway(config) as gw:
        assert _alpn(gw.port, pki, "h2,http/1.1") == "ALPN protocol: http/1.1"
        done = curl_as(
            pki, "alice", gw.url + "/x", "--http2", "-o", "/dev/null", "-w", "%{http_version}"
        )
        assert done.stdout == "1.1"


def test_a_reload_keeps_open_h2_connections_and_new_ones_get_the_new_certificate(
    pki: PKI, echo: EchoServer, tmp_path: Path
) -> None:
    from tests.gateway.test_gateway_ops import _der, _served_cert

    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki["server.chain.pem"], cert)
    shutil.copy(pki["server.key"], key)
    config = gateway_config(
        pki, echo.url, reload_interval="100ms", tls={"cert": str(cert), "key": str(key)}
    )
    with (
        running_gateway(config) as gw,
        httpx.Client(http2=True, verify=client_context(pki, "alice"), base_url=gw.url) as client,
    ):
        before = client.get("/before")
        assert (before.http_version, before.status_code) == ("HTTP/2", 200)
        shutil.copy(pki["server2.key"], key)
        shutil.copy(pki["server2.chain.pem"], cert)
        gw.wait_for_log("reloaded")
        during = client.get("/during")  # the same HTTP/2 connection, still served
        assert (during.http_version, during.status_code) == ("HTTP/2", 200)
        assert _seen(during.json())["x-forwarded-client-cert"]  # identity on every stream
        assert _served_cert(gw.port, pki) == _der(pki["server2.crt"])


def test_the_access_line_names_the_protocol_of_each_request(pki: PKI, echo: EchoServer) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw:
        for version in ("--http1.1", "--http2"):
            done = curl_as(pki, "alice", gw.url + f"/p{version[6:]}", version)
            assert done.returncode == 0, done.stderr
        assert "proto=HTTP/1.1" in gw.wait_for_log('"GET /p1.1" 200')
        assert "proto=HTTP/2" in gw.wait_for_log('"GET /p2" 200')
