"""The status listener: the status page, /status.json, /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, generate_latest

from mtlskit.errors import MtlsKitError
from mtlskit.gateway.listen import bind_listener
from mtlskit.gateway.recent import Recent
from mtlskit.gateway.status_page import CSP, certificate_entry, days_left, render_page
from mtlskit.identity import PeerIdentity
from mtlskit.policy import AccessPolicy, evaluate
from mtlskit.tlsconfig import status_server_context

if TYPE_CHECKING:
    from mtlskit.config import GatewayConfig
    from mtlskit.gateway.routing import Route
    from mtlskit.gateway.server import Gateway
    from mtlskit.gateway.state import GatewayState

__all__ = ["StatusServer", "status_document"]

Document = Callable[[], dict[str, Any]]

_TEXT: Final = b"text/plain; charset=utf-8"
_PAGE_HEADERS: Final = (
    b"content-security-policy: " + CSP.encode() + b"\r\n"
    b"x-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\n"
    b"x-frame-options: DENY\r\ncache-control: no-store\r\n"
)
_WORKER_SCOPE: Final = "this gateway process (the last 50 of each)"
_SUPERVISOR_SCOPE: Final = (
    "kept by each worker process; the supervisor serving this page has none "
    "(run with workers = 1 to see them here)"
)


class StatusServer:
    """A tiny HTTP/1.1 server for people, probes and scrapers; one request per connection.

    Args:
        ready: returns True when the gateway accepts traffic.
        metrics: returns the Prometheus text exposition.
        document: returns the status document (`/status.json`, and `/` rendered); without
            it those two paths answer 404.
        tls: a server context requiring a client certificate (`[status_tls]`), or None
            for plain HTTP.
        allow: who may read the listener when `tls` is set.
    """

    def __init__(
        self,
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
        *,
        document: Document | None = None,
        tls: ssl.SSLContext | None = None,
        allow: AccessPolicy | None = None,
    ) -> None:
        self._ready = ready
        self._metrics = metrics
        self._document = document
        self._tls = tls
        self._allow = allow or AccessPolicy()
        self.server: asyncio.Server | None = None
        self._sock: socket.socket | None = None

    @classmethod
    def for_gateway(cls, gateway: Gateway) -> StatusServer:
        """The status listener of a one-process gateway: its state, metrics, recent clients.

        Raises:
            TLSConfigError: `[status_tls]` is set and its files cannot be used.
        """

        def document() -> dict[str, Any]:
            gateway.metrics.flush()
            return status_document(
                gateway.config,
                gateway.state,
                listen=gateway.address,
                ready=gateway.ready,
                registry=gateway.metrics.registry,
                recent=gateway.metrics.recent,
                scope=_WORKER_SCOPE,
                now=datetime.now(UTC),
            )

        tls, allow = _protection(gateway.config)
        return cls(
            lambda: gateway.ready, gateway.metrics.render, document=document, tls=tls, allow=allow
        )

    @classmethod
    def for_supervisor(
        cls,
        config: GatewayConfig,
        ready: Callable[[], bool],
        registry: CollectorRegistry,
    ) -> StatusServer:
        """The supervisor's status listener: counters summed over the workers.

        The certificates shown are reloaded when their files change.

        Raises:
            TLSConfigError: `[status_tls]` is set and its files cannot be used.
        """
        from mtlskit.gateway.state import file_stamps, load_state, watched_files

        held: list[GatewayState] = [load_state(config, datetime.now(UTC))]
        empty = Recent(0, 0)

        def document() -> dict[str, Any]:
            now = datetime.now(UTC)
            if file_stamps(watched_files(config)) != held[0].stamps:
                with contextlib.suppress(MtlsKitError):  # the workers keep the old ones too
                    held[0] = load_state(config, now)
            return status_document(
                config,
                held[0],
                listen=config.listen,
                ready=ready(),
                registry=registry,
                recent=empty,
                scope=_SUPERVISOR_SCOPE,
                now=now,
            )

        tls, allow = _protection(config)
        return cls(
            ready, lambda: generate_latest(registry), document=document, tls=tls, allow=allow
        )

    def bind(self, host: str, port: int) -> None:
        """Take the port now, so that a busy one fails before anything else starts.

        Raises:
            ConfigError: the port is in use (the message names --status).
        """
        self._sock = bind_listener(host, port, flag="--status")

    async def start(self, host: str | None = None, port: int = 0) -> tuple[str, int]:
        """Serve on the socket bind() took (or bind host:port now); return the address."""
        if self._sock is None:
            if host is None:
                raise TypeError("StatusServer.start() needs host and port unless bind() ran")
            self.bind(host, port)
        assert self._sock is not None  # noqa: S101 - bind() set it or raised
        timeout = 5.0 if self._tls is not None else None  # a handshake that stalls
        self.server = await asyncio.start_server(
            self._serve, sock=self._sock, ssl=self._tls, ssl_handshake_timeout=timeout
        )
        bound = self.server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    @property
    def scheme(self) -> str:
        """http, or https when the listener requires client certificates."""
        return "https" if self._tls is not None else "http"

    async def close(self) -> None:
        """Stop listening (also when bind() ran but start() never did)."""
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        elif self._sock is not None:
            self._sock.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.split()
            path = parts[1].decode("latin-1") if len(parts) >= 2 else "/"
            if self._tls is not None and not self._allowed(writer):
                reply = (b"403 Forbidden", _TEXT, b"", b"your certificate is not allowed here\n")
            else:
                reply = self._route(path.split("?", 1)[0])
            status, ctype, extra, body = reply
            writer.write(
                b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s"
                b"connection: close\r\n\r\n" % (status, ctype, len(body), extra) + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _allowed(self, writer: asyncio.StreamWriter) -> bool:
        """The verified client certificate passes the status allow rules (fails closed)."""
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return False
        try:
            identity = PeerIdentity.from_der(der)
        except MtlsKitError:
            return False
        return evaluate(self._allow, identity).allowed

    def _route(self, path: str) -> tuple[bytes, bytes, bytes, bytes]:
        if path == "/healthz":
            return b"200 OK", _TEXT, b"", b"ok\n"
        if path == "/readyz":
            if self._ready():
                return b"200 OK", _TEXT, b"", b"ready\n"
            return b"503 Service Unavailable", _TEXT, b"", b"not ready\n"
        if path == "/metrics":
            return b"200 OK", b"text/plain; version=0.0.4; charset=utf-8", b"", self._metrics()
        if self._document is not None and path in ("/", "/status.json"):
            doc = self._document()
            if path == "/status.json":
                body = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
                return b"200 OK", b"application/json", b"cache-control: no-store\r\n", body
            html = render_page(doc).encode()
            return b"200 OK", b"text/html; charset=utf-8", _PAGE_HEADERS, html
        return b"404 Not Found", _TEXT, b"", b"try /, /status.json, /healthz, /readyz or /metrics\n"


def _protection(config: GatewayConfig) -> tuple[ssl.SSLContext | None, AccessPolicy | None]:
    """The TLS context and allow rules of `[status_tls]`, or (None, None) for plain HTTP.

    Raises:
        TLSConfigError: the gateway's certificate or the status client CA cannot be loaded.
    """
    status_tls = config.status_tls
    if status_tls.client_ca is None:
        return None, None
    ctx = status_server_context(config.tls.cert, config.tls.key, status_tls.client_ca)
    return ctx, status_tls.policy


def _rules(policy: AccessPolicy) -> list[str]:
    rules = ["allow_all"] if policy.allow_all else []
    for prefix, values in (
        ("cn", policy.allow_cn),
        ("ou", policy.allow_ou),
        ("dns", policy.allow_dns),
        ("uri", policy.allow_uri),
    ):
        rules += [f"{prefix}={value}" for value in values]
    return rules


def _route(route: Route) -> dict[str, Any]:
    return {
        "name": route.name,
        "rules": _rules(route.policy),
        "anonymous": route.anonymous,
        "upstream": str(route.upstream),
    }


def _server(state: GatewayState, now: datetime) -> dict[str, Any]:
    site = state.site
    routes = [*site.routes, *([site.fallback] if site.fallback is not None else [])]
    crls = [
        {
            "issuer": rl.issuer.rfc4514_string(),
            "source": source,
            "next_update": rl.next_update.isoformat() if rl.next_update else None,
            "days_left": days_left(rl.next_update, now) if rl.next_update else None,
        }
        for rl, source in zip(state.crls, state.crl_sources, strict=False)
    ]
    return {
        "name": state.name,
        "names": list(site.names),
        "chain": [certificate_entry(c, now) for c in state.tls.chain],
        "client_cas": [certificate_entry(c, now) for c in state.tls.client_cas],
        "crls": crls,
        "policy": {"routes": [_route(r) for r in routes]},
    }


def _counters(registry: CollectorRegistry) -> dict[str, Any]:
    counters: dict[str, Any] = {"handshakes": {}, "requests": {}, "denied": {}}
    open_now = 0.0
    labels = {
        "mtlskit_handshakes_total": ("handshakes", "result"),
        "mtlskit_requests_total": ("requests", "status"),
        "mtlskit_denied_total": ("denied", "reason"),
    }
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "mtlskit_connections_open":
                open_now += sample.value
            elif sample.name in labels:
                key, label = labels[sample.name]
                value = sample.labels.get(label, "")
                counters[key][value] = counters[key].get(value, 0) + int(sample.value)
    counters["connections_open"] = int(open_now)
    return counters


def status_document(
    config: GatewayConfig,
    state: GatewayState,
    *,
    listen: tuple[str, int],
    ready: bool,
    registry: CollectorRegistry,
    recent: Recent,
    scope: str,
    now: datetime,
) -> dict[str, Any]:
    """What `/status.json` answers and `/` shows (its keys are stable).

    Args:
        config: the gateway's configuration.
        state: the state in use: the top-level server and its [[server]]s.
        listen: the TLS listener's address.
        ready: the gateway accepts traffic.
        registry: the metrics to read the counters from.
        recent: the recent clients and refusals.
        scope: where the recent lists come from, as the page says it.
        now: the time the days left are counted from.
    """
    host, port = listen
    clients = [
        {
            "subject": c.subject,
            "spiffe_id": c.spiffe_id,
            "last_seen": c.last_seen,
            "connections": c.connections,
            "requests": c.requests,
            "not_after": datetime.fromtimestamp(c.not_after, UTC).isoformat(),
            "days_left": days_left(datetime.fromtimestamp(c.not_after, UTC), now),
        }
        for c in recent.clients()
    ]
    refusals = [
        {
            "at": r.at,
            "code": r.code,
            "step": r.step,
            "subject": r.subject,
            "fix": r.fix,
            "client": r.client,
        }
        for r in recent.refusals()
    ]
    return {
        "version": 1,
        "generated_at": now.isoformat(timespec="seconds"),
        "ready": ready,
        "listen": f"{host}:{port}",
        "mode": config.mode,
        "servers": [_server(s, now) for s in (state, *state.servers)],
        "counters": _counters(registry),
        "recent_scope": scope,
        "recent_clients": clients,
        "recent_refusals": refusals,
    }
