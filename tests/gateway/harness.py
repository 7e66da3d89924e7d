"""Run the real gateway on 127.0.0.1:0 in a thread, and the PKI the gateway tests share."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)

from mtlskit.config import GatewayConfig, load_gateway_config
from mtlskit.gateway.embedded import EmbeddedGateway, embedded_gateway
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.server import Gateway
from mtlskit.pki import CertificateAuthority


@dataclass
class PKI:
    """Everything the gateway tests present or trust, written under `root`."""

    root: Path
    ca_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Path:
        return self.files[name]


def make_pki(base: Path) -> PKI:
    """Our CA (created 30 days ago), another CA, and the certificates tests need."""
    start = datetime.now(UTC) - timedelta(days=30)
    pki = PKI(base, base / "ca")
    out = base / "certs"
    out.mkdir(parents=True)
    with CertificateAuthority.create(pki.ca_dir, name="Gateway Test Root CA", now=start) as ca:
        ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "server")
        ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "server2")
        ca.issue_client(
            "alice", ["spiffe://example.org/ns/shop/sa/alice"], organization="Example", unit="demo"
        ).write(out, "alice")
        ca.issue_client("carol", ["carol.example.org"], unit="other").write(out, "carol")
        ca.issue_client(
            "old",
            ["old.example.org"],
            unit="demo",
            now=start + timedelta(days=1),
            validity=timedelta(days=2),
        ).write(out, "expired")
        ca.issue_server("imposter", ["imposter.example.org"]).write(out, "serveronly")
        revoked = ca.issue_client("mallory", ["mallory.example.org"], unit="demo")
        revoked.write(out, "revoked")
        ca.revoke(revoked.certificate.serial_number, "keyCompromise")
        from cryptography.hazmat.primitives import serialization

        (out / "crl.pem").write_bytes(ca.crl().public_bytes(serialization.Encoding.PEM))
        (out / "clients-ca.pem").write_bytes(ca.root_pem() + ca.chain_pem())
    with CertificateAuthority.create(base / "other", name="Other Root CA") as other:
        other.issue_client("intruder", ["intruder.example.org"], unit="demo").write(out, "intruder")
        other.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "otherserver")
    pki.files = {p.name: p for p in out.iterdir()}
    pki.files["root.crt"] = pki.ca_dir / "root.crt"
    pki.files["intermediate.crt"] = pki.ca_dir / "intermediate.crt"
    return pki


def config_for(
    cert: Path, key: Path, client_ca: Path, upstream: str, policy: dict[str, Any], **overrides: Any
) -> GatewayConfig:
    """A one-worker config on 127.0.0.1:0; overrides use the TOML layout (tables merged)."""
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "upstream": upstream,
        "workers": 1,
        "reload_interval": "0s",
        "tls": {"cert": str(cert), "key": str(key), "client_ca": str(client_ca)},
        "policy": policy,
    }
    for name, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return load_gateway_config(data)


def gateway_config(pki: PKI, upstream: str, **overrides: Any) -> GatewayConfig:
    """A config on 127.0.0.1:0 for the test PKI; overrides use the TOML layout."""
    certs = (pki["server.chain.pem"], pki["server.key"], pki["root.crt"])
    policy = {"allow_ou": ["demo"], **overrides.pop("policy", {})}  # merged, as tables are
    return config_for(*certs, upstream, policy, **overrides)


def identity_config(pki: PKI, upstream: str, **overrides: Any) -> GatewayConfig:
    """gateway_config with every identity header on (XFCC, Client-Cert, a custom one)."""
    return gateway_config(
        pki,
        upstream,
        identity_headers="xfcc,client-cert",
        headers={"X-Client-Subject": "%DOWNSTREAM_PEER_SUBJECT%"},
        **overrides,
    )


@dataclass
class Running:
    """An embedded gateway, with its log captured for assertions."""

    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    log: io.StringIO
    port: int

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def lines(self) -> list[str]:
        return self.log.getvalue().splitlines()

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {needle!r}:\n{self.log.getvalue()}")

    def wait_until(self, ready: Any, timeout: float = 5.0) -> None:
        """Poll ready() until it is true (a bound on waiting, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"still not so after {timeout} s:\n{self.log.getvalue()}")
            time.sleep(0.02)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) on the gateway's loop and return its result."""
        return EmbeddedGateway(self.gateway, self.loop).call(fn, *args)


@contextmanager
def running_gateway(config: GatewayConfig) -> Iterator[Running]:
    """The real gateway on its own thread (mtlskit.gateway.embedded), log captured."""
    log = io.StringIO()
    with embedded_gateway(config, EventLog(log, fmt=config.log_format, level="debug")) as gw:
        yield Running(gw.gateway, gw.loop, log, gw.port)


def client_context(pki: PKI, name: str | None = "alice", *, chain: bool = True) -> ssl.SSLContext:
    """A client context trusting our root, presenting NAME's chain (or leaf) and key."""
    ctx = ssl.create_default_context(cafile=str(pki["root.crt"]))
    if name is not None:
        cert = pki[f"{name}.chain.pem"] if chain else pki[f"{name}.crt"]
        ctx.load_cert_chain(cert, pki[f"{name}.key"])
    return ctx


def curl_as(pki: PKI, name: str | None, url: str, *extra: str) -> Any:
    """curl trusting our root, presenting NAME's chain and key (or no certificate)."""
    from tests.integration.peers import curl

    args: list[str | Path] = ["--cacert", pki["root.crt"]]
    if name is not None:
        args += ["--cert", pki[f"{name}.chain.pem"], "--key", pki[f"{name}.key"]]
    return curl(*args, *extra, url)


def gateway_argv(pki: PKI, *extra: str | Path, **replace: str | Path | None) -> list[str | Path]:
    """`mtlskit gateway ...` arguments for the test PKI, with --allow-all, on 127.0.0.1:0.

    Keys of `replace` name flags (`cert` or `--cert`, `max_header_bytes`); a value ""
    gives the bare flag and None leaves the flag out (e.g. allow_all=None: no rule).
    """
    flags: dict[str, str | Path | None] = {
        "--listen": "127.0.0.1:0",
        "--upstream": "http://127.0.0.1:9",
        "--cert": pki["server.chain.pem"],
        "--key": pki["server.key"],
        "--client-ca": pki["root.crt"],
        "--workers": "1",
        "--allow-all": "",
    }
    flags.update({"--" + k.removeprefix("--").replace("_", "-"): v for k, v in replace.items()})
    argv: list[str | Path] = ["gateway"]
    for flag, value in flags.items():
        if value is not None:
            argv += [flag] if value == "" else [flag, value]
    return [*argv, *extra]


@contextmanager
def tls_client(pki: PKI, gw: Running, name: str = "alice") -> Iterator[ssl.SSLSocket]:
    """A raw TLS connection to the gateway as NAME (leaf + intermediate); closed after."""
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    tls = client_context(pki, name).wrap_socket(raw, server_hostname="localhost")
    try:
        yield tls
    finally:
        tls.close()


# -- HTTP/2 (the h2 tests) ----------------------------------------------------------------
@dataclass
class H2Response:
    """What one stream received."""

    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    trailers: dict[str, str] = field(default_factory=dict)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(self.headers.get(":status", "0"))


class H2Client:
    """An HTTP/2 client over real TLS on h2's client state machine, driven by hand.

    Unlike curl or httpx it can hold back a stream's WINDOW_UPDATEs (a slow reader), see
    trailers and resets per stream, and offer any ALPN list.
    """

    def __init__(
        self,
        port: int,
        ctx: ssl.SSLContext,
        alpn: Iterable[str] = ("h2",),
        *,
        validate: bool = True,
    ) -> None:
        ctx.set_alpn_protocols(list(alpn))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.tls = ctx.wrap_socket(raw, server_hostname="localhost")
        config = H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=validate
        )
        self.h2 = H2Connection(config)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(2**30)  # only stream windows pace the server
        self.responses: dict[int, H2Response] = {}
        self.held: set[int] = set()  # streams whose DATA is not acknowledged (slow readers)
        self.unacked: dict[int, int] = {}
        self.goaway: ConnectionTerminated | None = None
        self._flush()

    def close(self) -> None:
        self.tls.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.tls.sendall(data)

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> int:
        """Start a request; a body is sent at once (it must fit the server's window)."""
        sid = self.h2.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "https"), (":authority", "localhost")]
        fields += [(":path", path), *headers]
        self.h2.send_headers(sid, fields, end_stream=body is None)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=True)
        self.responses[sid] = H2Response()
        self._flush()
        return sid

    def release(self, sid: int) -> None:
        """Read stream `sid` again: acknowledge what it received meanwhile."""
        self.held.discard(sid)
        n = self.unacked.pop(sid, 0)
        if n:
            self.h2.acknowledge_received_data(n, sid)
            self._flush()

    def pump(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        """Read and handle frames until `until()` holds (a bound on waiting, not a timing)."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"still waiting after {timeout} s: {self.responses}")
            self.tls.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.tls.recv(65536)
            except TimeoutError:
                continue
            if not data:
                if self.goaway is not None:
                    return  # the server said why before closing
                raise AssertionError(f"connection closed: {self.responses}")
            for event in self.h2.receive_data(data):
                self._event(event)
            self._flush()

    def wait(self, *sids: int, timeout: float = 10.0) -> list[H2Response]:
        """Wait until every stream in `sids` has ended or was reset."""
        done = lambda: all(  # noqa: E731
            self.responses[s].ended or self.responses[s].reset is not None for s in sids
        )
        self.pump(done, timeout)
        return [self.responses[s] for s in sids]

    def _event(self, event: object) -> None:
        if isinstance(event, ResponseReceived | TrailersReceived):
            target = self.responses[event.stream_id or 0]
            into = target.headers if isinstance(event, ResponseReceived) else target.trailers
            into.update((str(k), str(v)) for k, v in event.headers or ())
        elif isinstance(event, DataReceived):
            sid = event.stream_id or 0
            self.responses[sid].body += event.data or b""
            n = event.flow_controlled_length or 0
            if sid in self.held:
                self.unacked[sid] = self.unacked.get(sid, 0) + n
            elif n:
                self.h2.acknowledge_received_data(n, sid)
        elif isinstance(event, StreamEnded):
            self.responses[event.stream_id or 0].ended = True
        elif isinstance(event, StreamReset):
            self.responses[event.stream_id or 0].reset = event.error_code
        elif isinstance(event, ConnectionTerminated):
            self.goaway = event
