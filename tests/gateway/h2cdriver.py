"""Drive gateway/h2up.py as the client side would: a recording handler and call helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mtlskit.config import parse_upstream
from mtlskit.gateway.h2up import H2cUpstream, UpstreamStream
from tests.gateway.grpcpeer import Workload, frame, path, unframe

T = TypeVar("T")
Headers = list[tuple[bytes, bytes]]


class Recorder:
    """A ResponseHandler that records everything, as the client side's stream would."""

    def __init__(self, *, auto_ack: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.stream: UpstreamStream | None = None
        self.auto_ack = auto_ack
        self.headers: Headers | None = None
        self.body = bytearray()
        self.trailers: Headers | None = None
        self.reset: tuple[int, str] | None = None
        self.sent = 0
        self.finished = self.loop.create_future()
        self.changed = asyncio.Event()

    def on_response_headers(self, headers: Headers, end_stream: bool) -> None:
        self.headers = headers
        if end_stream:  # trailers-only
            self.trailers = headers
            self.finished.set_result(None)

    def on_response_data(self, data: bytes, end_stream: bool) -> None:
        self.body += data
        if self.auto_ack and self.stream is not None:
            self.stream.ack(len(data))
        self.changed.set()

    def on_response_trailers(self, trailers: Headers) -> None:
        self.trailers = trailers
        self.finished.set_result(None)

    def on_request_data_sent(self, n: int) -> None:
        self.sent += n
        self.changed.set()

    def on_upstream_reset(self, error_code: int, why: str) -> None:
        assert self.reset is None, "reset reported twice"
        self.reset = (error_code, why)
        if not self.finished.done():
            self.finished.set_result(None)

    @property
    def status(self) -> str | None:
        """grpc-status from the trailers."""
        return dict(self.trailers or []).get(b"grpc-status", b"").decode() or None

    @property
    def messages(self) -> list[bytes]:
        return unframe(bytes(self.body))

    async def wait(self, timeout: float = 15) -> Recorder:
        await asyncio.wait_for(asyncio.shield(self.finished), timeout)
        return self

    async def until(self, ready: Callable[[], bool], timeout: float = 15) -> None:
        """Wait until ready() (a bound on waiting, not a timing assertion)."""
        async with asyncio.timeout(timeout):
            while not ready():
                self.changed.clear()
                await self.changed.wait()


def has_body(rec: Recorder, n: int) -> Callable[[], bool]:
    """A condition for Recorder.until: at least n response body bytes came."""
    return lambda: len(rec.body) >= n


def request(workload: Workload, method: str) -> Headers:
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", f"127.0.0.1:{workload.port}".encode()),
        (b":path", path(method).encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"x-forwarded-client-cert", b"By=spiffe://gw;URI=spiffe://example.org/alice"),
    ]


def upstream(address: str, **options: Any) -> H2cUpstream:
    options.setdefault("connect_timeout", 5.0)
    return H2cUpstream(asyncio.get_running_loop(), parse_upstream(address), **options)


def call(up: H2cUpstream, workload: Workload, method: str, *messages: bytes, **kw: Any) -> Recorder:
    """Open a stream and send the messages (the request ends after them unless open=True)."""
    keep_open = kw.pop("open", False)
    rec = Recorder(**kw)
    rec.stream = up.open_stream(request(workload, method), rec, end_stream=False)
    for message in messages:
        rec.stream.send_data(frame(message))
    if not keep_open:
        rec.stream.send_data(b"", end_stream=True)
    return rec


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(main(), 60))


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
