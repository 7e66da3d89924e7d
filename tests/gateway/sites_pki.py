"""Helpers for the route, optional-auth and SNI tests: a second site's PKI, clients, metrics."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset, TrailersReceived
from prometheus_client.parser import text_string_to_metric_families

from mtlskit.config import GatewayConfig
from mtlskit.pki import CertificateAuthority
from tests.gateway.harness import PKI, H2Response, Running, config_for, running_gateway
from tests.gateway.recorder import Recorder, recording_upstream
from tests.integration.peers import curl, openssl

GET = "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n"


# -- certificates ----------------------------------------------------------------------------
@dataclass
class Site:
    """A second site: its own CA (root and intermediate), server certificates and a client."""

    root: Path  # the client CA of the site, and the anchor its server chain leads to
    intermediate: Path  # the CA that issued its leaves
    cert: Path  # server chain for b.test and *.b.test
    key: Path
    new_cert: Path  # another chain for the same names (a reload swaps it in)
    new_key: Path
    client: Path  # bob's chain (leaf + intermediate), CN=bob OU=b
    client_key: Path
    revoked: Path  # eve's chain (CN=eve OU=b), revoked in `crl`
    revoked_key: Path
    crl: Path  # signed by the intermediate: use it with `clients_ca`
    clients_ca: Path  # root + intermediate (a CRL's issuer must be a known CA)


def make_site(base: Path) -> Site:
    """The PKI of site B: "Site B Root CA", b.test / *.b.test, clients bob and eve (revoked)."""
    out = base / "certs"
    out.mkdir(parents=True)
    with CertificateAuthority.create(base / "ca", name="Site B Root CA") as ca:
        ca.issue_server("b.test", ["b.test", "*.b.test"]).write(out, "b")
        ca.issue_server("b.test", ["b.test", "*.b.test"]).write(out, "b-new")
        ca.issue_client("bob", ["bob.b.test"], unit="b").write(out, "bob")
        gone = ca.issue_client("eve", ["eve.b.test"], unit="b")
        gone.write(out, "eve")
        ca.revoke(gone.certificate.serial_number, "keyCompromise")
        (out / "b-crl.pem").write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
        (out / "b-clients-ca.pem").write_bytes(ca.root_pem() + ca.chain_pem())
    return Site(
        root=base / "ca" / "root.crt",
        intermediate=base / "ca" / "intermediate.crt",
        cert=out / "b.chain.pem",
        key=out / "b.key",
        new_cert=out / "b-new.chain.pem",
        new_key=out / "b-new.key",
        client=out / "bob.chain.pem",
        client_key=out / "bob.key",
        revoked=out / "eve.chain.pem",
        revoked_key=out / "eve.key",
        crl=out / "b-crl.pem",
        clients_ca=out / "b-clients-ca.pem",
    )


def add_client(pki: PKI, name: str, cn: str, **options: Any) -> None:
    """Issue one more client of the test PKI's CA as pki[f"{name}.chain.pem"] and .key."""
    out = pki.root / "extra"
    out.mkdir(exist_ok=True)
    with CertificateAuthority.load(pki.ca_dir) as ca:
        ca.issue_client(cn, [f"{name}.example.org"], **options).write(out, name)
    for suffix in ("chain.pem", "key", "crt"):
        pki.files[f"{name}.{suffix}"] = out / f"{name}.{suffix}"


# -- configs ---------------------------------------------------------------------------------
def routes_config(
    pki: PKI,
    upstream: str,
    routes: list[dict[str, Any]],
    policy: dict[str, Any] | None = None,
    **overrides: Any,
) -> GatewayConfig:
    """The test PKI's server (localhost) with these [[route]]s and [policy] (empty: none)."""
    certs = (pki["server.chain.pem"], pki["server.key"], pki["root.crt"])
    return config_for(*certs, upstream, policy or {}, route=routes, **overrides)


def site_server(site: Site, upstream: str, **keys: Any) -> dict[str, Any]:
    """A [[server]] table for site B (b.test, *.b.test), admitting bob unless keys say else."""
    table: dict[str, Any] = {
        "server_names": ["b.test", "*.b.test"],
        "cert": str(site.cert),
        "key": str(site.key),
        "client_ca": str(site.root),
        "upstream": upstream,
    }
    if "route" not in keys:
        table["policy"] = {"allow_cn": ["bob"]}
    return {**table, **keys}


def two_sites(
    pki: PKI, site: Site, up_a: str, up_b: str, server: dict[str, Any] | None = None, **top: Any
) -> GatewayConfig:
    """Site A at the top level (admits ou=demo), site B as the one [[server]]."""
    certs = (pki["server.chain.pem"], pki["server.key"], pki["root.crt"])
    table = site_server(site, up_b, **(server or {}))
    return config_for(*certs, up_a, {"allow_ou": ["demo"]}, server=[table], **top)


@contextmanager
def sites(
    pki: PKI, site: Site, server: dict[str, Any] | None = None, **top: Any
) -> Iterator[tuple[Running, Recorder, Recorder]]:
    """The gateway with sites A and B, and each site's recording workload."""
    with recording_upstream() as rec_a, recording_upstream() as rec_b:
        config = two_sites(pki, site, rec_a.url, rec_b.url, server, **top)
        with running_gateway(config) as gw:
            yield gw, rec_a, rec_b


def as_bob(site: Site, gw: Running, host: str, path: str, *extra: str) -> Reply:
    """curl as bob (site B's client) to https://HOST:PORT/PATH, HOST resolved to 127.0.0.1."""
    return curl_reply(
        *("--cacert", str(site.root), "--cert", str(site.client), "--key", str(site.client_key)),
        *("--resolve", f"{host}:{gw.port}:127.0.0.1", *extra),
        f"https://{host}:{gw.port}{path}",
    )


def ca_names(out: str) -> list[str]:
    """The CA names s_client printed under "Acceptable client certificate CA names"."""
    _, found, rest = out.partition("Acceptable client certificate CA names\n")
    assert found, out
    return list(takewhile(lambda line: line.startswith("CN="), rest.splitlines()))


# -- answers ---------------------------------------------------------------------------------
@dataclass
class Reply:
    """One HTTP answer as a client saw it (lower-case header names)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: str = ""
    closed: bool = True  # h1(): the gateway closed the connection after the answer

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def parse_head(data: bytes) -> Reply:
    """A status line, fields and body (curl -i output or raw HTTP/1.1 bytes)."""
    head, _, body = data.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return Reply(0, body=data, raw=data.decode("latin-1"))
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    return Reply(int(parts[1]), fields, body, data.decode("latin-1"))


def curl_reply(*args: str | Path) -> Reply:
    """curl -i ARGS: the answer, or status 0 with curl's error in `raw`."""
    done = curl("-i", *args)
    if done.returncode != 0 and not done.stdout:
        return Reply(0, raw=f"curl exit {done.returncode}: {done.stderr}")
    reply = parse_head(done.stdout.encode("latin-1", "replace"))
    reply.raw += done.stderr
    return reply


def request_as(pki: PKI, name: str | None, url: str, *extra: str | Path) -> Reply:
    """curl trusting the test root, as NAME (or without a certificate)."""
    args: list[str | Path] = ["--cacert", pki["root.crt"]]
    if name is not None:
        args += ["--cert", pki[f"{name}.chain.pem"], "--key", pki[f"{name}.key"]]
    return curl_reply(*args, *extra, url)


def context(
    anchor: Path, chain: Path | None = None, key: Path | None = None, *, check: bool = True
) -> ssl.SSLContext:
    """A client context trusting `anchor`, presenting chain/key when given."""
    ctx = ssl.create_default_context(cafile=str(anchor))
    ctx.check_hostname = check
    if chain is not None and key is not None:
        ctx.load_cert_chain(chain, key)
    return ctx


def h1(port: int, ctx: ssl.SSLContext, sni: str | None, request: bytes) -> Reply:
    """Send one raw HTTP/1.1 request over TLS (SNI `sni`, None: none) and read to EOF.

    `closed` says whether the gateway closed the connection (EOF within 5 s of the last
    byte); a TLS alert after the handshake gives status 0 and the alert in `raw`.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            tls.sendall(request)
            tls.settimeout(5)
            data, closed = b"", False
            while True:
                try:
                    chunk = tls.recv(65536)
                except TimeoutError:
                    break
                except ssl.SSLError as exc:  # e.g. a TLS 1.3 alert after the handshake
                    return Reply(0, raw=f"{data!r} then {exc}")
                if not chunk:
                    closed = True
                    break
                data += chunk
    reply = parse_head(data)
    reply.closed = closed
    return reply


def get(
    port: int, ctx: ssl.SSLContext, sni: str | None, path: str, host: str, extra: str = ""
) -> Reply:
    """h1() with a GET for `path` naming `host`."""
    return h1(port, ctx, sni, GET.format(path=path, host=host, extra=extra).encode())


def h2_exchange(
    port: int,
    ctx: ssl.SSLContext,
    sni: str | None,
    requests: Iterable[tuple[str | None, str, list[tuple[str, str]]]],
    *,
    validate: bool = True,
) -> list[H2Response]:
    """Send (authority, path, headers) GETs one after another on one HTTP/2 connection.

    A stream the gateway answered by closing the connection has `reset` -1.

    validate=False lets h2 send what it would refuse (a Host that is not :authority).
    """
    ctx.set_alpn_protocols(["h2"])
    out: list[H2Response] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            assert tls.selected_alpn_protocol() == "h2"
            config = H2Configuration(
                client_side=True, header_encoding="utf-8", validate_outbound_headers=validate
            )
            conn = H2Connection(config)
            conn.initiate_connection()
            tls.sendall(conn.data_to_send())
            for authority, path, headers in requests:
                sid = conn.get_next_available_stream_id()
                fields = [(":method", "GET"), (":scheme", "https")]
                if authority is not None:  # None: no :authority (a Host field may say it)
                    fields.append((":authority", authority))
                conn.send_headers(sid, [*fields, (":path", path), *headers], end_stream=True)
                tls.sendall(conn.data_to_send())
                out.append(_h2_wait(tls, conn, sid))
    return out


def _h2_wait(tls: ssl.SSLSocket, conn: H2Connection, sid: int) -> H2Response:
    resp = H2Response()
    deadline = time.monotonic() + 10
    while not (resp.ended or resp.reset is not None):
        assert time.monotonic() < deadline, f"stream {sid} did not end: {resp}"
        data = tls.recv(65536)
        if not data:  # the gateway closed the connection (after a GOAWAY): say so
            resp.reset = -1
            return resp
        for event in conn.receive_data(data):
            if getattr(event, "stream_id", None) != sid:
                continue
            if isinstance(event, ResponseReceived | TrailersReceived):
                into = resp.headers if isinstance(event, ResponseReceived) else resp.trailers
                into.update((str(k), str(v)) for k, v in event.headers or ())
            elif isinstance(event, DataReceived):
                resp.body += event.data or b""
                conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
            elif isinstance(event, StreamEnded):
                resp.ended = True
            elif isinstance(event, StreamReset):
                resp.reset = event.error_code
        pending = conn.data_to_send()
        if pending:
            tls.sendall(pending)
    return resp


def s_client(port: int, servername: str | None, *args: str | Path, stdin: str = "") -> str:
    """openssl s_client to the gateway (`-servername`, or `-noservername` for None): output."""
    sni = ["-noservername"] if servername is None else ["-servername", servername]
    done = openssl("s_client", "-connect", f"127.0.0.1:{port}", *sni, *args, stdin=stdin)
    return (done.stdout + done.stderr).replace(" = ", "=")


def served_der(port: int, anchor: Path, sni: str | None) -> bytes:
    """The DER of the leaf the gateway serves for `sni` (no client certificate)."""
    ctx = context(anchor, check=False)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_der(path: Path) -> bytes:
    """The DER of the first certificate of a PEM file."""
    first = path.read_text().split("-----END CERTIFICATE-----")[0]
    return ssl.PEM_cert_to_DER_cert(first + "-----END CERTIFICATE-----\n")


# -- metrics ---------------------------------------------------------------------------------
def metric(gw: Running, sample: str, **labels: str) -> float:
    """Sum of the samples named `sample` whose labels include `labels` (0 when none)."""
    text = gw.gateway.metrics.render().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def route_count(gw: Running, **labels: str) -> float:
    """mtlskit_route_requests_total for these labels (server, route, result)."""
    return metric(gw, "mtlskit_route_requests_total", **labels)


def wait_route_count(gw: Running, want: float, **labels: str) -> None:
    """Wait until the route counter reaches `want` (counts land just after the answer)."""
    try:
        gw.wait_until(lambda: route_count(gw, **labels) >= want, timeout=3)
    except AssertionError:
        text = gw.gateway.metrics.render().decode()
        lines = [x for x in text.splitlines() if x.startswith("mtlskit_route_requests_total")]
        got = "\n".join(lines) or "(no mtlskit_route_requests_total samples)"
        raise AssertionError(f"mtlskit_route_requests_total{labels} < {want}:\n{got}") from None
