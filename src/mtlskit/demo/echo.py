"""The echo workload: answers with what it received, identity included (demos and tests).

Run it behind a gateway you are testing: `python -m mtlskit.demo.echo --port 8080` serves
until Ctrl-C. GET /anything returns the method, path, headers and body digest it saw, and
the identity read from x-forwarded-client-cert (or the error reading it); /bytes?n=N sends
N bytes, /slow?s=S waits S seconds, /ws upgrades to a tunnel that echoes in upper case.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from mtlskit.errors import ConfigError, MtlsKitError
from mtlskit.identity import IdentityHeaderError, from_headers

__all__ = ["EchoServer", "TCPEchoServer", "main", "serve"]


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
    def host(self) -> str:
        """The bound address; 127.0.0.1 when bound to every interface (reachable from here)."""
        bound = str(self.httpd.server_address[0])
        return "127.0.0.1" if bound == "0.0.0.0" else bound  # noqa: S104 - compared, not bound

    @property
    def url(self) -> str:
        """http://host:port."""
        return f"http://{self.host}:{self.port}"

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


def serve(host: str, port: int, *, tcp: bool = False, out: TextIO | None = None) -> int:
    """Run the echo workload in the foreground until Ctrl-C; print one line with its address.

    Args:
        host: the address to listen on (IPv4; 0.0.0.0 for every interface).
        port: the port (0: any free one, printed).
        tcp: the raw TCP echo instead of HTTP (for a gateway's TCP routes).
        out: where the line goes (default stdout).

    Returns:
        0, once interrupted.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, not a valid host).
    """
    stream = sys.stdout if out is None else out
    try:
        server = TCPEchoServer(host, port) if tcp else EchoServer(host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} for the echo workload: {exc.strerror or exc}",
            "pass another --port (0: any free port) or a local --host",
        ) from exc
    where = f"tcp://{server.host}:{server.port}" if tcp else server.url
    kind = "TCP echo" if tcp else "echo"
    with server:
        try:
            # Flushed: whoever started this may be reading stdout through a pipe for the URL.
            print(f"{kind} workload on {where} (Ctrl-C stops it)", file=stream, flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=stream)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--host, --port and --tcp: shared by this module's main() and `mtlskit echo`."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any)")
    parser.add_argument("--tcp", action="store_true", help="raw TCP echo instead of HTTP")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mtlskit.demo.echo [--host H] [--port N] [--tcp]`; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mtlskit.demo.echo",
        description="A workload to put behind an mTLS gateway: it answers every request "
        "with what it received (method, path, headers, body digest) and the client "
        "identity the gateway forwarded.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(args.host, args.port, tcp=args.tcp)
    except MtlsKitError as exc:
        # This module is an entry point of its own, so it ends errors as cli.main does.
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
