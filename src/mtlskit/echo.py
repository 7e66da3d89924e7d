"""A small workload for demos and tests: answers with what it received, identity included."""

from __future__ import annotations

import hashlib
import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mtlskit.identity import IdentityHeaderError, from_headers

__all__ = ["EchoServer", "TCPEchoServer"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real workload
    server_version = "mtlskit-echo"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the gateway's access log is the one to read."""

    def handle(self) -> None:
        """Serve; a client (the gateway) hanging up mid-answer is normal, not an error."""
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
        body = self._body()
        if path == "/bytes":
            self._send(200, b"x" * int(query.get("n", "0")), "application/octet-stream")
            return
        if path == "/slow":
            time.sleep(float(query.get("s", "1")))
        if path == "/ws" and self.headers.get("upgrade", "").lower() == "websocket":
            self._tunnel()
            return
        error: str | None = None
        try:
            peer = from_headers(list(self.headers.items()))
        except IdentityHeaderError as exc:
            peer, error = None, str(exc)
        answer = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "identity": None
            if peer is None
            else {"subject": peer.subject, "spiffe_id": peer.spiffe_id, "dns": list(peer.dns_sans)},
            "identity_error": error,
        }
        self._send(200, json.dumps(answer, indent=2).encode() + b"\n")

    def _tunnel(self) -> None:
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "upgrade")
        self.end_headers()
        self.wfile.flush()
        while data := self.rfile.read1(65536):
            self.wfile.write(data.upper())
            self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer  # noqa: N815


class EchoServer:
    """The echo workload on a thread: `with EchoServer() as echo: echo.url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """http://host:port."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _TCPEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while data := sock.recv(65536):
            sock.sendall(b"echo:" + data)


class TCPEchoServer(EchoServer):
    """A raw TCP echo (each chunk comes back prefixed with b"echo:")."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = socketserver.ThreadingTCPServer((host, port), _TCPEcho)  # type: ignore[assignment]
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
