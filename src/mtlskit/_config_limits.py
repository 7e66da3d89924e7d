"""[limits]: every wait and size the gateway bounds, as config keys (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mtlskit._config_keys import config_key
from mtlskit._config_kinds import DURATION, INT

__all__ = ["LimitsConfig"]


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """[limits]: every wait and size is bounded, so a slow client never blocks others."""

    handshake_timeout: timedelta = config_key(
        timedelta(seconds=10),
        kind=DURATION,
        doc="a client must finish its TLS handshake in this time",
    )
    header_timeout: timedelta = config_key(
        timedelta(seconds=30),
        kind=DURATION,
        doc="a started request head must be complete in this time (408)",
    )
    idle_timeout: timedelta = config_key(
        timedelta(seconds=300),
        kind=DURATION,
        doc="close a connection with nothing in flight after this; also the longest pause "
        "inside a request body (408)",
    )
    upstream_connect_timeout: timedelta = config_key(
        timedelta(seconds=5), kind=DURATION, doc="connecting to the workload (then 504)"
    )
    upstream_timeout: timedelta = config_key(
        timedelta(seconds=60),
        kind=DURATION,
        doc="the workload must start answering in this time, counted from the end of the "
        "request body (504)",
    )
    drain_timeout: timedelta = config_key(
        timedelta(seconds=20),
        kind=DURATION,
        doc="on SIGTERM, how long open connections may finish",
    )
    # nginx's client_header_buffer_size default (1k) is the buffer most request heads fit
    # in. Below that, a request line, Host and the usual few headers of a real client
    # (User-Agent, Accept, ...) already overflow and every request would get a 431.
    max_header_bytes: int = config_key(
        64 * 1024,
        kind=INT,
        minimum=1024,
        why="a smaller head cannot carry a usual request",
        doc="larger request heads (and trailers) get 431",
    )
    max_connections: int = config_key(
        10_000,
        kind=INT,
        minimum=1,
        why="0 would refuse every connection",
        doc="connections (and handshakes) at once, per worker",
    )
    # The kernel's accept queue (listen(2) backlog), as nginx's default; the kernel caps it
    # at net.core.somaxconn. listen(2) takes 0, but then the kernel queues (almost) no
    # connection to accept.
    backlog: int = config_key(
        1024,
        kind=INT,
        minimum=1,
        why="the accept queue needs room for one connection",
        doc="the listen(2) accept queue (the kernel caps it at `net.core.somaxconn`)",
    )
    # RFC 9113 6.5.2 recommends no less than 100 (nginx's http2_max_concurrent_streams 128).
    max_concurrent_streams: int = config_key(
        100,
        kind=INT,
        minimum=1,
        why="0 would let an HTTP/2 client open no stream at all",
        doc="HTTP/2 streams open at once per client connection (SETTINGS_MAX_CONCURRENT_STREAMS)",
    )
    # Idle upstream connections kept for any client (HTTP mode; nginx's `keepalive 64`),
    # and how long one may wait (nginx's keepalive_timeout for upstreams is 60 s).
    upstream_keepalive: int = config_key(
        64,
        kind=INT,
        doc="idle upstream connections kept for any client (HTTP mode; `0`: one upstream "
        "connection per client connection)",
    )
    upstream_keepalive_timeout: timedelta = config_key(
        timedelta(seconds=60),
        kind=DURATION,
        doc="how long an idle upstream connection is kept",
    )
    client_expiry_warning: timedelta = config_key(
        timedelta(days=7),
        kind=DURATION,
        doc="log a warning when a client whose certificate expires within this connects",
    )
