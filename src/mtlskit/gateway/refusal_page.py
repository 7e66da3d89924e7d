"""The body of a 401/403 for a person or a program: HTML, JSON or a gRPC status (pure).

A caller refused for its certificate (none given on a route that needs one, or one the
rules do not admit) is told, in its own format, what the gateway accepts and what it saw:
the CA names it asks for, how to install NAME.p12 in a browser, the certificate presented
and why it was refused. Everything shown that a client chose (subjects, SANs, the path) is
escaped: a subject may hold `<script>`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from mtlskit.gateway.grpc import PERMISSION_DENIED, UNAUTHENTICATED, grpc_error

__all__ = ["Refusal", "negotiate", "render"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the caller is told.

    Attributes:
        status: 401 (no certificate) or 403 (a certificate the rules do not admit).
        reason: one sentence naming the route and the rule that decided.
        ca_names: the client CA names the gateway asks for (RFC 4514 text).
        presented: the subject of the certificate presented, "" when none.
        why: why that certificate was refused, "" when none was presented.
        route: the route that refused, "" for the default.
    """

    status: int
    reason: str
    ca_names: tuple[str, ...] = ()
    presented: str = ""
    why: str = ""
    route: str = ""

    def to_json(self) -> dict[str, object]:
        """The JSON object of a refusal (stable keys)."""
        return {
            "status": self.status,
            "error": "client_certificate_required" if self.status == 401 else "forbidden",
            "reason": self.reason,
            "route": self.route,
            "accepted_ca_names": list(self.ca_names),
            "presented_certificate": self.presented or None,
            "why": self.why or None,
        }


def negotiate(accept: str, content_type: str = "") -> str:
    """ "grpc", "html" or "json": the format for a request's Accept and Content-Type."""
    if content_type.lower().startswith("application/grpc"):
        return "grpc"
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "html" if "text/html" in kinds or "application/xhtml+xml" in kinds else "json"


def _items(values: Sequence[str]) -> str:
    return "".join(f"<li><code>{html.escape(v)}</code></li>" for v in values)


def _html(r: Refusal) -> str:
    e = html.escape
    title = (
        "A client certificate is needed" if r.status == 401 else "This certificate is not allowed"
    )
    seen = (
        f"<p>Your browser presented <code>{e(r.presented)}</code>: {e(r.why)}</p>"
        if r.presented
        else "<p>Your browser presented no certificate.</p>"
    )
    names = _items(r.ca_names) or "<li>(none configured)</li>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{r.status} {e(title)}</title><style>body{{font:16px/1.5 system-ui,"
        "sans-serif;max-width:42em;margin:2em auto;padding:0 1em}code{background:#eee;"
        "padding:0 .2em}</style></head><body>"
        f"<h1>{e(title)}</h1><p>{e(r.reason)}</p>{seen}"
        f"<h2>What this site accepts</h2><p>A certificate issued under:</p><ul>{names}</ul>"
        "<h2>Install your certificate</h2><ol>"
        "<li>Get <code>NAME.p12</code> and its password from whoever runs this site (it holds "
        "your key, your certificate and the intermediate CA).</li>"
        "<li>Chrome/Edge: Settings, Privacy and security, Security, Manage certificates, "
        "Import. Firefox: Settings, Privacy &amp; Security, View Certificates, Your "
        "Certificates, Import. macOS: open the file (Keychain Access).</li>"
        "<li>Restart the browser, open this page again and pick the certificate.</li></ol>"
        "</body></html>\n"
    )


def render(r: Refusal, kind: str) -> tuple[list[tuple[str, str]], bytes]:
    """The response fields and body for a refusal in one format.

    Args:
        r: the refusal.
        kind: "html", "json" or "grpc" (negotiate()).

    Returns:
        (fields, body): for "grpc" the fields are a trailers-only gRPC answer (status 16
        UNAUTHENTICATED or 7 PERMISSION_DENIED, the reason as grpc-message) and the body
        is empty.
    """
    if kind == "grpc":
        status = UNAUTHENTICATED if r.status == 401 else PERMISSION_DENIED
        fields = [(k.decode(), v.decode()) for k, v in grpc_error(status, r.reason)]
        return [f for f in fields if not f[0].startswith(":")], b""
    if kind == "html":
        body = _html(r).encode()
        fields = [("content-type", "text/html; charset=utf-8"), ("content-security-policy", _CSP)]
    else:
        body = (json.dumps(r.to_json(), ensure_ascii=True) + "\n").encode()
        fields = [("content-type", "application/json")]
    if r.status == 401:
        # RFC 9110 wants a challenge with every 401; no scheme names TLS client
        # certificates, so this one says what to do (clients ignore schemes they lack).
        fields.append(("www-authenticate", 'TLS-Client-Certificate realm="mtlskit"'))
    return [*fields, ("cache-control", "no-store")], body
