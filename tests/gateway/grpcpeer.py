"""A real gRPC workload and client (grpcio, generic handlers, bytes in and out) for the tests.

No generated code: every method takes and returns raw bytes (serializers None). The
service records what the gateway must carry through: the invocation metadata (identity
headers), the deadline the call arrived with, the peer (which connection), and whether a
call saw its cancellation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]

SERVICE = "mtlskit.test.Echo"


def path(method: str) -> str:
    """The :path of a method of the test service."""
    return f"/{SERVICE}/{method}"


def frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: compressed flag 0, 4-byte length, the message."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def unframe(data: bytes) -> list[bytes]:
    """The messages in a complete gRPC body (raises on a truncated one)."""
    messages, pos = [], 0
    while pos < len(data):
        if data[pos] != 0:
            raise AssertionError(f"compressed message at {pos}")
        length = int.from_bytes(data[pos + 1 : pos + 5], "big")
        end = pos + 5 + length
        if end > len(data):
            raise AssertionError(f"truncated message at {pos}: {length} bytes announced")
        messages.append(data[pos + 5 : end])
        pos = end
    return messages


@dataclass
class Calls:
    """What the service saw, shared with the test thread."""

    metadata: list[dict[str, str]] = field(default_factory=list)
    peers: set[str] = field(default_factory=set)
    remaining: list[float | None] = field(default_factory=list)
    started: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    cancelled: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, context: Any) -> None:
        with self.lock:
            self.peers.add(context.peer())
            self.metadata.append({k: v for k, v in context.invocation_metadata()})
            self.remaining.append(context.time_remaining())


def _handlers(calls: Calls) -> dict[str, Any]:
    def echo(request: bytes, context: Any) -> bytes:
        calls.saw(context)
        return request

    def whoami(request: bytes, context: Any) -> bytes:
        """The invocation metadata (the identity headers among it) as JSON."""
        calls.saw(context)
        return json.dumps(dict(context.invocation_metadata())).encode()

    def repeat(request: bytes, context: Any) -> Iterator[bytes]:
        """b"COUNT:SIZE": COUNT messages of SIZE bytes each (message i filled with i % 256)."""
        calls.saw(context)
        count, size = (int(x) for x in request.split(b":"))
        for i in range(count):
            yield bytes([i % 256]) * size

    def concat(requests: Iterable[bytes], context: Any) -> bytes:
        calls.saw(context)
        return b"".join(requests)

    def count(requests: Iterable[bytes], context: Any) -> bytes:
        """Waits for `release` before reading (a workload slow to read), then counts bytes."""
        calls.saw(context)
        calls.started.release()
        calls.release.wait(30)
        return str(sum(len(r) for r in requests)).encode()

    def chat(requests: Iterable[bytes], context: Any) -> Iterator[bytes]:
        calls.saw(context)
        for request in requests:
            yield b"re:" + request

    def hold(request: bytes, context: Any) -> bytes:
        """Blocks until the call is cancelled (recorded), `release` is set, or 30 s pass."""
        calls.saw(context)
        context.add_callback(calls.cancelled.release)
        calls.started.release()
        deadline = time.monotonic() + 30
        while context.is_active() and not calls.release.is_set():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return b"released"

    def fail(request: bytes, context: Any) -> bytes:
        """Ends with the status and message the request names: b"CODE:message"."""
        calls.saw(context)
        code, _, message = request.decode().partition(":")
        context.abort(grpc.StatusCode[code], message)
        raise AssertionError("abort returns never")

    def cancel(request: bytes, context: Any) -> bytes:
        """The workload cancels the call itself: grpcio resets the stream (RST_STREAM)."""
        calls.saw(context)
        context.cancel()
        return b""

    return {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "WhoAmI": grpc.unary_unary_rpc_method_handler(whoami),
        "Repeat": grpc.unary_stream_rpc_method_handler(repeat),
        "Concat": grpc.stream_unary_rpc_method_handler(concat),
        "Count": grpc.stream_unary_rpc_method_handler(count),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Hold": grpc.unary_unary_rpc_method_handler(hold),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Cancel": grpc.unary_unary_rpc_method_handler(cancel),
    }


@dataclass
class Workload:
    """A running grpcio server on 127.0.0.1 (insecure port: HTTP/2 cleartext, h2c)."""

    server: Any
    port: int
    calls: Calls

    @property
    def upstream(self) -> str:
        return f"h2c://127.0.0.1:{self.port}"


@contextmanager
def grpc_workload(
    *options: tuple[str, Any], workers: int = 64, unix: Path | None = None
) -> Iterator[Workload]:
    """The test service on 127.0.0.1:<free port> (and on `unix` if given); stopped after."""
    calls = Calls()
    server = grpc.server(ThreadPoolExecutor(max_workers=workers), options=list(options))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, _handlers(calls)),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    if unix is not None:
        server.add_insecure_port(f"unix:{unix}")
    server.start()
    try:
        yield Workload(server, port, calls)
    finally:
        calls.release.set()
        server.stop(None).wait(10)


@contextmanager
def workload_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The test service in a child process (so a test can kill it: SIGKILL, no goodbye)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.grpcpeer"],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


@contextmanager
def tls_channel(port: int, root: bytes, key: bytes | None, chain: bytes | None) -> Iterator[Any]:
    """A grpcio channel to the gateway over TLS, presenting `chain` and `key` if given."""
    credentials = grpc.ssl_channel_credentials(root, key, chain)
    channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
    try:
        yield channel
    finally:
        channel.close()


def unary(channel: Any, method: str) -> Any:
    return channel.unary_unary(path(method))


def unary_stream(channel: Any, method: str) -> Any:
    return channel.unary_stream(path(method))


def stream_unary(channel: Any, method: str) -> Any:
    return channel.stream_unary(path(method))


def stream_stream(channel: Any, method: str) -> Any:
    return channel.stream_stream(path(method))


if __name__ == "__main__":  # workload_process(): serve until stdin closes
    with grpc_workload() as running:
        print(running.port, flush=True)
        sys.stdin.read()
