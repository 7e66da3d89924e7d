"""The h2c upstream (gateway/h2up.py) against a real gRPC workload (grpcio, HTTP/2 cleartext).

Each test drives H2cUpstream directly on its own event loop with a handler that records
what the client side would get; the workload is grpcio's C-core server on its own threads.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from h2.errors import ErrorCodes

from mtlskit.config import parse_upstream
from mtlskit.gateway.h2link import STREAM_WINDOW
from mtlskit.gateway.h2up import H2cUpstream
from tests.gateway.grpcpeer import Workload, frame, grpc_workload
from tests.gateway.h2cdriver import Recorder, call, has_body, in_thread, request, run, upstream


@pytest.fixture
def workload() -> Any:
    with grpc_workload() as running:
        yield running


def test_unary_call_gets_headers_body_and_trailers(workload: Workload) -> None:
    async def main() -> None:
        up = upstream(workload.upstream)
        try:
            rec = await call(up, workload, "Echo", b"hello").wait()
        finally:
            up.close()
        assert rec.reset is None
        assert dict(rec.headers or [])[b":status"] == b"200"
        assert dict(rec.headers or [])[b"content-type"] == b"application/grpc"
        assert rec.messages == [b"hello"]
        assert rec.status == "0"
        # The identity header D adds arrives in the workload's invocation metadata.
        assert workload.calls.metadata[0]["x-forwarded-client-cert"].startswith("By=spiffe://gw")

    run(main)


def test_server_streaming_client_streaming_and_bidi(workload: Workload) -> None:
    async def main() -> None:
        up = upstream(workload.upstream)
        try:
            repeat = await call(up, workload, "Repeat", b"100:1000").wait()
            concat = await call(up, workload, "Concat", *(b"part%d," % i for i in range(20))).wait()
            chat = call(up, workload, "Chat", open=True)
            assert chat.stream is not None
            for i in range(5):  # each answer comes before the next question: streaming both ways
                chat.stream.send_data(frame(b"q%d" % i))
                await chat.until(has_body(chat, (i + 1) * len(frame(b"re:q0"))))
            chat.stream.send_data(b"", end_stream=True)
            await chat.wait()
        finally:
            up.close()
        assert repeat.messages == [bytes([i]) * 1000 for i in range(100)]
        assert repeat.status == "0"
        assert concat.messages == [b"".join(b"part%d," % i for i in range(20))]
        assert concat.status == "0"
        assert chat.messages == [b"re:q%d" % i for i in range(5)]
        assert chat.status == "0"

    run(main)


def test_error_status_and_message_reach_the_handler(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            return await call(up, workload, "Fail", b"NOT_FOUND:no such order 100%").wait()
        finally:
            up.close()

    rec = run(main)
    trailers = dict(rec.trailers or [])
    assert trailers[b"grpc-status"] == b"5"
    assert trailers[b"grpc-message"] == b"no such order 100%25"  # percent-encoded by grpcio
    assert rec.reset is None


def test_request_trailers_are_sent_after_the_body(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            rec = call(up, workload, "Concat", b"a", b"b", open=True)
            assert rec.stream is not None
            rec.stream.send_trailers([(b"x-trailer", b"1")])
            return await rec.wait()
        finally:
            up.close()

    rec = run(main)
    assert rec.messages == [b"ab"]
    assert rec.status == "0"


def test_reset_from_the_client_side_cancels_the_call_in_the_workload(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            rec = call(up, workload, "Hold", b"")
            assert await in_thread(workload.calls.started.acquire, True, 10)
            assert rec.stream is not None
            rec.stream.reset()  # CANCEL
            assert await in_thread(workload.calls.cancelled.acquire, True, 10)
            # After the reset the upstream carries on: the next call works.
            after = await call(up, workload, "Echo", b"next").wait()
            assert after.messages == [b"next"]
            return rec
        finally:
            up.close()

    rec = run(main)
    assert rec.reset is None  # the client side asked for it: nothing to report back
    assert rec.trailers is None


def test_the_workloads_reset_reaches_the_handler(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            rec = Recorder()
            no_te = [h for h in request(workload, "Echo") if h[0] != b"te"]
            rec.stream = up.open_stream(no_te, rec, end_stream=True)
            return await rec.wait()  # grpcio resets a call without "te: trailers"
        finally:
            up.close()

    rec = run(main)
    assert rec.headers is None
    assert rec.reset == (
        ErrorCodes.INTERNAL_ERROR,
        "the workload reset the stream (INTERNAL_ERROR)",
    )


def test_an_answer_before_the_request_ends_stops_the_request(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            rec = call(up, workload, "Cancel", b"", open=True)  # the workload ends the call early
            await rec.wait()
            await rec.until(lambda: rec.reset is not None)
            assert rec.stream is not None
            rec.stream.send_data(frame(b"too late"), end_stream=True)  # ignored, no error
            return rec
        finally:
            up.close()

    rec = run(main)
    assert rec.status == "1"  # CANCELLED, in a trailers-only response ...
    # ... then RST_STREAM(NO_ERROR): stop sending (RFC 9113 8.1); D passes that on.
    assert rec.reset == (
        ErrorCodes.NO_ERROR,
        "the workload has answered and takes no more of the request",
    )


def test_a_workload_on_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "grpc.sock"
    with grpc_workload(unix=sock) as workload:

        async def main() -> Recorder:
            up = H2cUpstream(
                asyncio.get_running_loop(), parse_upstream(f"unix:{sock}"), connect_timeout=5
            )
            try:
                return await call(up, workload, "Echo", b"over unix").wait()
            finally:
                up.close()

        rec = run(main)
    assert rec.messages == [b"over unix"]
    assert rec.status == "0"


def test_many_streams_share_one_connection(workload: Workload) -> None:
    async def main() -> H2cUpstream:
        up = upstream(workload.upstream)
        try:
            recs = [call(up, workload, "Echo", b"n%d" % i) for i in range(60)]
            await asyncio.gather(*(r.wait() for r in recs))
            assert [r.messages for r in recs] == [[b"n%d" % i] for i in range(60)]
            assert all(r.status == "0" for r in recs)
            assert len(up.links) == 1
            return up
        finally:
            up.close()

    run(main)
    assert len(workload.calls.peers) == 1  # one TCP connection from the gateway's side


@pytest.mark.parametrize("max_connections", [1, 2])
def test_streams_beyond_the_workloads_limit_wait_or_take_a_new_connection(
    max_connections: int,
) -> None:
    with grpc_workload(("grpc.max_concurrent_streams", 2)) as workload:

        async def main() -> None:
            up = upstream(workload.upstream, max_connections=max_connections)
            try:
                recs = [call(up, workload, "Hold", b"") for _ in range(4)]
                started = 0
                for _ in range(2 * max_connections):
                    started += await in_thread(workload.calls.started.acquire, True, 10)
                assert started == 2 * max_connections
                assert len(up.waiting) == 4 - 2 * max_connections  # queued, not refused
                workload.calls.release.set()
                await asyncio.gather(*(r.wait() for r in recs))
                assert [r.status for r in recs] == ["0"] * 4, [r.reset for r in recs]
                assert all(r.reset is None for r in recs)
            finally:
                up.close()

        run(main)
        assert len(workload.calls.peers) == max_connections


def test_a_response_not_passed_on_stays_within_the_stream_window(workload: Workload) -> None:
    total = 128 * 65536  # 8 MiB from the workload

    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            rec = call(up, workload, "Repeat", b"128:65536", auto_ack=False)
            await rec.until(lambda: len(rec.body) >= STREAM_WINDOW // 2)
            await asyncio.sleep(0.3)  # time for more to come, if the window let it
            held = len(rec.body)
            assert held <= STREAM_WINDOW  # the workload waits: nothing piles up in the gateway
            assert rec.stream is not None
            while not rec.finished.done():  # now pass it on, as a client reading slowly would
                rec.stream.ack(len(rec.body))
                await asyncio.wait([rec.finished], timeout=0.05)
            return rec
        finally:
            up.close()

    rec = run(main)
    assert rec.status == "0"
    assert len(rec.body) == total + 128 * 5
    assert rec.messages[127] == bytes([127]) * 65536


def test_a_request_body_goes_out_only_as_fast_as_the_workload_reads(workload: Workload) -> None:
    message = b"x" * 65536
    count = 512  # 32 MiB: grpcio takes several MiB in before its handler reads

    async def main() -> tuple[Recorder, int]:
        up = upstream(workload.upstream)
        try:
            rec = call(up, workload, "Count", *([message] * count))
            assert await in_thread(workload.calls.started.acquire, True, 10)
            await rec.until(lambda: rec.sent > 0)
            await asyncio.sleep(0.3)  # the workload does not read: its windows fill
            held = rec.sent
            assert rec.stream is not None
            assert held < count * len(frame(message))  # not all of it was sent ...
            assert rec.stream.out_bytes == count * len(frame(message)) - held  # ... the rest waits
            workload.calls.release.set()
            await rec.wait()
            return rec, held
        finally:
            up.close()

    rec, _ = run(main)
    assert rec.status == "0"
    assert rec.messages == [str(count * len(message)).encode()]
    assert rec.sent == count * len(frame(message))  # every byte reported as sent


def test_a_slow_reader_does_not_stall_other_streams(workload: Workload) -> None:
    async def main() -> None:
        up = upstream(workload.upstream)
        try:
            slow = call(up, workload, "Repeat", b"64:65536", auto_ack=False)
            await slow.until(lambda: len(slow.body) >= STREAM_WINDOW // 2)
            fast = await call(up, workload, "Repeat", b"64:65536").wait()
            assert fast.status == "0"
            assert len(fast.messages) == 64
            assert not slow.finished.done()
            assert slow.stream is not None
            slow.stream.reset()  # its client went away: the window it held is given back
            again = await call(up, workload, "Repeat", b"64:65536").wait()
            assert again.status == "0"
            assert len(up.links) == 1
        finally:
            up.close()

    run(main)
