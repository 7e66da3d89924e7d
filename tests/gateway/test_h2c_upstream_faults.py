"""The h2c upstream when the workload goes away: stopped, killed, GOAWAY, refused, silent."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from h2.errors import ErrorCodes

from tests.gateway.grpcpeer import Workload, grpc_workload, workload_process
from tests.gateway.h2cdriver import Recorder, call, has_body, in_thread, run, upstream


@pytest.fixture
def workload() -> Any:
    with grpc_workload() as running:
        yield running


def test_the_workload_stopping_ends_its_streams(workload: Workload) -> None:
    async def main() -> tuple[Recorder, Recorder]:
        up = upstream(workload.upstream)
        try:
            held = call(up, workload, "Hold", b"")
            assert await in_thread(workload.calls.started.acquire, True, 10)
            await in_thread(lambda: workload.server.stop(None).wait(10))
            await held.wait()
            later = await call(up, workload, "Echo", b"late").wait()
            return held, later
        finally:
            up.close()

    held, later = run(main)
    assert held.status == "14"  # grpcio answers its calls in flight UNAVAILABLE as it stops
    assert later.reset is not None
    assert later.reset[0] == ErrorCodes.REFUSED_STREAM  # nothing reached a workload
    assert "cannot connect to the workload at h2c://127.0.0.1:" in later.reset[1]


def test_a_workload_killed_mid_call_resets_every_stream() -> None:
    with workload_process() as (proc, port):
        fake = Workload(None, port, None)  # type: ignore[arg-type]

        async def main() -> list[Recorder]:
            up = upstream(f"h2c://127.0.0.1:{port}")
            try:
                first = await call(up, fake, "Echo", b"up").wait()
                assert first.messages == [b"up"]
                held = [call(up, fake, "Chat", b"hi", open=True) for _ in range(3)]
                for rec in held:
                    await rec.until(has_body(rec, 1))
                proc.kill()  # SIGKILL: no GOAWAY, no trailers, the kernel closes the socket
                return [await rec.wait() for rec in held]
            finally:
                up.close()

        held = run(main)
    for rec in held:
        assert rec.trailers is None
        assert rec.reset is not None
        assert rec.reset[0] == ErrorCodes.INTERNAL_ERROR
        assert "the connection to the workload was lost" in rec.reset[1]


def test_a_graceful_goaway_lets_streams_in_flight_finish(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        try:
            held = call(up, workload, "Hold", b"")
            assert await in_thread(workload.calls.started.acquire, True, 10)
            stopped = workload.server.stop(20)  # GOAWAY, then waits for calls in flight
            async with asyncio.timeout(10):
                while not up.links or not up.links[0].going_away:
                    await asyncio.sleep(0.02)
            workload.calls.release.set()
            await held.wait()
            await in_thread(stopped.wait, 10)
            return held
        finally:
            up.close()

    held = run(main)
    assert held.reset is None
    assert held.messages == [b"released"]
    assert held.status == "0"


def test_a_workload_that_ages_its_connections_out_is_followed_to_new_ones() -> None:
    # grpcio sends GOAWAY once a connection is 300 ms old and keeps listening: every call
    # must succeed, on whichever connection is current.
    options = (("grpc.max_connection_age_ms", 300), ("grpc.max_connection_age_grace_ms", 5000))
    with grpc_workload(*options) as workload:

        async def main() -> list[Recorder]:
            up = upstream(workload.upstream)
            recs: list[Recorder] = []
            try:
                loop = asyncio.get_running_loop()
                until = loop.time() + 1.5
                while loop.time() < until:
                    batch = [call(up, workload, "Echo", b"%d" % len(recs)) for _ in range(5)]
                    recs += [await r.wait() for r in batch]
                    await asyncio.sleep(0.02)
                return recs
            finally:
                up.close()

        recs = run(main)
        assert [r.reset for r in recs] == [None] * len(recs)
        assert all(r.status == "0" for r in recs)
        assert len(workload.calls.peers) >= 2  # the upstream moved to new connections


def test_connection_refused_and_connect_timeout_reach_the_handler() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]
    silent = socket.socket()  # accepts TCP (backlog) but never speaks HTTP/2
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)

    async def main() -> tuple[Recorder, Recorder]:
        fake = Workload(None, refused_port, None)  # type: ignore[arg-type]
        up = upstream(f"h2c://127.0.0.1:{refused_port}")
        mute = upstream(f"h2c://127.0.0.1:{silent.getsockname()[1]}", connect_timeout=0.5)
        try:
            refused = await call(up, fake, "Echo", b"x").wait()
            timed_out = await call(mute, fake, "Echo", b"x").wait()
            return refused, timed_out
        finally:
            up.close()
            mute.close()

    try:
        refused, timed_out = run(main)
    finally:
        silent.close()
    assert refused.reset is not None and refused.reset[0] == ErrorCodes.REFUSED_STREAM
    assert "cannot connect to the workload at h2c://127.0.0.1" in refused.reset[1]
    assert timed_out.reset is not None and timed_out.reset[0] == ErrorCodes.REFUSED_STREAM
    assert "did not answer within 0.5 s" in timed_out.reset[1]


def test_streams_opened_after_close_are_refused_without_blocking(workload: Workload) -> None:
    async def main() -> Recorder:
        up = upstream(workload.upstream)
        up.close()
        return await call(up, workload, "Echo", b"x").wait()

    rec = run(main)
    assert rec.reset == (ErrorCodes.REFUSED_STREAM, "the gateway is shutting down")
