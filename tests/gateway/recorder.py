"""A raw upstream for the attack tests: records every byte the gateway sends, answers by script.

Unlike the echo workload it parses nothing for the gateway's benefit: each connection's
bytes are kept exactly as received, in order with what the recorder sent back, so a test
can assert what reached the workload and when (e.g. that bytes after an upgrade request
were held back until the 101). Requests are split with httptools only to know when to
answer; trailer fields are kept apart from head fields.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httptools


@dataclass
class Request:
    """One request as the workload saw it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    upgrade: bool = False

    def values(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def names(self) -> list[str]:
        """Header names, lowercased, in order."""
        return [n.lower() for n, _ in self.headers]


# What the script may do with a request: answer it (bytes), answer then hang up
# ("close", bytes), or switch to a raw echo after sending the bytes ("tunnel", bytes).
Reply = bytes | tuple[str, bytes]
Script = Callable[[Request], Reply]


def ok(body: bytes = b"ok", status: str = "200 OK") -> bytes:
    """A small framed response."""
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status.encode(), len(body), body)


def default_script(req: Request) -> Reply:
    """200 to everything; 404 to upgrade requests (most paths of most apps)."""
    return ok(b"not here", "404 Not Found") if req.upgrade else ok()


@dataclass
class Conn:
    """One upstream connection: the raw bytes and the events in order."""

    raw: bytearray = field(default_factory=bytearray)
    events: list[tuple[str, bytes]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


class _Parse:
    def __init__(self) -> None:
        self.parser: Any = httptools.HttpRequestParser(self)
        self.done: list[Request] = []
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []
        self.body = b""
        self.in_body = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        item = (name.decode("latin-1"), value.decode("latin-1"))
        (self.trailers if self.in_body else self.headers).append(item)

    def on_headers_complete(self) -> None:
        self.in_body = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append(
            Request(
                self.parser.get_method().decode(),
                self.url.decode("latin-1"),
                self.parser.get_http_version(),
                self.headers,
                self.body,
                self.trailers,
                upgrade=bool(self.parser.should_upgrade()),
            )
        )
        self._reset()


class Recorder:
    """A TCP server on 127.0.0.1 that records and answers; `url` is its http:// address."""

    def __init__(self, script: Script = default_script) -> None:
        self.script = script
        self.conns: list[Conn] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._stop = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[Request]:
        """Every request received so far, all connections, in order."""
        with self._lock:
            return [r for c in self.conns for r in c.requests]

    def raw(self) -> bytes:
        """Every byte received so far, all connections."""
        with self._lock:
            return b"".join(bytes(c.raw) for c in self.conns)

    def wait_requests(self, count: int, timeout: float = 5.0) -> list[Request]:
        """Wait until `count` requests arrived (or fail with what did)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests()
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"{len(self.requests())} requests, not {count}: {self.raw()!r}")

    def start(self) -> None:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop = True
        try:  # wakes the accept() blocked in the thread; close() alone does not
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for sock in list(self._open):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(2)

    def _accept(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            self._open.append(sock)
            conn = Conn()
            with self._lock:
                self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(sock, conn), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket, conn: Conn) -> None:
        parse = _Parse()
        tunnel = False
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    conn.raw += data
                    conn.events.append(("recv", data))
                if tunnel:
                    self._send(sock, conn, data.upper())
                    continue
                try:
                    parse.parser.feed_data(data)
                except httptools.HttpParserUpgrade as upgrade:
                    rest = data[upgrade.args[0] :]
                except httptools.HttpParserError:
                    with self._lock:
                        conn.events.append(("unparsable", data))
                    return
                else:
                    rest = b""
                done, parse.done = parse.done, []
                while done:
                    req = done.pop(0)
                    with self._lock:
                        conn.requests.append(req)
                    reply = self.script(req)
                    action, out = ("answer", reply) if isinstance(reply, bytes) else reply
                    self._send(sock, conn, out)
                    if action == "close":
                        return
                    if action == "tunnel":
                        tunnel = True
                        if rest:
                            self._send(sock, conn, rest.upper())
                        break
                    if req.upgrade:
                        # Refused upgrade: keep speaking HTTP on a fresh parser.
                        parse = _Parse()
                        if rest:
                            parse.parser.feed_data(rest)
                            done, parse.done = done + parse.done, []

    def _send(self, sock: socket.socket, conn: Conn, data: bytes) -> None:
        with self._lock:
            conn.events.append(("sent", data))
        try:
            sock.sendall(data)
        except OSError:
            pass


@contextmanager
def recording_upstream(script: Script = default_script) -> Iterator[Recorder]:
    """Run a Recorder for the duration of the block; it is closed even if the test fails."""
    rec = Recorder(script)
    rec.start()
    try:
        yield rec
    finally:
        rec.close()
