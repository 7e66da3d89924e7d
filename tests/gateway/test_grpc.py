"""gRPC end to end: a grpcio client over mTLS -> the gateway (h2) -> h2c -> a grpcio workload.

The client presents a certificate of the test PKI; the workload (grpcpeer, generic handlers,
bytes in and out) records the invocation metadata, where the identity headers must be
and the client's own XFCC must not, and the deadline and cancellation it sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from mtlskit.demo.echo import EchoServer
from tests.gateway.grpcpeer import (
    Workload,
    grpc_workload,
    stream_stream,
    stream_unary,
    tls_channel,
    unary,
    unary_stream,
)
from tests.gateway.harness import PKI, Running, gateway_config, running_gateway


@pytest.fixture
def workload() -> Iterator[Workload]:
    with grpc_workload() as running:
        yield running


@pytest.fixture
def gateway(pki: PKI, workload: Workload) -> Iterator[Running]:
    with running_gateway(gateway_config(pki, workload.upstream)) as gw:
        yield gw


def channel_as(pki: PKI, gw: Running, name: str = "alice") -> Any:
    return tls_channel(
        gw.port,
        pki["root.crt"].read_bytes(),
        pki[f"{name}.key"].read_bytes(),
        pki[f"{name}.chain.pem"].read_bytes(),
    )


def test_unary_server_client_and_bidi_streaming_calls(pki: PKI, gateway: Running) -> None:
    with channel_as(pki, gateway) as channel:
        assert unary(channel, "Echo")(b"hello", timeout=10) == b"hello"
        streamed = list(unary_stream(channel, "Repeat")(b"50:3000", timeout=10))
        assert streamed == [bytes([i]) * 3000 for i in range(50)]
        parts = [b"part%d," % i for i in range(30)]
        assert stream_unary(channel, "Concat")(iter(parts), timeout=10) == b"".join(parts)
        answers = list(stream_stream(channel, "Chat")(iter([b"a", b"b", b"c"]), timeout=10))
        assert answers == [b"re:a", b"re:b", b"re:c"]
    gateway.wait_for_log("/mtlskit.test.Echo/Chat")  # an access log line per stream


def test_a_large_message_both_ways(pki: PKI, gateway: Running) -> None:
    big = bytes(range(256)) * 12_000  # 3 MB, under grpcio's 4 MB message limit
    with channel_as(pki, gateway) as channel:
        assert unary(channel, "Echo")(big, timeout=30) == big


def test_the_workload_sees_the_identity_and_not_the_clients_own_xfcc(
    pki: PKI, gateway: Running, workload: Workload
) -> None:
    forged = [("x-forwarded-client-cert", "By=spiffe://evil;URI=spiffe://evil/admin")]
    with channel_as(pki, gateway) as channel:
        seen = json.loads(unary(channel, "WhoAmI")(b"", timeout=10, metadata=forged))
    xfcc = seen["x-forwarded-client-cert"]
    assert "URI=spiffe://example.org/ns/shop/sa/alice" in xfcc
    assert "evil" not in xfcc
    assert not any("evil" in value for value in seen.values())


def test_error_status_and_message_reach_the_client(pki: PKI, gateway: Running) -> None:
    with channel_as(pki, gateway) as channel, pytest.raises(grpc.RpcError) as failed:
        unary(channel, "Fail")(b"NOT_FOUND:no order 42 (100% sure)", timeout=10)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "no order 42 (100% sure)"


def test_the_deadline_reaches_the_workload(pki: PKI, gateway: Running, workload: Workload) -> None:
    with channel_as(pki, gateway) as channel:
        assert unary(channel, "Echo")(b"x", timeout=20) == b"x"
    remaining = workload.calls.remaining[-1]
    assert remaining is not None  # grpc-timeout was carried through ...
    assert 0 < remaining <= 20  # ... as the time the client gave


def test_an_expired_deadline_gives_deadline_exceeded_and_cancels_the_call(
    pki: PKI, gateway: Running, workload: Workload
) -> None:
    with channel_as(pki, gateway) as channel, pytest.raises(grpc.RpcError) as failed:
        unary(channel, "Hold")(b"", timeout=1)
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert workload.calls.cancelled.acquire(timeout=10)  # the workload's call ended too


def test_cancellation_by_the_client_reaches_the_workload(
    pki: PKI, gateway: Running, workload: Workload
) -> None:
    with channel_as(pki, gateway) as channel:
        pending = unary(channel, "Hold").future(b"", timeout=30)
        assert workload.calls.started.acquire(timeout=10)
        assert pending.cancel()
        assert workload.calls.cancelled.acquire(timeout=10)  # RST_STREAM went on upstream
        assert unary(channel, "Echo")(b"still fine", timeout=10) == b"still fine"


def test_many_concurrent_calls_over_one_client_connection(
    pki: PKI, gateway: Running, workload: Workload
) -> None:
    with channel_as(pki, gateway) as channel:
        echo = unary(channel, "Echo")
        futures = [echo.future(b"call %d" % i, timeout=20) for i in range(80)]
        assert [f.result() for f in futures] == [b"call %d" % i for i in range(80)]
    assert len(workload.calls.peers) == 1  # multiplexed on one h2c connection upstream


def test_a_grpc_call_towards_an_http1_upstream_is_unavailable(pki: PKI) -> None:
    with EchoServer() as echo, running_gateway(gateway_config(pki, echo.url)) as gw:
        with channel_as(pki, gw) as channel, pytest.raises(grpc.RpcError) as failed:
            unary(channel, "Echo")(b"x", timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "h2c://" in failed.value.details()


def test_a_policy_refusal_is_permission_denied_with_the_reason(
    pki: PKI, gateway: Running, workload: Workload
) -> None:
    with channel_as(pki, gateway, "carol") as channel, pytest.raises(grpc.RpcError) as failed:
        unary(channel, "Echo")(b"x", timeout=10)
    assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "no allow rule matched" in failed.value.details()  # the policy's reason
    assert workload.calls.metadata == []  # nothing reached the workload


def test_a_workload_that_is_down_gives_unavailable(pki: PKI) -> None:
    with grpc_workload() as gone:
        upstream = gone.upstream
    with running_gateway(gateway_config(pki, upstream)) as gw:
        with channel_as(pki, gw) as channel, pytest.raises(grpc.RpcError) as failed:
            unary(channel, "Echo")(b"x", timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
