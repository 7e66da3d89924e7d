"""`request`: one curl-like HTTP/1.1 request over mTLS that fails closed on an unverified server."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httptools

from mtlskit import __version__
from mtlskit.client.connect import (
    Attempt,
    ClientIdentity,
    ServerTrust,
    ca_names,
    chain_complete,
    connect,
    identity_context,
    server_chain,
    verify_server,
)
from mtlskit.client.preflight import preflight
from mtlskit.client.trace import Observation, Trace, walk
from mtlskit.errors import ConfigError

__all__ = ["RequestResult", "Response", "parse_header", "request"]

_MAX_RESPONSE = 64 * 1024 * 1024  # stop reading a runaway response


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response as received."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class RequestResult:
    """The outcome of `mtlskit request`; `to_json()` is the documented --json object."""

    url: str
    attempt: Attempt
    response: Response | None
    trace: Trace
    notes: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        """The outcome code."""
        return self.trace.code

    def to_json(self) -> dict[str, Any]:
        """Stable fields (docs/client.md)."""
        r = self.response
        return {
            "url": self.url,
            **self.trace.outcome_json(),
            "tls": self.attempt.tls_json(),
            "status": r.status if r else None,
            "headers": [list(h) for h in r.headers] if r else [],
            "body": r.body.decode("utf-8", "replace") if r else None,
            "events": self.attempt.events_json(),
            "notes": [*self.trace.notes, *self.notes],
        }


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' -> (name, value).

    Raises:
        ConfigError: no colon, or an empty name.
    """
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n"):
        raise ConfigError(f"-H {text!r} is not 'Name: value'", "write e.g. -H 'Accept: */*'")
    return name.strip(), value.strip()


class _Collector:
    """httptools callbacks -> one Response."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


def _exchange(sock: ssl.SSLSocket, head: bytes, data: bytes) -> Response:
    sock.sendall(head + data)
    collector = _Collector()
    parser: Any = httptools.HttpResponseParser(collector)
    total = 0
    while not collector.done and total < _MAX_RESPONSE:
        chunk = sock.recv(65536)
        if not chunk:
            break
        total += len(chunk)
        parser.feed_data(chunk)
    return Response(parser.get_status_code(), tuple(collector.headers), b"".join(collector.body))


def _head(
    method: str, host: str, port: int, target: str, headers: Sequence[tuple[str, str]], size: int
) -> bytes:
    given = {name.lower() for name, _ in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host}" + ("" if port == 443 else f":{port}"))
    if "user-agent" not in given:
        lines.append(f"User-Agent: mtlskit/{__version__}")
    if "accept" not in given:
        lines.append("Accept: */*")
    if size and "content-type" not in given:
        lines.append("Content-Type: application/x-www-form-urlencoded")  # as curl -d
    if size or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {size}")
    lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _denial(body: bytes) -> str:
    """The reason in a refusal: the mtlskit gateway's JSON page, or the start of the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        page = json.loads(text)
    except ValueError:
        page = None
    if isinstance(page, dict) and isinstance(page.get("reason"), str):
        return str(page["reason"])[:300]  # gateway/refusal_page.py
    prefix = "403 Forbidden: "  # an mtlskit gateway before the refusal page
    return text[len(prefix) :] if text.startswith(prefix) else text[:200]


def request(
    url: str,
    *,
    trust: ServerTrust,
    identity: ClientIdentity | None,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    data: bytes = b"",
    servername: str | None = None,
    timeout: float = 30.0,
    now: datetime | None = None,
) -> RequestResult:
    """Send one HTTP/1.1 request over mTLS; nothing is sent unless the server verified.

    The server is verified twice: by OpenSSL during the handshake (trust.ca_file or the
    system store, host name checked) and by the trust module on the chain as sent, which
    also gives the reason code when either refuses.

    Raises:
        ConfigError: not an https:// URL.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"{url!r} is not an https:// URL", "write e.g. https://host:8443/path")
    host, port = parts.hostname, parts.port or 443
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sn = servername or host
    now = now or datetime.now(UTC)
    with identity_context(identity, ca=trust.ca_file, check_hostname=True) as ctx:
        ctx.set_alpn_protocols(["http/1.1"])
        a = connect(host, port, ctx, servername=sn, timeout=timeout)
    sent, _ = server_chain(a)
    result = verify_server(sent, trust, host=sn, now=now) if sent else None
    response = None
    if a.sock is not None and result is not None and result.valid:
        try:
            response = _exchange(
                a.sock, _head(method, host, port, target, headers, len(data)), data
            )
            a.note(after="accepted")
        except ssl.SSLError as exc:
            a.note(after="alert")
            a.errors.append(str(exc.reason or exc))
        except (OSError, httptools.HttpParserError) as exc:
            a.note(after="closed")
            a.errors.append(f"reading the response: {exc}")
    a.close()  # fail closed: an unverified connection never carries the request
    # The same preflight as probe's, so both name the same cause for a refusal.
    pre = preflight(identity.chain, ca_names(a)[0], now=now) if identity else None
    obs = Observation.of(
        # an alert after the request means the server did not accept the client
        replace(a.facts, established=a.facts.established and a.facts.after != "alert"),
        servername=sn,
        server_reason=result.code.value if result else "",
        server_explanation=result.explanation if result else "",
        server_fix=result.fix if result else "",
        chain_complete=chain_complete(sent, trust.anchors) if sent else None,
        server_chain=tuple(c.subject.rfc4514_string() for c in sent),
        client_chain=tuple(c.subject.rfc4514_string() for c in identity.chain) if identity else (),
        preflight_cause=pre.likely_cause if pre else "",
        preflight_fix=pre.fix if pre else "",
        client_fine=pre.clean_bill if pre else "",
        http_status=response.status if response else 0,
        http_reason=_denial(response.body) if response and response.status == 403 else "",
    )
    return RequestResult(
        url, a, response, walk(a.recorder.events, obs), tuple(a.errors + a.recorder.errors)
    )
