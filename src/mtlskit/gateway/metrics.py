"""The gateway's Prometheus metrics: a struct of handles whose names are public API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from mtlskit.gateway.recent import Recent

if TYPE_CHECKING:
    from mtlskit.gateway.state import GatewayState

__all__ = ["METRIC_NAMES", "STATES", "Metrics"]

# The *_created series double the exposition for no use of ours.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The `state` label of mtlskit_connections_by_state: every accepted socket is in one.
STATES = ("handshake", "open", "lingering")

# mtlskit_client_certificate_remaining_seconds: 1h, 1d, 7d, 30d, 90d, 1y, +Inf.
CLIENT_REMAINING_BUCKETS = (3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, 90 * 86400.0, 365 * 86400.0)

METRIC_NAMES = {
    "mtlskit_connections_open": "TLS connections open now (after the handshake)",
    "mtlskit_connections_by_state": (
        "sockets held now, by state: handshake, open (verified, until closed), lingering "
        "(closed by us, reading what the client still sends)"
    ),
    "mtlskit_handshakes_in_progress": "TLS handshakes under way now (accepted, not finished)",
    "mtlskit_connections_total": "TCP connections accepted",
    "mtlskit_handshakes_total": "TLS handshakes by result: ok, or the failure's reason code",
    "mtlskit_requests_total": "HTTP responses relayed, by status code",
    "mtlskit_requests_by_protocol_total": (
        "HTTP responses relayed, by the client's protocol: http/1.1 or h2 (one per stream)"
    ),
    "mtlskit_h2_goaways_total": (
        "HTTP/2 connections ended by the gateway with GOAWAY, by reason: a guard's "
        "(rapid_reset, settings_flood, ping_flood, empty_frames), or the h2 error code"
    ),
    "mtlskit_denied_total": "clients refused after the handshake, by reason",
    "mtlskit_refused_total": "answers the gateway wrote itself (4xx/5xx), by reason code",
    "mtlskit_upstream_errors_total": (
        "upstream failures, by kind: connect, timeout, reset, aborted, protocol"
    ),
    "mtlskit_reloads_total": "certificate/CA/CRL reloads, by result: ok or failed",
    "mtlskit_certificate_expiry_timestamp_seconds": "notAfter of each loaded certificate",
    "mtlskit_crl_next_update_timestamp_seconds": (
        "nextUpdate of each CRL in use, by issuer and source (its file or URL)"
    ),
    "mtlskit_server_connections_total": "verified connections by server (SNI's [[server]])",
    "mtlskit_client_certificate_remaining_seconds": (
        "remaining lifetime of the client certificate of each verified connection"
    ),
    "mtlskit_route_requests_total": (
        "requests by server, route and result: allowed, anonymous, denied, unauthenticated, "
        "no_route, method_not_allowed, misdirected, bad_path"
    ),
}


class Metrics:
    """Live metric handles. Hot-path counters are cached per label value.

    Args:
        registry: where to register; a fresh one per gateway, so tests can run several.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections_open = Gauge(
            "mtlskit_connections_open",
            METRIC_NAMES["mtlskit_connections_open"],
            registry=r,
            multiprocess_mode="livesum",  # ignored unless PROMETHEUS_MULTIPROC_DIR is set
        )
        # Set from the gateway's own accounting at every sweep and scrape (`sampler`),
        # not per event: one sample costs less than an inc/dec per state change.
        self.connections_by_state = Gauge(
            "mtlskit_connections_by_state",
            METRIC_NAMES["mtlskit_connections_by_state"],
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self._states = {s: self.connections_by_state.labels(s) for s in STATES}
        self.handshakes_in_progress = Gauge(
            "mtlskit_handshakes_in_progress",
            METRIC_NAMES["mtlskit_handshakes_in_progress"],
            registry=r,
            multiprocess_mode="livesum",
        )
        # Called by flush(): the gateway sets it to export its connection counts.
        self.sampler: Callable[[], None] | None = None
        self.connections_total = Counter(
            "mtlskit_connections", METRIC_NAMES["mtlskit_connections_total"], registry=r
        )
        self.handshakes = Counter(
            "mtlskit_handshakes",
            METRIC_NAMES["mtlskit_handshakes_total"],
            ["result"],
            registry=r,
        )
        self.requests = Counter(
            "mtlskit_requests", METRIC_NAMES["mtlskit_requests_total"], ["status"], registry=r
        )
        self.requests_by_protocol = Counter(
            "mtlskit_requests_by_protocol",
            METRIC_NAMES["mtlskit_requests_by_protocol_total"],
            ["protocol"],
            registry=r,
        )
        self.h2_goaways = Counter(
            "mtlskit_h2_goaways", METRIC_NAMES["mtlskit_h2_goaways_total"], ["reason"], registry=r
        )
        self.denied = Counter(
            "mtlskit_denied", METRIC_NAMES["mtlskit_denied_total"], ["reason"], registry=r
        )
        self.refused = Counter(
            "mtlskit_refused", METRIC_NAMES["mtlskit_refused_total"], ["reason"], registry=r
        )
        self.upstream_errors = Counter(
            "mtlskit_upstream_errors",
            METRIC_NAMES["mtlskit_upstream_errors_total"],
            ["kind"],
            registry=r,
        )
        self.reloads = Counter(
            "mtlskit_reloads", METRIC_NAMES["mtlskit_reloads_total"], ["result"], registry=r
        )
        self.cert_expiry = Gauge(
            "mtlskit_certificate_expiry_timestamp_seconds",
            METRIC_NAMES["mtlskit_certificate_expiry_timestamp_seconds"],
            ["role", "subject", "server"],
            registry=r,
            multiprocess_mode="max",
        )
        self.crl_next_update = Gauge(
            "mtlskit_crl_next_update_timestamp_seconds",
            METRIC_NAMES["mtlskit_crl_next_update_timestamp_seconds"],
            ["issuer", "source"],
            registry=r,
            multiprocess_mode="min",  # workers fetch on their own: the oldest CRL held
        )
        self.server_connections = Counter(
            "mtlskit_server_connections",
            METRIC_NAMES["mtlskit_server_connections_total"],
            ["server"],
            registry=r,
        )
        self.client_cert_remaining = Histogram(  # observed by gateway/expiry.py
            "mtlskit_client_certificate_remaining_seconds",
            METRIC_NAMES["mtlskit_client_certificate_remaining_seconds"],
            registry=r,
            buckets=CLIENT_REMAINING_BUCKETS,
        )
        self.route_requests = Counter(
            "mtlskit_route_requests",
            METRIC_NAMES["mtlskit_route_requests_total"],
            ["server", "route", "result"],
            registry=r,
        )
        self._handshake_ok = self.handshakes.labels("ok")
        # Responses are counted in a plain dict on the hot path and folded into the
        # Prometheus counter by flush() (the gateway's sweeper, every 0.5 s, and render()).
        self._responses: dict[int, int] = {}
        self._h2_responses = 0  # the rest were HTTP/1.1
        # Not Prometheus: the status page's last clients and refusals (bounded, this process).
        self.recent = Recent()

    def handshake_ok(self) -> None:
        """Count one successful handshake."""
        self._handshake_ok.inc()

    def certificates(self, *states: GatewayState) -> None:
        """Export the notAfter of each server's chain and client CAs (at start, on reload)."""
        for state in states:
            tls = state.tls
            for role, certs in (("server", tls.chain), ("client_ca", tls.client_cas)):
                for cert in certs:
                    subject = cert.subject.rfc4514_string()
                    gauge = self.cert_expiry.labels(role, subject, state.name)
                    gauge.set(cert.not_valid_after_utc.timestamp())
        self.crl_next_updates(*states)

    def crl_next_updates(self, *states: GatewayState) -> None:
        """Export the nextUpdate of every CRL in use (a replaced CRL's series goes)."""
        self.crl_next_update.clear()
        for state in states:
            for rl, source in zip(state.crls, state.crl_sources, strict=True):
                if rl.next_update is not None:
                    gauge = self.crl_next_update.labels(rl.issuer.rfc4514_string(), source)
                    gauge.set(rl.next_update.timestamp())

    def server_connection(self, server: str) -> None:
        """Count one verified connection of a server."""
        self.server_connections.labels(server).inc()

    def route_request(self, server: str, route: str, result: str) -> None:
        """Count one request a route (or the lack of one) decided."""
        self.route_requests.labels(server, route, result).inc()

    def response(self, status: int) -> None:
        """Count one relayed response (runs per request: a dict increment)."""
        counts = self._responses
        counts[status] = counts.get(status, 0) + 1

    def h2_response(self, status: int) -> None:
        """Count one response on an HTTP/2 stream."""
        self._h2_responses += 1
        self.response(status)

    def connection_states(self, handshake: int, open_: int, lingering: int) -> None:
        """Set the gauges of sockets by state (and of handshakes in progress)."""
        self.handshakes_in_progress.set(handshake)
        for state, count in zip(STATES, (handshake, open_, lingering), strict=True):
            self._states[state].set(count)

    def flush(self) -> None:
        """Sample the gauges and move the per-request counts into the Prometheus counters."""
        if self.sampler is not None:
            self.sampler()
        counts, self._responses = self._responses, {}
        h2, self._h2_responses = self._h2_responses, 0
        for status, count in counts.items():
            self.requests.labels(str(status)).inc(count)
        total = sum(counts.values())
        if total > h2:
            self.requests_by_protocol.labels("http/1.1").inc(total - h2)
        if h2:
            self.requests_by_protocol.labels("h2").inc(h2)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        self.flush()
        return generate_latest(self.registry)
