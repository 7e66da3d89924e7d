"""The status page: certificates as data, and the document rendered as HTML and SVG (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any, Final

from cryptography import x509

__all__ = ["CSP", "REFRESH_SECONDS", "certificate_entry", "chain_svg", "days_left", "render_page"]

REFRESH_SECONDS: Final = 10
# Nothing but the page itself: no scripts, no fetches, no frames; inline styles and
# data: images only. The page works without JavaScript.
CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f7f8fa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em}
table{border-collapse:collapse;background:#fff;margin:.3em 0;min-width:40%}
th,td{border:1px solid #d5d9e0;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5}code{font-size:.95em;word-break:break-all}
.ok{color:#146c2e}.warn{color:#8a5a00}.bad{color:#b3261e;font-weight:600}
.muted{color:#667085}section{margin-bottom:1em}
"""


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until `not_after` (negative once it has passed)."""
    return math.floor((not_after - now).total_seconds() / 86400)


def certificate_entry(cert: x509.Certificate, now: datetime) -> dict[str, Any]:
    """One certificate as the status document shows it (stable keys)."""
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": days_left(cert.not_valid_after_utc, now),
        "ca": is_ca,
        "self_signed": cert.subject == cert.issuer,
    }


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _days(days: Any) -> str:
    if not isinstance(days, int):
        return '<span class="muted">-</span>'
    cls = "bad" if days < 7 else "warn" if days < 30 else "ok"
    return f'<span class="{cls}">{days}</span>'


def _time(stamp: Any) -> str:
    if not isinstance(stamp, int | float):
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table; each cell is HTML already escaped by the caller."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{_e(empty)}</p>'
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>"


def _certs(certs: Sequence[Mapping[str, Any]], empty: str) -> str:
    rows = (
        (
            f"<code>{_e(c['subject'])}</code>",
            f"<code>{_e(c['issuer'])}</code>",
            _e(c["not_after"]),
            _days(c["days_left"]),
        )
        for c in certs
    )
    return _table(("subject", "issuer", "not after", "days left"), rows, empty)


def _short(subject: str, limit: int = 34) -> str:
    """A box label: the CN when there is one, clipped to fit."""
    for part in subject.split(","):
        if part.startswith("CN="):
            subject = part[3:]
            break
    return subject if len(subject) <= limit else subject[: limit - 1] + "\u2026"


def chain_svg(chain: Sequence[Mapping[str, Any]], title: str) -> str:
    """The chain of trust as boxes, root at the top: root -> intermediates -> leaf.

    Args:
        chain: certificate entries, leaf first (as a server sends them).
        title: the picture's accessible name.
    """
    boxes: list[tuple[str, str, Any]] = []  # (role, subject, days left), root first
    ordered = list(reversed(chain))
    if ordered and not ordered[0].get("self_signed"):
        boxes.append(("root (not sent)", str(ordered[0]["issuer"]), None))
    for i, cert in enumerate(ordered):
        role = "leaf" if i == len(ordered) - 1 else "root" if cert.get("self_signed") else "CA"
        boxes.append((role, str(cert["subject"]), cert.get("days_left")))
    width, box_h, gap = 340, 46, 26
    height = max(len(boxes) * (box_h + gap) - gap, box_h) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 4}" height="{height}" '
        f'role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>'
    ]
    for i, (role, subject, days) in enumerate(boxes):
        y = 2 + i * (box_h + gap)
        dashed = ' stroke-dasharray="4 3"' if days is None else ""
        fill = "#fdecea" if isinstance(days, int) and days < 7 else "#ffffff"
        parts.append(
            f'<rect x="2" y="{y}" width="{width}" height="{box_h}" rx="6" fill="{fill}" '
            f'stroke="#44546a"{dashed}/>'
        )
        label = f"{role}" + (f" \u00b7 {days} days left" if isinstance(days, int) else "")
        parts.append(f'<text x="12" y="{y + 18}" font-size="12" fill="#667085">{_e(label)}</text>')
        parts.append(
            f'<text x="12" y="{y + 36}" font-size="14" fill="#1d2330">{_e(_short(subject))}</text>'
        )
        if i:
            x = 2 + width // 2
            parts.append(
                f'<path d="M{x} {y - gap} V{y - 4} m-5 -6 l5 6 l5 -6" fill="none" '
                f'stroke="#44546a"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _rules(rules: Sequence[str]) -> str:
    if not rules:
        return '<span class="bad">no rule: denies everyone</span>'
    return "<br>".join(f"<code>{_e(r)}</code>" for r in rules)


def _server(server: Mapping[str, Any]) -> str:
    names = ", ".join(server.get("names") or []) or "(default)"
    crls = (
        (
            f"<code>{_e(c['issuer'])}</code>",
            _e(c["source"]),
            _e(c["next_update"]),
            _days(c["days_left"]),
        )
        for c in server["crls"]
    )
    routes = (
        (
            _e(r["name"]),
            _rules(r["rules"]) + (" <em>+ anonymous</em>" if r["anonymous"] else ""),
            f"<code>{_e(r['upstream'])}</code>",
        )
        for r in server["policy"]["routes"]
    )
    return (
        f'<section><h2>Server {_e(server["name"])} <small class="muted">{_e(names)}</small>'
        f"</h2>{chain_svg(server['chain'], 'chain of trust of server ' + str(server['name']))}"
        f"<h3>Server chain (as sent)</h3>{_certs(server['chain'], 'no certificate')}"
        f"<h3>Client CAs</h3>{_certs(server['client_cas'], 'no client CA')}"
        f"<h3>CRLs</h3>"
        f"{_table(('issuer', 'source', 'next update', 'days left'), crls, 'no CRL')}"
        f"<h3>Policy</h3>"
        f"{_table(('route', 'allows', 'upstream'), routes, 'no route')}</section>"
    )


def _counters(counters: Mapping[str, Any]) -> str:
    out = [f"<p>connections open: <b>{_e(counters.get('connections_open', 0))}</b></p>"]
    for key, title in (
        ("handshakes", "Handshakes by result"),
        ("requests", "Requests by status"),
        ("denied", "Denied after the handshake"),
    ):
        rows = ((_e(k), _e(v)) for k, v in sorted(counters.get(key, {}).items()))
        out.append(f"<h3>{_e(title)}</h3>{_table((key[:-1], 'count'), rows, 'none yet')}")
    return "".join(out)


def render_page(doc: Mapping[str, Any]) -> str:
    """The whole status page from the status document (every value escaped)."""
    clients = (
        (
            f"<code>{_e(c['subject'])}</code>",
            f"<code>{_e(c['spiffe_id'] or '-')}</code>",
            _e(_time(c["last_seen"])),
            _e(c["connections"]),
            _e(c["requests"]),
            _days(c["days_left"]),
        )
        for c in doc["recent_clients"]
    )
    refusals = (
        (
            _e(_time(r["at"])),
            f"<code>{_e(r['code'])}</code>",
            _e(r["step"]),
            f"<code>{_e(r['subject'] or '-')}</code>",
            _e(r["fix"]),
            _e(r["client"]),
        )
        for r in doc["recent_refusals"]
    )
    ready = (
        '<span class="ok">ready</span>' if doc["ready"] else '<span class="bad">not ready</span>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mtlskit gateway status</title><style>{_STYLE}</style></head><body>"
        f"<h1>mtlskit gateway</h1><p>{ready} \u00b7 listening on "
        f"<code>{_e(doc['listen'])}</code> \u00b7 generated {_e(doc['generated_at'])} "
        f'<span class="muted">(refreshes every {REFRESH_SECONDS} s; '
        '<a href="/status.json">status.json</a>, <a href="/metrics">metrics</a>)</span></p>'
        # What breaks soonest first: certificates and their days left, then what is being
        # refused and who calls, then the counters.
        + "".join(_server(s) for s in doc["servers"])
        + f'<h2>Recent refusals</h2><p class="muted">{_e(doc["recent_scope"])}</p>'
        + _table(("when", "code", "seed step", "certificate", "fix", "client"), refusals, "none")
        + f'<h2>Recent clients</h2><p class="muted">{_e(doc["recent_scope"])}</p>'
        + _table(
            ("identity", "SPIFFE ID", "last seen", "connections", "requests", "days left"),
            clients,
            "no client yet",
        )
        + f"<h2>Counters</h2>{_counters(doc['counters'])}"
        + "</body></html>"
    )
