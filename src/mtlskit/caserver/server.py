"""`ca serve`'s HTTPS listener: a thread per connection, pyOpenSSL, bounded and timed out.

pyOpenSSL rather than the stdlib ssl module because the client certificate must reach the
application unjudged: OpenSSL's own check would refuse an expired or server-profile
(serverAuth-only) certificate in the handshake with a bare alert, where /renew answers
with a JSON reason. The handshake still proves the caller holds the certificate's key;
protocol.check_presented decides the rest.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from cryptography import x509
from OpenSSL import SSL

from mtlskit.caserver.protocol import (
    MAX_BODY,
    Refusal,
    bearer_token,
    error_body,
    refusal,
)
from mtlskit.caserver.service import CAService
from mtlskit.errors import TLSConfigError
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import key_matches_certificate, load_certificates, load_private_key
from mtlskit.tlsconfig import TLS12_CIPHERS

__all__ = ["CAServer", "ServeOptions"]

MAX_HEAD: Final = 16 * 1024  # request line and headers; ours need a few hundred bytes
PEM_CHAIN: Final = "application/pem-certificate-chain"  # RFC 8555 section 9.1


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How `ca serve` runs.

    Attributes:
        directory: the CA directory.
        host: the address to listen on.
        port: the port (0: any free one).
        cert: this server's certificate chain (PEM, leaf first).
        key: its private key.
        password: the CA keys' password, when encrypted.
        crl_next_update: the published CRL's lifetime.
        ttls: certificate lifetime per profile.
        timeout: seconds a client may take for the handshake and for each read or write.
        max_connections: connections served at once; more are closed at once.
    """

    directory: Path
    host: str
    port: int
    cert: Path
    key: Path
    password: bytes | None = None
    crl_next_update: timedelta = timedelta(hours=1)
    ttls: dict[str, timedelta] | None = None
    timeout: float = 10.0
    max_connections: int = 128


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _tls_context(cert: Path, key: Path, roots: list[x509.Certificate]) -> SSL.Context:
    chain = load_certificates(read_file(cert, "the CA server's certificate chain"), cert)
    private_key = load_private_key(read_file(key, "the CA server's private key"), key)
    if not key_matches_certificate(private_key, chain[0]):
        raise TLSConfigError(
            f"{key} does not match the first certificate in {cert}",
            "give the key created with that certificate, leaf first in --cert",
        )
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)  # SSLv3-TLS1.1: broken or deprecated
    ctx.set_cipher_list(TLS12_CIPHERS.encode())
    ctx.set_options(
        SSL.OP_NO_COMPRESSION  # CRIME
        | SSL.OP_NO_RENEGOTIATION  # renegotiation DoS, CVE-2009-3555 class bugs
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_TICKET  # a CA's callers connect rarely; no resumption state to keep
    )
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.use_certificate(chain[0])
    for extra in chain[1:]:
        ctx.add_extra_chain_cert(extra)
    ctx.use_privatekey(private_key)
    for root in roots:
        ctx.add_client_ca(root)  # tell clients which certificate to present
    # Optional at the TLS layer (no VERIFY_FAIL_IF_NO_PEER_CERT), and every verdict
    # overruled: /renew judges the certificate itself and answers with a reason.
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, lambda *_: True)
    return ctx


class _Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


class CAServer:
    """The HTTPS front of a CAService; `with CAServer(options):` serves on a thread.

    Raises:
        TLSConfigError, CertificateLoadError: the server's certificate or key.
        PKIError: the CA directory cannot be opened.
        OSError: the address cannot be bound.
    """

    def __init__(self, options: ServeOptions, log: Callable[[str], None] = _log_to_stderr) -> None:
        self.options = options
        self.log = log
        self.service = CAService(
            options.directory,
            password=options.password,
            crl_next_update=options.crl_next_update,
            ttls=options.ttls,
        )
        try:
            roots = load_certificates(self.service.root_pem)
            self.context = _tls_context(options.cert, options.key, roots)
            self.service.crl()  # the first CRL before the first request
            self.sock = socket.create_server((options.host, options.port), backlog=128)
        except BaseException:
            self.service.close()
            raise
        self.sock.settimeout(0.5)  # the accept loop looks at the stop flag this often
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(options.max_connections)
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """https://host:port of this server."""
        host, port = self.address
        return f"https://{host}:{port}"

    # -- lifecycle -------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Accept until stop(); a CRL refresher runs beside the accept loop."""
        refresher = threading.Thread(target=self._refresh_crl, name="mtlskit-crl", daemon=True)
        refresher.start()
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                # EMFILE and friends: say so and go on; the listener itself is fine.
                self.log(f"{_stamp()} accept failed: {exc}")
                self._stop.wait(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                self.log(f"{_stamp()} {_peer(peer)} - - 503 busy (max connections)")
                conn.close()
                continue
            thread = threading.Thread(target=self._serve_connection, args=(conn, peer), daemon=True)
            thread.start()
        refresher.join(5)

    def _refresh_crl(self) -> None:
        # Wake well before the CRL's half-life: the service decides whether it is due.
        period = min(max(self.options.crl_next_update.total_seconds() / 8, 1.0), 60.0)
        while not self._stop.wait(period):
            try:
                self.service.crl()
            except Exception as exc:  # keep serving the last CRL; say why
                self.log(f"{_stamp()} crl refresh failed: {exc}")

    def stop(self) -> None:
        """Stop accepting and close the listener (connections being served finish)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()

    def close(self) -> None:
        """Release the CA database (after stop and the accept loop's end)."""
        self.service.close()

    def __enter__(self) -> CAServer:
        thread = threading.Thread(target=self.serve_forever, name="mtlskit-ca-serve", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(10)
        self.close()

    # -- one connection --------------------------------------------------------------------
    def _serve_connection(self, raw: socket.socket, peer: Any) -> None:
        started = time.monotonic()
        try:
            raw.settimeout(None)  # blocking, with kernel timeouts OpenSSL's reads obey
            seconds = int(self.options.timeout)
            micros = int((self.options.timeout - seconds) * 1e6)
            timeval = struct.pack("ll", seconds, micros)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            tls = SSL.Connection(self.context, raw)
            tls.set_accept_state()
            try:
                tls.do_handshake()
                # Each read waits at most `timeout`, and the whole request 3 times that: a
                # client trickling a byte at a time cannot hold a connection for long.
                request = _read_request(tls, started + 3 * self.options.timeout)
            except (SSL.Error, OSError) as exc:
                self.log(f"{_stamp()} {_peer(peer)} - - - tls/read failed: {_tls_reason(exc)}")
                return
            if isinstance(request, Refusal):
                reply = _Reply(tls, peer, "- -", None, started)
                reply.refuse(request)
                self.log(reply.line)
                return
            leaf = tls.get_peer_certificate(as_cryptography=True)
            try:
                self._route(tls, peer, request, leaf, started)
            except Exception as exc:  # one request failed; the server goes on and says why
                reply = _Reply(tls, peer, f"{request.method} {request.path}", leaf, started)
                reply.refuse(refusal("issuance_failed", f"internal error: {exc!r}"))
                self.log(reply.line)
        finally:
            raw.close()
            self._slots.release()

    def _route(
        self,
        tls: SSL.Connection,
        peer: Any,
        request: _Request,
        leaf: x509.Certificate | None,
        started: float,
    ) -> None:
        files: dict[str, Callable[[], tuple[str, bytes]]] = {
            "/roots": lambda: (PEM_CHAIN, self.service.root_pem),
            "/intermediates": lambda: (PEM_CHAIN, self.service.intermediates_pem),
            "/crl": lambda: ("application/pkix-crl", self.service.crl().der),
            "/crl.pem": lambda: ("application/x-pem-file", self.service.crl().pem),
        }
        reply = _Reply(tls, peer, f"{request.method} {request.path}", leaf, started)
        path = request.path.split("?", 1)[0]
        if path in files and request.method in ("GET", "HEAD"):
            ctype, body = files[path]()
            reply.send(200, ctype, body, head_only=request.method == "HEAD")
        elif path in ("/renew", "/sign") and request.method == "POST":
            if path == "/renew":
                outcome = self.service.renew(leaf, request.body)
            else:
                token = bearer_token(request.headers.get("authorization"))
                outcome = self.service.sign(token, request.body)
            if outcome.refused is not None:
                note = f"{outcome.refused.code} {outcome.subject}".strip()
                reply.refuse(outcome.refused, note)
            else:
                assert outcome.chain is not None  # noqa: S101 - an Outcome holds one of them
                note = f"issued {outcome.subject} serial={outcome.serial}"
                note += "".join(f"; note: {n}" for n in outcome.notes)
                reply.send(200, PEM_CHAIN, outcome.chain, note=note)
        elif path in files or path in ("/renew", "/sign"):
            reply.refuse(refusal("method_not_allowed", f"{request.method} {path} is not served"))
        else:
            reply.refuse(refusal("not_found", f"{path} is not a path of this CA"))
        self.log(reply.line)


@dataclass
class _Reply:
    """One response and the log line that records it."""

    tls: SSL.Connection
    peer: Any
    request_line: str
    leaf: x509.Certificate | None
    started: float
    line: str = ""

    def refuse(self, refused: Refusal, note: str = "") -> None:
        body = error_body(refused)
        self.send(refused.status, "application/json", body, note=note or refused.code)

    def send(
        self, status: int, ctype: str, body: bytes, *, note: str = "", head_only: bool = False
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            self.tls.sendall(head + (b"" if head_only else body))
            self.tls.shutdown()
        except (SSL.Error, OSError):
            pass  # the client left; the log line still records the answer
        who = self.leaf.subject.rfc4514_string() if self.leaf is not None else "-"
        ms = (time.monotonic() - self.started) * 1000
        line = (
            f"{_stamp()} {_peer(self.peer)} {self.request_line} {status} {len(body)}B "
            f"{ms:.0f}ms cert={who} {note}"
        ).rstrip()
        # Paths and subjects are the client's words: one log line stays one line.
        self.line = "".join(c if c.isprintable() else "?" for c in line)


def _stamp() -> str:
    return f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "-"


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, SSL.WantReadError | SSL.WantWriteError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _read_request(tls: SSL.Connection, deadline: float) -> _Request | Refusal:
    """Read one request: a head of at most MAX_HEAD, a body of at most MAX_BODY bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        if time.monotonic() > deadline:
            return refusal("bad_request", "the request took too long to arrive")
        if len(data) > MAX_HEAD:
            return refusal("too_large", "the request head is over 16 KiB")
        try:
            chunk = tls.recv(8192)
        except SSL.ZeroReturnError:
            chunk = b""
        if not chunk:
            return refusal("bad_request", "the connection closed before the request ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return refusal("bad_request", f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return refusal("bad_request", f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    method, path = parts[0], parts[1]
    if "transfer-encoding" in headers:
        return refusal("length_required", "chunked bodies are not accepted")
    length_text = headers.get("content-length")
    if length_text is None:
        if method == "POST":
            return refusal("length_required", "a POST needs a Content-Length")
        return _Request(method, path, headers, b"")
    if not length_text.isdigit():
        return refusal("bad_request", f"Content-Length {length_text!r} is not a number")
    length = int(length_text)
    if length > MAX_BODY:
        return refusal("too_large", f"the body is {length} bytes")
    while len(body) < length:
        if time.monotonic() > deadline:
            return refusal("bad_request", "the request body took too long to arrive")
        try:
            chunk = tls.recv(min(65536, length - len(body)))
        except SSL.ZeroReturnError:
            chunk = b""
        if not chunk:
            return refusal("bad_request", "the connection closed before the body ended")
        body += chunk
    return _Request(method, path, headers, body[:length])
