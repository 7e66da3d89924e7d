"""CRLs fetched from URLs: refreshed, the last good kept, stale ones explained (real peers)."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtlskit.demo.echo import EchoServer
from mtlskit.errors import ConfigError
from mtlskit.gateway.crlfetch import cdp_urls
from mtlskit.pki import CertificateAuthority
from tests.gateway.harness import PKI, config_for, gateway_argv, running_gateway
from tests.integration.peers import openssl

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


@dataclass
class CrlPKI:
    """A CA whose clients these tests revoke one by one, and its files."""

    ca: CertificateAuthority
    out: Path
    other: CertificateAuthority

    def client(self, name: str) -> tuple[Path, Path, int]:
        """Issue NAME (OU demo): its chain, its key and its serial."""
        issued = self.ca.issue_client(name, [f"{name}.example.org"], unit="demo")
        issued.write(self.out, name)
        return (
            self.out / f"{name}.chain.pem",
            self.out / f"{name}.key",
            (issued.certificate.serial_number),
        )

    def crl(self, *, valid: timedelta = timedelta(hours=1), at: datetime | None = None) -> bytes:
        return self.ca.crl(next_update=valid, now=at).public_bytes(DER)


@pytest.fixture(scope="module")
def crlpki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrlPKI]:
    base = Path(tmp_path_factory.mktemp("crlfetch"))
    out = base / "certs"
    out.mkdir()
    start = datetime.now(UTC) - timedelta(days=1)
    with (
        CertificateAuthority.create(base / "ca", name="CRL Fetch Root", now=start) as ca,
        CertificateAuthority.create(base / "other", name="CRL Fetch Root", now=start) as other,
    ):
        ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "server")
        (out / "clients-ca.pem").write_bytes(ca.root_pem() + ca.chain_pem())
        (out / "root.crt").write_bytes(ca.root_pem())
        yield CrlPKI(ca, out, other)


@dataclass
class CrlServer:
    """A plain HTTP server on 127.0.0.1 serving `body` at /crl (a real peer, in a thread)."""

    body: bytes = b""
    status: int = 200
    hits: list[str] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/crl"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@contextmanager
def crl_server(body: bytes) -> Iterator[CrlServer]:
    state = CrlServer(body)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/pkix-crl")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    state.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop()
        thread.join(5)


def _config(crlpki: CrlPKI, upstream: str, urls: list[str], **tls: Any) -> Any:
    out = crlpki.out
    return config_for(
        out / "server.chain.pem",
        out / "server.key",
        out / "clients-ca.pem",
        upstream,
        {"allow_ou": ["demo"]},
        tls={"crl_urls": urls, "crl_refresh": "1s", **tls},
    )


def _context(crlpki: CrlPKI, chain: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(crlpki.out / "root.crt"))
    ctx.load_cert_chain(chain, key)
    return ctx


def _get(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    """One keep-alive GET on an open connection: the status and the body."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head.split(b" ", 2)[1]), body


@contextmanager
def _connect(ctx: ssl.SSLContext, port: int) -> Iterator[ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        yield sock


def _s_client(crlpki: CrlPKI, port: int, chain: Path, key: Path) -> str:
    r = openssl(
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-cert",
        chain,
        "-key",
        key,
        "-CAfile",
        crlpki.out / "root.crt",
        "-ign_eof",  # read on: the TLS 1.3 alert follows the handshake
        stdin="GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    return r.stdout + r.stderr


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in:\n{text}")


def test_a_client_revoked_in_a_newer_crl_is_refused_after_the_refresh(
    crlpki: CrlPKI, echo: EchoServer
) -> None:
    dave_chain, dave_key, dave_serial = crlpki.client("dave")
    first = crlpki.ca.crl(next_update=timedelta(hours=1))
    with crl_server(first.public_bytes(DER)) as served:
        config = _config(crlpki, echo.url, [served.url])
        with running_gateway(config) as gw:
            gw.wait_for_log("crl_updated")  # fetched before the gateway listened
            with _connect(_context(crlpki, dave_chain, dave_key), gw.port) as before:
                assert _get(before)[0] == 200
                crlpki.ca.revoke(dave_serial, "keyCompromise")
                second = crlpki.ca.crl(next_update=timedelta(hours=2))
                number = second.extensions.get_extension_for_class(x509.CRLNumber).value
                served.body = second.public_bytes(PEM)  # PEM this time: both are read
                gw.wait_for_log(f"CRL {number.crl_number} of", timeout=10)
                gw.wait_for_log("reloaded", timeout=10)
                out = _s_client(crlpki, gw.port, dave_chain, dave_key)
                assert "alert certificate revoked" in out and "alert number 44" in out, out
                assert "code=revoked" in gw.wait_for_log("handshake_failed")
                # The connection opened before the new CRL keeps its state: not dropped.
                assert _get(before)[0] == 200
            metrics = gw.gateway.metrics.render().decode()
    issuer = crlpki.ca.intermediate.subject.rfc4514_string()
    assert second.next_update_utc is not None
    value = _metric(
        metrics, "mtlskit_crl_next_update_timestamp_seconds", issuer=issuer, source=served.url
    )
    assert value == second.next_update_utc.timestamp()


def test_the_last_good_crl_is_kept_when_the_server_fails_or_lies(
    crlpki: CrlPKI, echo: EchoServer
) -> None:
    erin_chain, erin_key, erin_serial = crlpki.client("erin")
    frank_chain, frank_key, _ = crlpki.client("frank")
    crlpki.ca.revoke(erin_serial)
    older = crlpki.crl()
    good = crlpki.crl()
    with crl_server(good) as served:
        with running_gateway(_config(crlpki, echo.url, [served.url])) as gw:
            gw.wait_for_log("crl_updated")
            # An older CRL (a stale mirror), then one signed by another CA with our name.
            served.body = older
            assert "is older than CRL" in gw.wait_for_log("crl_fetch_failed", timeout=10)
            served.body = crlpki.other.crl().public_bytes(DER)
            gw.wait_for_log("cannot be trusted", timeout=10)
            served.status, served.body = 404, b"gone"
            gw.wait_for_log("HTTP 404", timeout=10)
            served.stop()  # and then the server goes away altogether
            line = gw.wait_for_log("Connection refused", timeout=10)
            assert "keeping the last good CRL" in line
            out = _s_client(crlpki, gw.port, erin_chain, erin_key)
            assert "alert number 44" in out, out
            with _connect(_context(crlpki, frank_chain, frank_key), gw.port) as conn:
                assert _get(conn)[0] == 200
            assert not any("reloaded" in line for line in gw.lines())


def test_a_stale_crl_denies_and_says_it_is_the_servers_crl(
    crlpki: CrlPKI, echo: EchoServer
) -> None:
    gina_chain, gina_key, _ = crlpki.client("gina")
    past = datetime.now(UTC) - timedelta(hours=2)
    with crl_server(crlpki.crl(valid=timedelta(minutes=30), at=past)) as served:
        # Stale at start: the gateway starts anyway (deny meanwhile) and keeps fetching.
        with running_gateway(_config(crlpki, echo.url, [served.url])) as gw:
            stale = gw.wait_for_log("crl_stale")
            assert "ERROR" in stale and "refused until a fresh CRL comes" in stale
            with _connect(_context(crlpki, gina_chain, gina_key), gw.port) as conn:
                status, body = _get(conn)
            assert status == 403
            reason = json.loads(body)["reason"]
            assert "server's CRL for your CA is out of date" in reason
            assert "your client certificate is not at fault" in reason
            # A fresh CRL comes: admitted, on a new connection.
            served.body = crlpki.crl()
            gw.wait_for_log("reloaded", timeout=10)
            with _connect(_context(crlpki, gina_chain, gina_key), gw.port) as conn:
                assert _get(conn)[0] == 200


def test_crl_stale_allow_admits_and_warns_once(crlpki: CrlPKI, echo: EchoServer) -> None:
    hank_chain, hank_key, _ = crlpki.client("hank")
    past = datetime.now(UTC) - timedelta(hours=2)
    with crl_server(crlpki.crl(valid=timedelta(minutes=30), at=past)) as served:
        config = _config(crlpki, echo.url, [served.url], crl_stale="allow")
        with running_gateway(config) as gw:
            line = gw.wait_for_log("crl_stale")
            assert "WARNING" in line and "admitted without a current CRL" in line
            for _ in range(2):
                with _connect(_context(crlpki, hank_chain, hank_key), gw.port) as conn:
                    assert _get(conn)[0] == 200
            assert len([x for x in gw.lines() if "crl_stale" in x]) == 1


def test_an_unreachable_url_at_start_denies_until_its_crl_comes(
    crlpki: CrlPKI, echo: EchoServer
) -> None:
    ivy_chain, ivy_key, _ = crlpki.client("ivy")
    with crl_server(crlpki.crl()) as served:
        served.status, served.body = 503, b"not yet"
        with running_gateway(_config(crlpki, echo.url, [served.url])) as gw:
            assert "no CRL from it yet" in gw.wait_for_log("crl_fetch_failed")
            with _connect(_context(crlpki, ivy_chain, ivy_key), gw.port) as conn:
                status, body = _get(conn)
            assert status == 403
            assert "has not obtained the CRL" in json.loads(body)["reason"]
            served.status, served.body = 200, crlpki.crl()
            gw.wait_for_log("reloaded", timeout=10)
            with _connect(_context(crlpki, ivy_chain, ivy_key), gw.port) as conn:
                assert _get(conn)[0] == 200


def test_a_crl_near_its_next_update_is_warned_about_once(crlpki: CrlPKI, echo: EchoServer) -> None:
    # Valid for 1 h, 10 minutes left: under crl_warning (24 h) and under a quarter of its
    # validity. A fresh 1 h CRL (less than crl_warning too) is not warned about.
    near = crlpki.crl(valid=timedelta(hours=1), at=datetime.now(UTC) - timedelta(minutes=50))
    fresh = crlpki.crl(valid=timedelta(hours=1))
    with crl_server(near) as served:
        with running_gateway(_config(crlpki, echo.url, [served.url])) as gw:
            line = gw.wait_for_log("crl_expiring")
            assert "WARNING" in line and "no fresher one has come" in line and served.url in line
            served.body = fresh
            gw.wait_for_log("reloaded", timeout=10)
            hits = len(served.hits)  # two more rounds: each checks the CRLs after fetching
            gw.wait_until(lambda: len(served.hits) > hits + 1, timeout=10)
            assert len([x for x in gw.lines() if "crl_expiring" in x]) == 1


def test_a_url_that_is_not_http_is_a_config_error(crlpki: CrlPKI, echo: EchoServer) -> None:
    with pytest.raises(ConfigError, match="not an http:// or https:// URL"):
        with running_gateway(_config(crlpki, echo.url, ["file:///etc/passwd"])):
            pass


def test_the_cli_says_error_and_hint_for_a_url_that_is_not_http(run_cli: Any, pki: PKI) -> None:
    # Refused before anything listens (load_state checks it: a supervisor fails fast too).
    result = run_cli(*gateway_argv(pki, "--crl-url", "ftp://ca.example/crl"))
    assert result.code == 2, result.err
    assert result.err.startswith("error: tls.crl_urls: 'ftp://ca.example/crl' is not an http")
    assert "\nhint: " in result.err and "Traceback" not in result.err


def test_cdp_urls_reads_the_distribution_points() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CDP CA")])
    points = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                [
                    x509.UniformResourceIdentifier("ldap://ldap.example/cn=crl"),
                    x509.UniformResourceIdentifier("http://ca.example/crl"),
                ],
                None,
                None,
                None,
            )
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(points, critical=False)
        .sign(key, hashes.SHA256())
    )
    assert cdp_urls([cert]) == ["http://ca.example/crl"]


def test_a_stale_crl_file_at_start_is_no_longer_a_config_error(
    crlpki: CrlPKI, echo: EchoServer, tmp_path: Path
) -> None:
    """One CA's out-of-date CRL must not keep the gateway (and every other CA) down."""
    jill_chain, jill_key, _ = crlpki.client("jill")
    stale = tmp_path / "stale.crl"
    past = datetime.now(UTC) - timedelta(hours=2)
    stale.write_bytes(crlpki.crl(valid=timedelta(minutes=30), at=past))
    with running_gateway(_config(crlpki, echo.url, [], crl=[str(stale)])) as gw:
        line = gw.wait_for_log("crl_stale")
        assert str(stale) in line and "ERROR" in line
        with _connect(_context(crlpki, jill_chain, jill_key), gw.port) as conn:
            status, body = _get(conn)
        assert status == 403 and "server's CRL" in json.loads(body)["reason"]
        metrics = gw.gateway.metrics.render().decode()
    issuer = crlpki.ca.intermediate.subject.rfc4514_string()
    value = _metric(
        metrics, "mtlskit_crl_next_update_timestamp_seconds", issuer=issuer, source=str(stale)
    )
    assert value == (past + timedelta(minutes=30)).replace(microsecond=0).timestamp()


def test_crl_from_cdp_learns_the_url_from_the_leaves_the_ca_issued(
    tmp_path: Path, echo: EchoServer
) -> None:
    """`ca init --crl-url` puts the CDP in leaves; the gateway fetches it after the first one."""
    out = tmp_path / "certs"
    out.mkdir()
    with crl_server(b"") as served:
        with CertificateAuthority.create(tmp_path / "ca", crl_urls=[served.url]) as ca:
            ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "server")
            ca.issue_client("alice", ["alice.example.org"], unit="demo").write(out, "alice")
            mallory = ca.issue_client("mallory", ["mallory.example.org"], unit="demo")
            mallory.write(out, "mallory")
            ca.revoke(mallory.certificate.serial_number, "keyCompromise")
            served.body = ca.crl(next_update=timedelta(hours=1)).public_bytes(DER)
            (out / "root.crt").write_bytes(ca.root_pem())
            # the CRL's signer (the intermediate) must be in client_ca, as for CRL files
            (out / "clients-ca.pem").write_bytes(ca.root_pem() + ca.chain_pem())
        assert cdp_urls([mallory.certificate]) == [served.url]
        config = config_for(
            out / "server.chain.pem",
            out / "server.key",
            out / "clients-ca.pem",
            echo.url,
            {"allow_ou": ["demo"]},
            tls={"crl_from_cdp": True, "crl_refresh": "1s"},
        )
        pki = CrlPKI(ca, out, ca)
        with running_gateway(config) as gw:
            ctx = _context(pki, out / "alice.chain.pem", out / "alice.key")
            with _connect(ctx, gw.port) as sock:
                assert _get(sock)[0] == 200  # its CDP names the CRL: learned and fetched
            gw.wait_for_log("crl_source_learned")
            gw.wait_for_log("crl_updated")
            refused = _s_client(pki, gw.port, out / "mallory.chain.pem", out / "mallory.key")
            assert "alert number 44" in refused or "certificate revoked" in refused, refused
            assert served.hits, "the CRL was fetched from the URL in the leaves' CDP"
