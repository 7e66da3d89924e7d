"""TLS on each client connection: pyOpenSSL over the non-blocking socket, driven by the loop.

OpenSSL owns the socket: SSL_read and SSL_write make the system calls themselves, and the
event loop only says when the socket is readable or writable (add_reader/add_writer, on
uvloop or asyncio alike). There is no memory BIO and no Python record layer. A
`TLSStream` does the handshake, then hands decrypted bytes to its protocol (an
asyncio.Protocol-shaped object: data_received, eof_received, connection_lost,
pause_writing, resume_writing) and offers it the transport calls it needs (write, close,
abort, pause_reading, resume_reading).

Closing is graceful: pending writes are flushed, close_notify is sent, the write side is
shut, and the stream reads (and drops) what the peer still sends until it closes or a
linger deadline passes, so that a refusal (a TLS alert, a 403) is read by the client
instead of being destroyed by a TCP reset.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from cryptography import x509
from OpenSSL import SSL

from mtlskit.gateway.readiness import Readiness

__all__ = ["HIGH_WATER", "LINGER_SECONDS", "READ_SIZE", "TLSStream"]

READ_SIZE: Final = 65536
RECORD: Final = 16384  # the largest TLS plaintext record
# Above this many unsent bytes the protocol is told to pause (asyncio's default too).
HIGH_WATER: Final = 64 * 1024
# How long a closed connection keeps reading what the peer still sends (nginx: lingering_time).
LINGER_SECONDS: Final = 2.0

_HANDSHAKE, _OPEN, _CLOSING, _LINGER, _CLOSED = range(5)


class TLSStream(Readiness):
    """One accepted socket under TLS.

    Args:
        loop: the running loop.
        sock: the accepted, non-blocking socket (the stream owns and closes it).
        context: the SSL.Context of the gateway state this connection is accepted with.
        protocol: gets the decrypted bytes once `on_open` has accepted the stream.
        on_open: called after a successful handshake (the stream is readable then).
        on_failure: called once if the handshake fails, with the exception; the alert
            OpenSSL wrote is already on its way to the client.
        deadlines: the streams the gateway's sweeper checks for a deadline; this stream is
            in it while it handshakes or lingers (an open connection has its own checks).

    Attributes:
        verify_errors: (depth, X509_V_ERR code, certificate) for each certificate OpenSSL
            refused (written by tlsconfig's verify callback).
        started: loop time of the accept (the handshake deadline counts from it).
        flight: how far the handshake got (gateway.flight writes it).
    """

    __slots__ = (
        "_buffer",
        "_closed_cb",
        "_deadlines",
        "_eof",
        "_linger_until",
        "_on_failure",
        "_on_open",
        "_opened",
        "_paused",
        "_protocol_paused",
        "_read_blocked",
        "_state",
        "conn",
        "flight",
        "peer",
        "protocol",
        "sock",
        "started",
        "verify_errors",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        context: SSL.Context,
        protocol: Any,
        *,
        peer: Any,
        on_open: Callable[[TLSStream], None],
        on_failure: Callable[[TLSStream, BaseException], None],
        deadlines: set[TLSStream],
    ) -> None:
        super().__init__(loop, sock.fileno())
        self.sock = sock
        self.peer = peer
        self.protocol = protocol
        self.conn = SSL.Connection(context, sock)
        self.conn.set_accept_state()
        self.conn.set_app_data(self)
        self.verify_errors: list[tuple[int, int, x509.Certificate]] = []
        self.started = loop.time()
        self.flight = b""
        self._on_open = on_open
        self._on_failure = on_failure
        self._state = _HANDSHAKE
        self._buffer: deque[memoryview | bytes] = deque()
        self._read_blocked = False  # a read stopped until the socket takes OpenSSL's write
        self._paused = False  # the protocol asked us not to read
        self._protocol_paused = False  # we asked the protocol not to write
        self._eof = False  # the peer has closed its side
        self._opened = False  # the handshake succeeded: the protocol owns the stream
        self._linger_until = 0.0
        self._closed_cb: Callable[[TLSStream], None] | None = None
        self._deadlines = deadlines

    # -- handshake -------------------------------------------------------------------------
    def start(self) -> None:
        """Begin the handshake (the client's hello is usually already there)."""
        self._deadlines.add(self)
        self._want_read()
        self._handshake()

    @property
    def handshaking(self) -> bool:
        """True until the handshake has finished or failed."""
        return self._state == _HANDSHAKE

    def _handshake(self) -> None:
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            self._stop_writing()
            return
        except SSL.WantWriteError:
            self._want_write()
            return
        except (SSL.Error, OSError) as exc:
            self._failed(exc)
            return
        self._state = _OPEN
        self._opened = True
        self._deadlines.discard(self)
        self._stop_writing()
        self._on_open(self)
        if self._state == _OPEN and self.conn.pending():  # a request came with the Finished
            self.loop.call_soon(self._on_readable)

    def fail(self, exc: BaseException) -> None:
        """End a handshake from outside (its deadline passed): report it and close."""
        if self._state == _HANDSHAKE:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self._state = _CLOSING
        try:
            self._on_failure(self, exc)
        finally:
            # OpenSSL has written its alert to the socket: shut our side and read until
            # the client has read it and closed, so it never sees a reset instead.
            self._linger()

    # -- reading ---------------------------------------------------------------------------
    def _on_readable(self) -> None:
        state = self._state
        if state == _OPEN:
            if not self._paused:  # a call scheduled before a pause: leave the bytes queued
                self._read()
        elif state == _HANDSHAKE:
            self._handshake()
        elif state == _LINGER:
            self._drain()
        elif state == _CLOSING and not self._eof:
            self._read()

    def _read(self) -> None:
        conn = self.conn
        chunks: list[bytes] = []
        eof = False
        error: BaseException | None = None
        try:
            while len(chunks) < 16:  # then let other connections have the loop
                chunk = conn.recv(READ_SIZE)
                chunks.append(chunk)
                # SSL_read returns one record. Read on only when OpenSSL holds decrypted
                # bytes or a full record says the client is streaming; otherwise the
                # loop calls again if more arrives (no WantRead exception per request).
                if len(chunk) < RECORD and not conn.pending():
                    break
        except SSL.WantReadError:
            pass
        except SSL.WantWriteError:  # OpenSSL must write first (a TLS 1.3 KeyUpdate reply)
            self._read_blocked = True
            self._want_write()
        except SSL.ZeroReturnError:  # close_notify, or EOF (OP_IGNORE_UNEXPECTED_EOF)
            eof = True
        except (SSL.Error, OSError) as exc:
            error = exc
        if chunks and self._state == _OPEN:
            self.protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        # (bytes that arrive while we close are dropped: the protocol is done with them)
        if error is not None:
            self._lost(error)
        elif eof:
            self._peer_closed()

    def _peer_closed(self) -> None:
        self._eof = True
        self._stop_reading()
        if self._state == _OPEN:
            keep_open = self.protocol.eof_received()
            if not keep_open:
                self.close()
        elif self._state in (_CLOSING, _LINGER):
            if not self._buffer:
                self._finish(None)

    def pause_reading(self) -> None:
        """Stop delivering data (the protocol's upstream pushes back)."""
        if not self._paused:
            self._paused = True
            if self._state == _OPEN:
                self._stop_reading()

    def resume_reading(self) -> None:
        """Deliver data again."""
        if self._paused:
            self._paused = False
            if self._state == _OPEN and not self._eof:
                self._want_read()
                if self.conn.pending():  # already decrypted while we were paused
                    self.loop.call_soon(self._on_readable)

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        """Encrypt and send; what the socket cannot take now is kept, in order."""
        if self._state != _OPEN or not data:
            return
        if self._buffer:
            self._buffer.append(data)
            self._check_high()
            return
        try:
            sent = self.conn.send(data)
        except (SSL.WantWriteError, SSL.WantReadError):
            sent = 0
        except (SSL.Error, OSError) as exc:
            self._lost(exc)
            return
        if sent < len(data):
            # OpenSSL accepts a moved buffer on retry (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
            # which pyOpenSSL sets), so the rest can be a view.
            self._buffer.append(memoryview(data)[sent:])
            self._want_write()
            self._check_high()

    def _check_high(self) -> None:
        if not self._protocol_paused and sum(map(len, self._buffer)) > HIGH_WATER:
            self._protocol_paused = True
            self.protocol.pause_writing()

    def _on_writable(self) -> None:
        if self._state == _HANDSHAKE:
            self._handshake()
            return
        buffer = self._buffer
        conn = self.conn
        while buffer:
            data = buffer[0]
            try:
                sent = conn.send(data)
            except (SSL.WantWriteError, SSL.WantReadError):
                return
            except (SSL.Error, OSError) as exc:
                self._lost(exc)
                return
            if sent < len(data):
                buffer[0] = memoryview(data)[sent:]
                return
            buffer.popleft()
        self._stop_writing()
        if self._protocol_paused and self._state == _OPEN:
            self._protocol_paused = False
            self.protocol.resume_writing()
        if self._state == _CLOSING:
            self._shutdown()
        elif self._state == _OPEN and (self._read_blocked or self.conn.pending()):
            self._read_blocked = False  # the read that had to wait for this write
            self.loop.call_soon(self._on_readable)

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Flush what is queued, send close_notify, then close (lingering)."""
        if self._state != _OPEN:
            return
        self._state = _CLOSING
        if self._eof:
            self._stop_reading()
        else:
            self._want_read()  # to see the peer's EOF; what it sends now is dropped
        if not self._buffer:
            self._shutdown()

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        if self._state != _CLOSED:
            self._buffer.clear()
            self._finish(None)

    def get_write_buffer_size(self) -> int:
        """Bytes queued for the client that the socket has not taken yet."""
        return sum(map(len, self._buffer))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The one transport fact connections ask for: peername."""
        return self.peer if name == "peername" else default

    def _shutdown(self) -> None:
        try:
            self.conn.shutdown()  # our close_notify; the peer's is not waited for here
        except (SSL.Error, OSError):
            pass
        if self._eof:
            self._finish(None)
        else:
            self._linger()

    def _linger(self) -> None:
        self._state = _LINGER
        self._stop_writing()
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._finish(None)
            return
        self._linger_until = self.loop.time() + LINGER_SECONDS
        self._deadlines.add(self)
        self._want_read()

    def _drain(self) -> None:
        try:
            while self.sock.recv(READ_SIZE):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish(None)  # EOF (or an error): the peer is gone

    def check_linger(self, now: float) -> None:
        """Called by the gateway's sweeper: end a linger that outlived its deadline."""
        if self._state == _LINGER and now > self._linger_until:
            self._finish(None)

    def _lost(self, exc: BaseException | None) -> None:
        self._buffer.clear()
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._deadlines.discard(self)
        self._stop_reading()
        self._stop_writing()
        self.sock.close()
        if self._opened:
            self.protocol.connection_lost(exc)
        if self._closed_cb is not None:
            self._closed_cb(self)

    def on_closed(self, callback: Callable[[TLSStream], None]) -> None:
        """Call `callback(stream)` once the socket is closed (the gateway's accounting)."""
        self._closed_cb = callback
