"""The gateway's lifecycle: listen, accept, handshake, hand over to HTTP/TCP, sweep, reload."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.config import GatewayConfig, acme_configs
from mtlskit.errors import MtlsKitError
from mtlskit.gateway.acme import obtain_at_start, renew_forever
from mtlskit.gateway.admission import Admission, admit
from mtlskit.gateway.carenew import renew_from_ca
from mtlskit.gateway.connection import ConnContext, Connection
from mtlskit.gateway.crlfetch import CrlFetcher
from mtlskit.gateway.expiry import observe_client
from mtlskit.gateway.h2server import H2Connection
from mtlskit.gateway.handshake import HandshakeTimeoutError
from mtlskit.gateway.handshake_log import (
    client_address,
    report_handshake_failure,
    unverified_caller,
)
from mtlskit.gateway.http import HTTPConnection
from mtlskit.gateway.listen import bind_listener
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.metrics import Metrics
from mtlskit.gateway.routing import Caller
from mtlskit.gateway.state import GatewayState, file_stamps, load_state, watched_files
from mtlskit.gateway.tcp import TCPConnection
from mtlskit.gateway.tls import TLSStream
from mtlskit.gateway.upstreams import Upstreams
from mtlskit.policy import Decision

# Connections taken from the accept queue per readiness callback, before other work runs.
_ACCEPT_BATCH: Final = 64
# Out of file descriptors: how long to leave the accept queue alone before trying again.
_ACCEPT_PAUSE: Final = 0.5
# The sweeper's tick, and how many open connections it checks per tick.
_SWEEP_SECONDS: Final = 0.5
_SWEEP_SLICE: Final = 1000

__all__ = ["Gateway"]


class Gateway:
    """One worker: a listener, the current state, and the connections it serves.

    Lifecycle: `start()` -> serve until `shutdown()` (stop accepting, let connections
    finish for `limits.drain_timeout`, then close the rest). Each connection keeps the
    state (certificates, policy, CRLs) it was accepted with.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        metrics: Metrics | None = None,
        log: EventLog | None = None,
        manage_acme: bool = True,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.log = log or EventLog(fmt=config.log_format)
        self.loop = asyncio.get_running_loop()
        # With [tls] acme, this gateway gets and renews the certificate itself (a worker
        # under a supervisor leaves that to the supervisor and follows the files).
        # A worker under a supervisor leaves renewals to the supervisor and follows the files.
        self._manage_renewal = manage_acme
        self._acme = acme_configs(config) if manage_acme else []
        for acme in self._acme:
            obtain_at_start(acme, self.log)
        self.crls = CrlFetcher.at_start(config, self.log)  # CRLs from URLs (one per worker)
        self.state: GatewayState = load_state(config, datetime.now(UTC), self.crls.fetched)
        # Every socket accepted and not yet closed (handshaking, open or lingering), and
        # the verified connections among them.
        self.streams: set[TLSStream] = set()
        self.connections: set[Connection] = set()
        self._deadlines: set[TLSStream] = set()  # handshaking or lingering streams
        self._sweep_queue: list[Connection] = []
        self.listener: socket.socket | None = None
        self._address = ("", 0)
        self._tasks: list[asyncio.Task[None]] = []
        self._conn_class = HTTPConnection if config.mode == "http" else TCPConnection
        # The pools (HTTP/1.1) and multiplexed h2c links of every workload, by address;
        # the top-level upstream's are made now, a route's on its first request.
        self.upstreams = Upstreams(self.loop, config)
        http = config.mode == "http"
        self.pool = self.upstreams.pool(config.upstream) if http else None
        h2c = http and config.upstream_protocol == "h2c"
        self.h2c = self.upstreams.h2c(config.upstream) if h2c else None
        self.ctx = ConnContext(
            self.loop,
            config,
            self.metrics,
            self.log,
            self.pool,
            self.connection_closed,
            self.upstreams,
            self.h2c,
        )
        self._handshake_timeout = config.limits.handshake_timeout.total_seconds()
        self._accept_error_logged = False
        self.ready = False
        self._export_expiry()
        self.metrics.sampler = self._export_states

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen (on `sock` if given) and start the sweeper and the file watcher."""
        if sock is None:
            host, port = self.config.listen
            sock = bind_listener(host, port, backlog=self.config.limits.backlog)
        sock.setblocking(False)
        self.listener = sock
        host, port = sock.getsockname()[:2]
        self._address = (str(host), int(port))
        self.loop.add_reader(sock.fileno(), self._accept)
        self._tasks += [self.loop.create_task(self._sweep()), *self.crls.start(self)]
        if self.config.reload_interval.total_seconds() > 0:
            self._tasks.append(self.loop.create_task(self._watch()))
        lock = asyncio.Lock()  # one HTTP-01 responder at a time
        for acme in self._acme:
            renew = renew_forever(acme, self.log, lambda: self.reload("acme"), lock)
            self._tasks.append(self.loop.create_task(renew))
        if self._manage_renewal and self.config.tls.ca_url:  # from an mtlskit ca serve
            renew = renew_from_ca(self.config, self.log, lambda: self.reload("ca_url"))
            self._tasks.append(self.loop.create_task(renew))
        self.ready = True
        host, port = self.address
        self.log.event(
            "listening",
            f"mTLS gateway on {host}:{port} -> {self.config.upstream} ({self.config.mode})",
            client_ca=str(self.config.tls.client_ca),
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        return self._address

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None

    async def shutdown(self) -> None:
        """Stop accepting, let open connections finish (drain_timeout), then close them."""
        self.ready = False
        self._stop_listening()
        for task in self._tasks:
            task.cancel()
        for stream in list(self.streams):
            if stream.handshaking:  # not a client's failure: no handshake_failed line
                stream.abort()
        deadline = self.loop.time() + self.config.limits.drain_timeout.total_seconds()
        for conn in list(self.connections):  # idle ones close now, busy ones when done
            conn.shutdown()
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        for stream in list(self.streams):  # lingering closes: no need to wait for them
            stream.abort()
        self.upstreams.close()
        self.metrics.flush()
        self.log.event("stopped", "gateway stopped")

    # -- connections -----------------------------------------------------------------------
    def _accept(self) -> None:
        listener = self.listener
        assert listener is not None  # noqa: S101
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE/ENFILE: out of descriptors
                if not self._accept_error_logged:
                    self._accept_error_logged = True
                    self.log.event(
                        "accept_failed",
                        f"cannot accept connections: {exc.strerror}",
                        level="error",
                        fix="raise the open-files limit (ulimit -n) or lower "
                        "limits.max_connections",
                    )
                # The queue stays readable: stop watching it for a moment rather than spin.
                self.loop.remove_reader(listener.fileno())
                self.loop.call_later(_ACCEPT_PAUSE, self._resume_accepting)
                return
            self._serve(sock, peer)

    def _resume_accepting(self) -> None:
        if self.ready and self.listener is not None:
            self.loop.add_reader(self.listener.fileno(), self._accept)

    def _serve(self, sock: socket.socket, peer: Any) -> None:
        """A TCP connection arrived: enforce the limit, then start the TLS handshake."""
        self.metrics.connections_total.inc()
        if len(self.streams) >= self.config.limits.max_connections:
            self.metrics.handshakes.labels("over_limit").inc()
            sock.close()  # before any TLS work
            return
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = self.state  # the state this connection keeps, even across reloads
        stream = TLSStream(
            self.loop,
            sock,
            state.tls.context,
            self._conn_class(self.ctx, state),
            peer=peer,
            on_open=self._verified,
            on_failure=self._handshake_failed,
            deadlines=self._deadlines,
        )
        self.streams.add(stream)
        stream.on_closed(self.streams.discard)
        stream.start()

    def _handshake_failed(self, stream: TLSStream, exc: BaseException) -> None:
        report_handshake_failure(self.metrics, self.log, stream, exc)

    def _verified(self, stream: TLSStream) -> None:
        """The handshake succeeded: who is it, may they pass, then serve."""
        self.metrics.handshake_ok()
        conn: Connection = stream.protocol
        ssl_conn = stream.conn
        leaf = ssl_conn.get_peer_certificate(as_cryptography=True)
        if leaf is None or stream.verify_errors:
            # Only with client_auth = "optional": no certificate (anonymous), or one that
            # did not verify (verify_optional = "explain"). Neither is ever forwarded as
            # an identity; each request's route decides (allow_anonymous, 401 or 403).
            self._serve_unverified(stream, conn, leaf)
            return
        # On the server side OpenSSL's peer chain leaves the leaf out: the intermediates sent.
        sent = ssl_conn.get_peer_cert_chain(as_cryptography=True) or []
        now = datetime.now(UTC)
        admission = admit(
            conn.state,
            leaf.public_bytes(Encoding.DER),
            tuple(c.public_bytes(Encoding.DER) for c in sent),
            now,
            headers=self.config.mode == "http",
        )
        if admission.identity is None:
            self.metrics.denied.labels("malformed").inc()
            self.log.event(
                "identity_failed",
                admission.decision.reason,
                level="warning",
                client=client_address(stream.peer),
                code="malformed",
                fix="reissue the client certificate with a conforming profile",
            )
            stream.abort()
            return
        limits = self.config.limits
        client = client_address(stream.peer)
        observe_client(
            self.metrics, self.log, admission.identity, now, limits.client_expiry_warning, client
        )
        self.crls.learn(leaf)  # crl_from_cdp: the CRL its CRL Distribution Point names
        self.metrics.recent.connected(admission.identity)  # the status page's recent clients
        self._open(stream, conn, admission, Caller(admission.identity, admission.decision))

    def _serve_unverified(
        self, stream: TLSStream, conn: Connection, leaf: x509.Certificate | None
    ) -> None:
        caller = unverified_caller(self.metrics, self.log, stream, leaf)
        self._open(stream, conn, Admission(None, Decision(False, "", ""), b""), caller)

    def _open(
        self, stream: TLSStream, conn: Connection, admission: Admission, caller: Caller
    ) -> None:
        if self.config.mode == "http" and stream.conn.get_alpn_proto_negotiated() == b"h2":
            conn = stream.protocol = H2Connection(self.ctx, conn.state)  # RFC 7301: h2
        self.connections.add(conn)
        self.metrics.connections_open.inc()
        self.metrics.server_connection(conn.state.name)
        conn.begin(stream, admission, caller)

    def connection_closed(self, conn: Connection) -> None:
        """Forget a connection (called once, from its connection_lost)."""
        if conn in self.connections:
            self.connections.discard(conn)
            self.metrics.connections_open.dec()

    def _export_states(self) -> None:
        """Count the sockets by state for /metrics (every sweep tick and every scrape)."""
        # _deadlines holds exactly the handshaking and the lingering streams. (A copy: a
        # scrape from another thread, as the embedded gateway's caller, must not fail.)
        waiting = list(self._deadlines)
        handshaking = sum(1 for stream in waiting if stream.handshaking)
        opened = max(len(self.streams) - len(waiting), 0)
        self.metrics.connection_states(handshaking, opened, len(waiting) - handshaking)

    # -- background ------------------------------------------------------------------------
    async def _sweep(self) -> None:
        timeout = self._handshake_timeout
        while True:
            await asyncio.sleep(_SWEEP_SECONDS)
            self.metrics.flush()
            now = self.loop.time()
            for stream in list(self._deadlines):
                if stream.handshaking:
                    if now - stream.started > timeout:
                        stream.fail(
                            HandshakeTimeoutError("the TLS handshake did not finish in time")
                        )
                else:
                    stream.check_linger(now)
            # Open connections in slices: with 10,000 held, one tick never stalls the loop
            # for long; each connection is still checked every few ticks.
            queue = self._sweep_queue
            if not queue:
                queue.extend(self.connections)
            for conn in queue[-_SWEEP_SLICE:]:
                if not conn.closing:
                    conn.check(now)
            del queue[-_SWEEP_SLICE:]
            self.upstreams.sweep(now)

    async def _watch(self) -> None:
        interval = self.config.reload_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            if file_stamps(watched_files(self.config)) != self.state.stamps:
                self.reload("files changed")

    def reload(self, why: str = "SIGHUP") -> bool:
        """Build a new state from the files; keep the old one if anything is wrong."""
        try:
            new = load_state(self.config, datetime.now(UTC), self.crls.fetched)
        except MtlsKitError as exc:
            self.metrics.reloads.labels("failed").inc()
            # Remember the broken files' stamps so the watcher does not retry every tick.
            self.state = _restamped(self.state, file_stamps(watched_files(self.config)))
            self.log.event(
                "reload_failed",
                f"{exc.message}; still serving the previous certificates",
                level="error",
                trigger=why,
                hint=exc.hint,
            )
            return False
        self.state = new
        self.metrics.reloads.labels("ok").inc()
        self._export_expiry()
        self.log.event("reloaded", f"new certificates in use ({why})", trigger=why)
        return True

    def _export_expiry(self) -> None:
        self.metrics.certificates(self.state, *self.state.servers)


def _restamped(state: GatewayState, stamps: Any) -> GatewayState:
    return dataclasses.replace(state, stamps=stamps)
