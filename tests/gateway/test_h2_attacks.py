"""HTTP/2 attacks by a client holding a valid certificate: each one is answered and contained.

A raw client (tests/gateway/h2raw.py) misbehaves on purpose against the real gateway over
real TLS (ALPN h2). Each test asserts the GOAWAY or RST_STREAM and its error code, that
nothing the client made up reached the workload (tests/gateway/recorder.py keeps every
byte), and that another connection is still served afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.gateway.h2raw import RawH2, connect, pings, resets_in_a_loop
from tests.gateway.harness import (
    PKI,
    Running,
    client_context,
    curl_as,
    identity_config,
    running_gateway,
)
from tests.gateway.recorder import Recorder, recording_upstream

# Made-up identity: "evil" (and its base64, ZXZpbA==) must never reach the workload.
SPOOF = [
    ("x-forwarded-client-cert", 'By=spiffe://evil;Hash=00;Subject="CN=admin"'),
    ("client-cert", ":ZXZpbA==:"),
    ("x-client-subject", "CN=evil"),
]
MAX_WINDOW = 2**31 - 1


@contextmanager
def _setup(pki: PKI, **overrides: Any) -> Iterator[tuple[Recorder, Running]]:
    with (
        recording_upstream() as rec,
        running_gateway(identity_config(pki, rec.url, **overrides)) as gw,
    ):
        yield rec, gw


@contextmanager
def _h2(pki: PKI, gw: Running, *, settle: bool = True) -> Iterator[RawH2]:
    """A raw h2 connection as alice; the server's SETTINGS read and ACKed."""
    with connect(gw.port, client_context(pki)) as h2:
        assert h2.tls.selected_alpn_protocol() == "h2"
        if settle:
            h2.settle()
        yield h2


def _refused(out: Any, sid: int) -> bool:
    """The stream got 431, was reset, or the connection was closed with a fitting GOAWAY."""
    return bool(
        out.status(sid) == 431
        or sid in out.resets()
        or out.goaway_error() in {"ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"}
    )


def _still_serves(pki: PKI, gw: Running) -> None:
    """Another connection gets a normal answer over h2, from the raw client and from curl."""
    with _h2(pki, gw) as h2:
        sid = h2.get("/after")
        out = h2.drain(until_end=sid)
        assert out.status(sid) == 200, out.summary()
    done = curl_as(
        pki,
        "alice",
        gw.url + "/curl",
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
    )
    assert done.stdout == "2 200", (done.stdout, done.stderr)


def _nothing_made_up(rec: Recorder) -> None:
    raw = rec.raw().lower()
    assert b"evil" not in raw and b"zxzpba" not in raw, raw[:2000]


# -- Floods answered by the guard (gateway/h2guard.py) --------------------------------------


def test_rapid_reset_gets_goaway_enhance_your_calm(pki: PKI) -> None:
    """CVE-2023-44487: HEADERS then RST_STREAM on new streams in a loop."""
    with _setup(pki) as (_, gw):
        with _h2(pki, gw) as h2:
            out = h2.flood(resets_in_a_loop(h2, 3000))
        assert out.goaway_error() == "ENHANCE_YOUR_CALM", out.summary()
        assert out.closed, out.summary()
        gw.wait_for_log("h2_goaway")
        _still_serves(pki, gw)


def test_settings_flood_gets_goaway_enhance_your_calm(pki: PKI) -> None:
    with _setup(pki) as (_, gw):
        with _h2(pki, gw) as h2:
            out = h2.flood(SettingsFrame(0, settings={}) for _ in range(5000))
        assert out.goaway_error() == "ENHANCE_YOUR_CALM", out.summary()
        assert out.closed, out.summary()
        _still_serves(pki, gw)


def test_ping_flood_gets_goaway_enhance_your_calm(pki: PKI) -> None:
    with _setup(pki) as (_, gw):
        with _h2(pki, gw) as h2:
            out = h2.flood(pings(5000))
        assert out.goaway_error() == "ENHANCE_YOUR_CALM", out.summary()
        assert out.closed, out.summary()
        _still_serves(pki, gw)


def test_empty_data_frame_flood_gets_goaway_enhance_your_calm(pki: PKI) -> None:
    """CVE-2019-9518: zero-length DATA frames without END_STREAM on an open upload."""
    with _setup(pki) as (_, gw):
        with _h2(pki, gw) as h2:
            sid = h2.next_stream_id()
            h2.write(h2.headers(sid, h2.request("/upload", "POST"), end_stream=False))
            out = h2.flood(DataFrame(sid, b"") for _ in range(5000))
        assert out.goaway_error() == "ENHANCE_YOUR_CALM", out.summary()
        assert out.closed, out.summary()
        _still_serves(pki, gw)


# -- Answered by h2 and the gateway's settings ---------------------------------------------


def test_continuation_flood_gets_goaway_without_buffering_forever(pki: PKI) -> None:
    """CVE-2024-27316: HEADERS without END_HEADERS, then CONTINUATION frames without end."""
    with _setup(pki) as (rec, gw):
        with _h2(pki, gw) as h2:
            start = HeadersFrame(1, data=h2.block(h2.request("/cont")), flags=["END_STREAM"])
            chunk = b"\x00" * 4000  # never decoded: the block never ends
            frames = (ContinuationFrame(1, data=chunk) for _ in range(20000))  # 80 MB
            out = h2.flood([start, *frames], batch=20)
        assert out.goaway_error() in {"PROTOCOL_ERROR", "ENHANCE_YOUR_CALM"}, out.summary()
        assert out.closed, out.summary()
        assert rec.requests() == []
        _still_serves(pki, gw)


def test_hpack_bomb_over_max_header_bytes_is_refused(pki: PKI) -> None:
    """A 3 kB field sent once and then indexed: 10 x 3 kB decoded from a 3 kB block."""
    with _setup(pki, limits={"max_header_bytes": 8192}) as (rec, gw):
        with _h2(pki, gw) as h2:
            bomb = [("x-bomb", "b" * 3000)] * 10
            sid = h2.next_stream_id()
            frame = h2.headers(sid, h2.request("/bomb", extra=bomb))
            assert len(frame.data) < 3200  # the encoder really indexed the repeats
            h2.write(frame)
            out = h2.drain(until_end=sid)
        assert _refused(out, sid), out.summary()
        assert b"x-bomb" not in rec.raw()
        _still_serves(pki, gw)


def test_max_header_bytes_binds_before_the_client_acks_our_settings(pki: PKI) -> None:
    """h2 applies our SETTINGS_MAX_HEADER_LIST_SIZE only once the client ACKs it (RFC 9113
    6.5.3), and a client may send its first request before that (curl does): the limit
    must bind from the first frame, not after the ACK."""
    with _setup(pki, limits={"max_header_bytes": 8192}) as (rec, gw):
        with connect(gw.port, client_context(pki)) as h2:
            h2.auto_ack = False
            sid = h2.next_stream_id()
            h2.write(h2.headers(sid, h2.request("/early", extra=[("x-early", "e" * 20_000)])))
            out = h2.drain(until_end=sid)
        assert _refused(out, sid), out.summary()
        assert b"x-early" not in rec.raw()
        _still_serves(pki, gw)


def test_header_list_over_max_header_bytes_in_continuations_is_refused(pki: PKI) -> None:
    with _setup(pki, limits={"max_header_bytes": 8192}) as (rec, gw):
        with _h2(pki, gw) as h2:
            block = h2.block(
                h2.request("/big", extra=[(f"x-big-{i}", "c" * 1000) for i in range(20)])
            )
            parts = [block[i : i + 4096] for i in range(0, len(block), 4096)]
            frames: list[Frame] = [HeadersFrame(1, data=parts[0], flags=["END_STREAM"])]
            frames += [ContinuationFrame(1, data=p) for p in parts[1:]]
            frames[-1].flags.add("END_HEADERS")
            h2.write(*frames)
            out = h2.drain(until_end=1)
        refused = (
            out.status(1) == 431
            or 1 in out.resets()
            or out.goaway_error() in {"ENHANCE_YOUR_CALM", "PROTOCOL_ERROR", "COMPRESSION_ERROR"}
        )
        assert refused, out.summary()
        assert b"x-big" not in rec.raw()
        _still_serves(pki, gw)


def test_streams_beyond_max_concurrent_streams_are_refused(pki: PKI) -> None:
    """REFUSED_STREAM for the extra ones; the held ones and the HPACK state survive.

    Each refused HEADERS adds an entry to the HPACK dynamic table (`x-refused`): a server
    that refuses a stream without decoding its block (RFC 9113 4.3 says it must) then
    reads later blocks against the wrong table.
    """
    with _setup(pki) as (rec, gw):
        with _h2(pki, gw) as h2:
            settings = h2.settle()
            limit = settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS)
            assert limit == 100, settings  # the default, advertised
            held = [h2.next_stream_id() for _ in range(limit)]
            extra = [h2.next_stream_id() for _ in range(5)]
            for sid in held:  # uploads left open: each stream stays active
                h2.write(h2.headers(sid, h2.request("/hold", "POST"), end_stream=False))
            for sid in extra:
                refused = h2.request("/hold", "POST", [("x-refused", f"r{sid}")])
                h2.write(h2.headers(sid, refused, end_stream=False))
            h2.drain(5.0, until_end=extra[-1])
            resets = h2.outcome.resets()
            assert {sid: resets.get(sid) for sid in extra} == dict.fromkeys(
                extra, "REFUSED_STREAM"
            ), h2.outcome.summary()
            assert not set(held) & set(resets), h2.outcome.summary()
            assert h2.outcome.goaway is None, h2.outcome.summary()
            # The last held stream (read with the refused ones) still works...
            h2.write(DataFrame(held[-1], b"done", flags=["END_STREAM"]))
            out = h2.drain(until_end=held[-1])
            assert out.status(held[-1]) == 200, out.summary()
            # ... and a new stream's block, indexed against the refused ones, decodes right.
            after = h2.get("/after-refused", extra=[("x-refused", "again")])
            out = h2.drain(until_end=after)
            assert out.status(after) == 200, out.summary()
        (req,) = [r for r in rec.requests() if r.target == "/after-refused"]
        assert req.values("x-refused") == ["again"]
        for sid in extra:
            assert f"r{sid}".encode() not in rec.raw()  # refused: never reached the workload
        _still_serves(pki, gw)


def test_connection_window_overflow_gets_goaway_flow_control_error(pki: PKI) -> None:
    with _setup(pki) as (_, gw):
        with _h2(pki, gw) as h2:
            h2.write(WindowUpdateFrame(0, window_increment=MAX_WINDOW))
            out = h2.drain()
        assert out.goaway_error() == "FLOW_CONTROL_ERROR", out.summary()
        _still_serves(pki, gw)


def test_stream_window_overflow_resets_that_stream_only(pki: PKI) -> None:
    with _setup(pki) as (_, gw):
        with _h2(pki, gw) as h2:
            sid = h2.next_stream_id()
            h2.write(h2.headers(sid, h2.request("/upload", "POST"), end_stream=False))
            h2.write(WindowUpdateFrame(sid, window_increment=MAX_WINDOW))
            h2.drain(until_end=sid)
            assert h2.outcome.resets().get(sid) == "FLOW_CONTROL_ERROR", h2.outcome.summary()
            after = h2.get("/same-connection")
            out = h2.drain(until_end=after)
            assert out.status(after) == 200 and out.goaway is None, out.summary()


def test_headers_never_finished_are_closed_after_the_header_timeout(pki: PKI) -> None:
    with _setup(pki, limits={"header_timeout": "1s"}) as (rec, gw):
        with _h2(pki, gw) as h2:
            h2.write(HeadersFrame(1, data=h2.block(h2.request("/slow")), flags=["END_STREAM"]))
            out = h2.drain(15.0)  # a bound on waiting: the timeout is 1 s
            assert out.closed or 1 in out.resets(), out.summary()
            if not out.closed:
                assert h2.drain(15.0).closed, out.summary()
        assert rec.requests() == []
        _still_serves(pki, gw)


def test_a_connection_that_only_sends_the_preface_is_closed(pki: PKI) -> None:
    with _setup(pki, limits={"header_timeout": "1s"}) as (_, gw):
        with _h2(pki, gw) as h2:
            while not h2.outcome.closed and h2.read(15.0):
                if h2.outcome.goaway is not None:
                    h2.drain(2.0)
                    break
            assert h2.outcome.closed, h2.outcome.summary()
        _still_serves(pki, gw)


# -- Identity smuggling over h2 --------------------------------------------------------------


def test_client_identity_headers_never_reach_the_workload(pki: PKI) -> None:
    with _setup(pki) as (rec, gw):
        with _h2(pki, gw) as h2:
            sid = h2.get("/spoof", extra=SPOOF)
            out = h2.drain(until_end=sid)
            assert out.status(sid) == 200, out.summary()
        (req,) = rec.wait_requests(1)
        (xfcc,) = req.values("x-forwarded-client-cert")
        assert 'Subject="CN=alice,OU=demo,O=Example"' in xfcc
        assert len(req.values("client-cert")) == 1
        assert req.values("x-client-subject") == ["CN=alice,OU=demo,O=Example"]
        _nothing_made_up(rec)


def test_uppercase_identity_header_names_are_refused_not_forwarded(pki: PKI) -> None:
    """HTTP/2 field names must be lowercase (RFC 9113 8.2.1): such a request is malformed."""
    with _setup(pki) as (rec, gw):
        with _h2(pki, gw) as h2:
            for name, value in SPOOF:
                sid = h2.get("/spoof", extra=[(name.title(), value)])
                out = h2.drain(until_end=sid)
                assert sid in out.resets() or out.goaway is not None, out.summary()
                if out.goaway is not None:
                    break
        _nothing_made_up(rec)
        _still_serves(pki, gw)


def test_identity_headers_in_trailers_never_reach_the_workload(pki: PKI) -> None:
    with _setup(pki) as (rec, gw):
        with _h2(pki, gw) as h2:
            sid = h2.next_stream_id()
            h2.write(
                h2.headers(
                    sid, h2.request("/trailers", "POST", [("te", "trailers")]), end_stream=False
                ),
                DataFrame(sid, b"body"),
                h2.headers(sid, [*SPOOF, ("x-ok", "1")]),
            )
            out = h2.drain(until_end=sid)
        assert out.status(sid) == 200 or sid in out.resets(), out.summary()
        if out.status(sid) == 200:
            (req,) = rec.wait_requests(1)
            assert req.body == b"body"
        _nothing_made_up(rec)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/x", [("x-a", "v\r\nx-forwarded-client-cert: By=evil")]),  # CRLF in a value
        ("/x", [("x-a\r\nx-forwarded-client-cert", "By=evil")]),  # ... in a name
        ("/x", [("x-a", "v\nclient-cert: :ZXZpbA==:")]),  # a bare LF
        ("/x HTTP/1.1\r\nx-forwarded-client-cert: By=evil\r\nx-b:", []),  # in :path
        ("/x HTTP/1.0", [("x-evil", "1")]),  # a space: a second request line upstream
    ],
    ids=["crlf-value", "crlf-name", "lf-value", "crlf-path", "space-path"],
)
def test_fields_that_would_split_the_http1_request_never_reach_the_workload(
    pki: PKI, path: str, extra: list[tuple[str, str]]
) -> None:
    """Over h2 -> HTTP/1.1, a CR, LF or space would write fields or a request line the
    client made up: the stream (or the connection) is refused and nothing is forwarded."""
    with _setup(pki) as (rec, gw):
        with _h2(pki, gw) as h2:
            sid = h2.next_stream_id()
            h2.write(h2.headers(sid, h2.request(path, extra=extra)))
            out = h2.drain(until_end=sid)
            assert sid in out.resets() or out.goaway is not None, out.summary()
        assert rec.raw() == b"", rec.raw()[:500]  # nothing at all reached the workload
        _nothing_made_up(rec)
        _still_serves(pki, gw)
