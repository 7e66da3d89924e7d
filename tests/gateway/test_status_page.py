"""The status page and /status.json: real clients call the gateway, curl/httpx read the page."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html import escape as html_escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.cli import main
from mtlskit.config import GatewayConfig
from mtlskit.demo.echo import EchoServer
from mtlskit.errors import ConfigError
from mtlskit.gateway.recent import Recent
from mtlskit.gateway.status import StatusServer
from mtlskit.identity import PeerIdentity
from mtlskit.pki import CertificateAuthority
from tests.gateway.harness import (
    PKI,
    Running,
    config_for,
    curl_as,
    gateway_argv,
    gateway_config,
    running_gateway,
)
from tests.integration.peers import curl
from tests.opensslpki import Made, OpenSSLPKI

# Attacker-chosen subject fields: the page must show them as text, never as markup.
EVIL_CN = '<script>alert("cn")</script>'
EVIL_OU = "<script>ou&"
ANY = "0.0.0.0"  # noqa: S104 - the listener off loopback that [status_tls] protects
VOID = {"meta", "br", "link", "img", "input", "hr", "path", "rect"}


class _Checker(HTMLParser):
    """Checks that every element is closed in order, and keeps the text and meta tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.metas: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "meta":
            self.metas.append(dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Checker:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.stack == [], f"unclosed: {checker.stack}"
    return checker


def _evil_client(base: Path, name: str, issuer: Made) -> Made:
    """A client leaf signed by `issuer` whose CN and OU hold markup (made with openssl)."""
    cert, key, csr, ext = (base / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://example.org/evil\n"
    )
    subj = f"/CN={EVIL_CN.replace('/', chr(92) + '/')}/OU={EVIL_OU}"
    run = ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        [*run, "-nodes", "-keyout", key, "-out", csr, "-subj", subj],
        check=True,
        capture_output=True,
    )
    sign: list[str | Path] = ["openssl", "x509", "-req", "-in", csr, "-CA", issuer.cert]
    sign += ["-CAkey", issuer.key]
    subprocess.run(
        [*sign, "-out", cert, "-days", "20", "-extfile", ext, "-set_serial", "4242"],
        check=True,
        capture_output=True,
    )
    return Made(name, cert, key)


@contextmanager
def status_of(gw: Running, host: str = "127.0.0.1") -> Iterator[tuple[StatusServer, str]]:
    """The gateway's status listener (as `mtlskit gateway --status` makes it), stopped after."""
    server = StatusServer.for_gateway(gw.gateway)
    started = asyncio.run_coroutine_threadsafe(server.start(host, 0), gw.loop)
    _, port = started.result(5)
    try:
        yield server, f"{server.scheme}://localhost:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), gw.loop).result(5)


def test_the_page_shows_certificates_policy_counters_clients_and_refusals(
    pki: PKI, echo: EchoServer
) -> None:
    with running_gateway(gateway_config(pki, echo.url)) as gw, status_of(gw) as (_, base):
        assert curl_as(pki, "alice", gw.url + "/hello").returncode == 0
        assert curl_as(pki, "alice", gw.url + "/again").returncode == 0
        assert (
            "403"
            in curl_as(pki, "carol", gw.url + "/", "-o", "/dev/null", "-w", "%{http_code}").stdout
        )
        assert curl_as(pki, "intruder", gw.url + "/").returncode != 0  # another CA: handshake
        assert curl_as(pki, None, gw.url + "/").returncode != 0  # no certificate
        gw.wait_until(lambda: len(gw.gateway.metrics.recent.refusals()) >= 3)

        page = httpx.get(base + "/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        checker = parse(page.text)
        assert {"http-equiv": "refresh", "content": "10"} in checker.metas
        assert "script" not in checker.tags and "link" not in checker.tags  # no external assets
        assert checker.tags.count("rect") >= 3  # root (not sent) -> intermediate -> leaf
        text = " ".join(checker.text)
        for needle in ("Recent clients", "Recent refusals", "Handshakes by result", "CN=alice"):
            assert needle in text, needle
        assert "spiffe://example.org/ns/shop/sa/alice" in text

        doc = httpx.get(base + "/status.json").json()
        keys = "version generated_at ready listen mode servers counters recent_scope"
        assert set(doc) == {*keys.split(), "recent_clients", "recent_refusals"}  # stable
        assert doc["ready"] is True and doc["listen"] == f"127.0.0.1:{gw.port}"
        server = doc["servers"][0]
        assert server["name"] == "default"
        leaf, intermediate = server["chain"]
        assert leaf["subject"] == "CN=localhost" and 0 < leaf["days_left"] <= 400
        assert intermediate["ca"] is True and leaf["issuer"] == intermediate["subject"]
        assert server["client_cas"][0]["self_signed"] is True
        assert [r["rules"] for r in server["policy"]["routes"]] == [["ou=demo"]]
        counters = doc["counters"]
        assert counters["handshakes"]["ok"] >= 3 and counters["handshakes"]["unknown_issuer"] == 1
        assert counters["requests"]["200"] == 2 and counters["requests"]["403"] == 1
        alice = next(c for c in doc["recent_clients"] if "CN=alice" in c["subject"])
        assert alice["spiffe_id"] == "spiffe://example.org/ns/shop/sa/alice"
        assert alice["requests"] == 2 and alice["connections"] == 2 and alice["days_left"] > 0
        codes = {r["code"]: r for r in doc["recent_refusals"]}
        # The intruder's chain: its intermediate is the certificate no client CA issued.
        other = codes["unknown_issuer"]
        assert other["subject"] == "CN=Other Intermediate CA" and "--client-ca" in other["fix"]
        assert other["step"].startswith("step 7") and other["client"].startswith("127.0.0.1:")
        assert "no_client_certificate" in codes
        denied = next(r for r in doc["recent_refusals"] if "CN=carol" in r["subject"])
        assert "allow rules" in denied["step"]


def test_attacker_chosen_subjects_are_escaped(pki: PKI, echo: EchoServer, tmp_path: Path) -> None:
    ossl = OpenSSLPKI(tmp_path / "ossl")
    trusted, untrusted = ossl.root("Evil Trusted Root"), ossl.root("Evil Untrusted Root")
    admitted = _evil_client(tmp_path, "evil-admitted", trusted)  # verifies; policy denies
    refused = _evil_client(tmp_path, "evil-refused", untrusted)  # handshake: unknown CA
    cas = tmp_path / "cas.pem"
    cas.write_text(Path(pki["root.crt"]).read_text() + trusted.cert.read_text())
    config = config_for(
        pki["server.chain.pem"], pki["server.key"], cas, echo.url, {"allow_ou": ["demo"]}
    )
    with running_gateway(config) as gw, status_of(gw) as (_, base):
        for made in (admitted, refused):
            curl("--cacert", pki["root.crt"], "--cert", made.cert, "--key", made.key, gw.url + "/")
        gw.wait_until(lambda: len(gw.gateway.metrics.recent.refusals()) >= 2)
        html = httpx.get(base + "/").text
        assert "<script" not in html
        # The subject as RFC 4514 writes it (\< \> \" escaped), then HTML-escaped.
        subject = admitted.x509.subject.rfc4514_string()
        assert "<script" in subject and html_escape(subject, quote=True) in html
        assert "&lt;script\\&gt;ou&amp;" in html
        assert subject in " ".join(parse(html).text)  # shown as text, exactly
        doc = httpx.get(base + "/status.json").json()
        assert [r["subject"] for r in doc["recent_refusals"]] == [subject, subject]
        assert [r["code"] for r in doc["recent_refusals"]] == ["unknown_issuer", "no_rule_matched"]
        assert [c["subject"] for c in doc["recent_clients"]] == [subject]


def _protected(pki: PKI, echo: EchoServer, **status_tls: Any) -> GatewayConfig:
    return gateway_config(
        pki,
        echo.url,
        status=f"{ANY}:0",
        status_tls={"client_ca": str(pki["root.crt"]), **status_tls},
    )


def test_a_status_listener_off_loopback_requires_an_allowed_client_certificate(
    pki: PKI, echo: EchoServer
) -> None:
    config = _protected(pki, echo, allow_cn=["alice"])
    with running_gateway(config) as gw, status_of(gw, ANY) as (server, base):
        assert server.scheme == "https"
        ok = curl_as(pki, "alice", base + "/status.json")
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["servers"][0]["name"] == "default"
        bare = curl_as(pki, None, base + "/healthz")
        assert bare.returncode != 0 and "ok" not in bare.stdout  # no certificate: no answer
        carol = curl_as(pki, "carol", base + "/", "-w", "%{http_code}")
        assert carol.stdout.endswith("403") and "Recent" not in carol.stdout
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP
            assert not raw.recv(100).startswith(b"HTTP/")  # a TLS alert or a close


def test_a_status_listener_off_loopback_without_a_client_ca_refuses_to_start(
    pki: PKI, echo: EchoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        gateway_config(pki, echo.url, status=f"{ANY}:0")
    with pytest.raises(ConfigError, match="no status allow rule"):
        _protected(pki, echo)
    assert gateway_config(pki, echo.url, status="[::1]:0").status == ("::1", 0)
    assert main([str(a) for a in gateway_argv(pki, "--status", ":0")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: status listener 0.0.0.0:0 (--status) is not a loopback address")
    assert "hint: listen on 127.0.0.1" in err and "--status-client-ca" in err
    assert "Traceback" not in err


def test_the_recent_record_is_bounded(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with CertificateAuthority.create(
        tmp_path / "ca", name="Recent Test CA", now=now - timedelta(days=1)
    ) as ca:
        seen = [
            PeerIdentity.from_der(
                ca.issue_client(
                    f"client{i}", [f"spiffe://example.org/c{i}"]
                ).certificate.public_bytes(Encoding.DER)
            )
            for i in range(5)
        ]
    recent = Recent(clients=3, refusals=2)
    for identity in seen:
        recent.connected(identity)
    recent.connected(seen[2])  # seen again: the most recent now
    recent.request(seen[4])
    recent.request(None)  # an anonymous caller: nothing to count
    assert [c.subject for c in recent.clients()] == [seen[i].subject for i in (2, 4, 3)]
    assert recent.clients()[0].connections == 2 and recent.clients()[1].requests == 1
    assert recent.clients()[0].spiffe_id == "spiffe://example.org/c2"
    for i in range(4):
        recent.refused(f"code{i}", "step", "CN=" + "x" * 10_000, "fix", "127.0.0.1")
    assert [r.code for r in recent.refusals()] == ["code3", "code2"]
    assert len(recent.refusals()[0].subject) == 1024


@pytest.mark.parametrize("workers", ["1", "2"])
def test_mtlskit_gateway_serves_the_page_on_its_status_port(
    pki: PKI, echo: EchoServer, workers: str
) -> None:
    """The real process (one, or a supervisor and two workers) wires the page up."""
    from tests.gateway.test_gateway_process import GatewayProcess, gateway_args

    args = gateway_args(pki, echo, "--workers", workers, "--status", "127.0.0.1:0")
    with GatewayProcess(*args) as gw:
        status = gw.wait_line(r"status on (http://[\d.:]+)/ \(status page").group(1)
        port = gw.wait_listening(int(workers))
        assert curl_as(pki, "alice", f"https://localhost:{port}/").returncode == 0
        page = httpx.get(status + "/")
        assert page.status_code == 200 and "content-security-policy" in page.headers
        parse(page.text)
        doc = httpx.get(status + "/status.json").json()
        assert doc["servers"][0]["chain"][0]["subject"] == "CN=localhost"
        assert doc["listen"] == f"127.0.0.1:{port}"
        if workers == "1":
            assert [c["subject"] for c in doc["recent_clients"]] == ["CN=alice,OU=demo,O=Example"]
        else:  # the supervisor sums the counters; the recent lists live in the workers
            assert doc["recent_clients"] == [] and "worker" in doc["recent_scope"]
            assert doc["counters"]["handshakes"]["ok"] == 1
