"""The server side of TLS on each connection: asyncio's SSLProtocol, told to explain failures.

asyncio's `create_server(ssl=...)` swallows handshake failures (an `ssl.SSLError` is an
OSError, logged only in debug mode) and drops the alert OpenSSL wrote for the client,
so the client sees a reset instead of "alert certificate required". uvloop's `start_tls`
also stalls a handshake now and then after an earlier one succeeded (seen with uvloop
0.23). So the gateway uses asyncio's own SSLProtocol, on whatever loop runs, with three
changes made here and nowhere else: a failed handshake is reported to a callback with the
exception, the alert is flushed to the client before the socket closes, and transports
are closed through public methods only (uvloop's have no `_force_close`).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

__all__ = ["READ_SIZE", "HandshakeTimeoutError", "ServerTLSProtocol"]

READ_SIZE = 64 * 1024


class HandshakeTimeoutError(TimeoutError):
    """The client did not finish its handshake in time."""


class ServerTLSProtocol(sslproto.SSLProtocol):
    """Server-side TLS for one connection; `on_failure(peer, exc)` hears every failure."""

    # asyncio allocates (and zero-fills) a receive buffer of max_size per connection:
    # 256 KiB by default. A TLS record is at most ~16 KiB, so 32 KiB loses nothing and
    # saves the allocation's page faults on every handshake and 224 KiB per connection.
    max_size = 32 * 1024

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        *,
        handshake_timeout: float,
        on_failure: Callable[[Any, BaseException], None],
        read_buffer: bytearray,
    ) -> None:
        waiter: Any = None  # nobody awaits the handshake: failures go to on_failure
        timeout: Any = handshake_timeout  # typeshed says int; asyncio takes seconds as float
        super().__init__(
            loop,
            app_protocol,
            context,
            waiter,
            server_side=True,
            call_connection_made=True,
            ssl_handshake_timeout=timeout,
        )
        self._on_failure = on_failure
        self._peer: Any = None
        self._timed_out = False
        self._alert_sent = False
        self._reported = False
        # One buffer per event loop, shared by its connections: a read copies out of it
        # before returning, and a loop runs one callback at a time.
        self._buffer = read_buffer
        self._view = memoryview(read_buffer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = transport.get_extra_info("peername")
        super().connection_made(transport)

    def _check_handshake_timeout(self) -> None:
        inner: Any = self  # asyncio's private state, typed loosely by typeshed
        if inner._state == sslproto.SSLProtocolState.DO_HANDSHAKE:
            self._timed_out = True
        super()._check_handshake_timeout()

    def connection_lost(self, exc: BaseException | None) -> None:
        inner: Any = self
        if inner._state == sslproto.SSLProtocolState.DO_HANDSHAKE and not self._reported:
            # asyncio does not call _on_handshake_complete when the connection goes away
            # mid-handshake (a timeout abort, or the client hanging up): report it here.
            self._report(
                HandshakeTimeoutError("the TLS handshake did not finish in time")
                if self._timed_out
                else exc or ConnectionResetError("the client closed the connection")
            )
        super().connection_lost(exc)

    def _report(self, exc: BaseException) -> None:
        self._reported = True
        try:
            self._on_failure(self._peer, exc)
        except Exception:  # noqa: S110 - reporting must never break the loop
            pass

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None and not self._reported:
            exc = handshake_exc
            if isinstance(exc, type):
                exc = exc()
            if self._timed_out:
                exc = HandshakeTimeoutError("the TLS handshake did not finish in time")
            # OpenSSL has written the alert (certificate required, unknown CA, ...) into
            # the outgoing buffer: send it, so the client can tell the user why.
            inner: Any = self
            try:
                alert = inner._outgoing.read()
                if alert and inner._transport is not None:
                    inner._transport.write(alert)
                    self._alert_sent = True
            except (ssl.SSLError, OSError, RuntimeError):
                pass
            try:
                self._on_failure(self._peer, exc)
            except Exception:  # noqa: S110 - reporting must never break the loop
                pass
        super()._on_handshake_complete(handshake_exc)

    def _fatal_error(self, exc: BaseException, message: str = "") -> None:
        transport: Any = self._transport
        if transport is not None:
            if self._alert_sent:
                transport.close()  # flushes the alert, then closes
            else:
                transport.abort()

    def _do_read__copied(self) -> None:
        # asyncio's version reads into a fresh 256 KiB bytes object each time and loops
        # until OpenSSL raises "want read". We read into one reusable buffer and stop as
        # soon as neither OpenSSL nor the incoming BIO holds more: no exception and no
        # large allocation per request (the profile's biggest item on keep-alive).
        inner: Any = self
        sslobj = inner._sslobj
        incoming = inner._incoming
        view = self._view
        parts: list[bytes] = []
        eof = False
        try:
            while True:
                count = sslobj.read(READ_SIZE, self._buffer)
                if not count:
                    eof = True  # close_notify
                    break
                parts.append(view[:count].tobytes())
                if not incoming.pending and not sslobj.pending():
                    break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        if parts:
            inner._app_protocol.data_received(parts[0] if len(parts) == 1 else b"".join(parts))
        if eof:
            inner._call_eof_received()
            inner._start_shutdown()

    def buffer_updated(self, nbytes: int) -> None:
        # Steady state (connection up, app reading, nothing queued): decrypt and deliver
        # without asyncio's state dispatch and its outgoing/app-writing checks, which
        # only matter while a handshake, a shutdown or a backlog is in progress.
        inner: Any = self
        if (
            inner._state is not sslproto.SSLProtocolState.WRAPPED
            or inner._app_reading_paused
            or inner._write_backlog
        ):
            super().buffer_updated(nbytes)
            return
        inner._incoming.write(inner._ssl_buffer_view[:nbytes])
        try:
            self._do_read__copied()
            outgoing = inner._outgoing
            if outgoing.pending and inner._transport is not None:
                inner._transport.write(outgoing.read())  # e.g. a TLS 1.3 KeyUpdate reply
            if inner._ssl_reading_paused or inner._incoming.pending >= inner._incoming_high_water:
                inner._control_ssl_reading()
        except Exception as exc:
            inner._fatal_error(exc, "Fatal error on SSL protocol")

    def send(self, data: bytes) -> None:
        """Write application data (the app transport's write, minus its checks).

        The common case (connection up, nothing queued, socket not pushing back):
        encrypt straight into the outgoing BIO and hand the records to the transport,
        skipping asyncio's backlog bookkeeping. Anything else takes asyncio's path.
        """
        inner: Any = self
        if (
            inner._state is not sslproto.SSLProtocolState.WRAPPED
            or inner._write_backlog
            or inner._ssl_writing_paused
            or not data
        ):
            if data:
                super()._write_appdata([data])
            return
        try:
            count = inner._sslobj.write(data)
            records = inner._outgoing.read()
            if records:
                inner._transport.write(records)
        except Exception as exc:
            inner._fatal_error(exc, "Fatal error on SSL protocol")
            return
        if count < len(data):  # a memory BIO takes it all; defensive
            super()._write_appdata([data[count:]])
        elif inner._app_writing_paused:
            inner._control_app_writing()

    def _write_appdata(self, list_of_data: Any) -> None:
        # asyncio's app transport (write, writelines) lands here: take the fast path per
        # buffer; send() falls back to asyncio's queue whenever it must, in order.
        for data in list_of_data:
            self.send(data)

    def _check_shutdown_timeout(self) -> None:
        inner: Any = self
        shutting = (sslproto.SSLProtocolState.FLUSHING, sslproto.SSLProtocolState.SHUTDOWN)
        if inner._state in shutting and inner._transport is not None:
            inner._transport.abort()
