"""Identity headers for the gateway: templates, the per-connection block, stripping."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from mtlskit.errors import ConfigError, IdentityHeaderError
from mtlskit.identity._peer import (
    _BAD_VALUE,
    _FRAMING,
    _TOKEN,
    STRIPPED_HEADERS,
    XFCC_FIELDS,
    PeerIdentity,
    _envoy_serial,
    _header_dn,
    _url_pem,
)
from mtlskit.identity._wire import _xfcc_field_set, rfc9440_headers, xfcc_value

# -- custom header templates (Envoy/Kyma %DOWNSTREAM_PEER_...% operators) --------------------
# Formats follow Envoy's substitution formatter (stream_info_formatter.cc) and the access-log
# docs: SAN lists joined with ",", fingerprints lowercase hex, times as START_TIME's default.
TEMPLATE_OPERATORS: Final[Mapping[str, Callable[[PeerIdentity], str]]] = {
    "DOWNSTREAM_PEER_SUBJECT": _header_dn,
    "DOWNSTREAM_PEER_ISSUER": lambda i: _header_dn(i, issuer=True),
    "DOWNSTREAM_PEER_URI_SAN": lambda i: ",".join(i.uri_sans),
    "DOWNSTREAM_PEER_DNS_SAN": lambda i: ",".join(i.dns_sans),
    "DOWNSTREAM_PEER_IP_SAN": lambda i: ",".join(i.ip_sans),
    "DOWNSTREAM_PEER_FINGERPRINT_256": lambda i: i.fingerprint_sha256,
    "DOWNSTREAM_PEER_FINGERPRINT_1": lambda i: hashlib.sha1(  # Envoy's name, not our choice
        i.leaf_der, usedforsecurity=False
    ).hexdigest(),
    "DOWNSTREAM_PEER_SERIAL": _envoy_serial,
    "DOWNSTREAM_PEER_CERT": lambda i: _url_pem(i.leaf_der),
    "DOWNSTREAM_PEER_CERT_V_START": lambda i: i.not_before.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "DOWNSTREAM_PEER_CERT_V_END": lambda i: i.not_after.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
}
_TEMPLATE_TOKEN: Final = re.compile(r"%%|%([^%]*)%|%")


@functools.lru_cache(maxsize=256)
def _compile_template(template: str) -> tuple[tuple[str, str | None], ...]:
    if _BAD_VALUE.search(template):
        raise ConfigError(
            f"header template {template!r} has a control or non-ASCII character",
            "header values may hold printable ASCII only (no CR, LF or NUL)",
        )
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for match in _TEMPLATE_TOKEN.finditer(template):
        parts.append((template[pos : match.start()], None))
        pos = match.end()
        if match.group(0) == "%%":  # Envoy: a literal percent sign is written %%
            parts.append(("%", None))
        elif match.group(1) in TEMPLATE_OPERATORS:
            parts.append(("", match.group(1)))
        else:
            op = match.group(0) if match.group(1) is not None else "a lone '%'"
            raise ConfigError(
                f"header template {template!r}: unknown operator {op}",
                f"known: {', '.join(f'%{k}%' for k in TEMPLATE_OPERATORS)}; write %% for a '%'",
            )
    parts.append((template[pos:], None))
    return tuple(p for p in parts if p[0] or p[1])


def validate_header_template(template: str) -> None:
    """Check a custom header template at configuration time.

    Raises:
        ConfigError: an unknown `%OPERATOR%`, a lone `%`, or a control/non-ASCII character.
    """
    _compile_template(template)


def render_header_template(template: str, identity: PeerIdentity) -> str:
    """Substitute the `%DOWNSTREAM_PEER_...%` operators in `template` for this client.

    Raises:
        ConfigError: the template is invalid (see validate_header_template).
    """
    return "".join(
        text if op is None else TEMPLATE_OPERATORS[op](identity)
        for text, op in _compile_template(template)
    )


# -- the gateway side -------------------------------------------------------------------------
def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not a valid HTTP header name")
    if name.lower() in _FRAMING:
        raise ConfigError(f"{what} {name!r} is a framing or hop-by-hop header", "pick another")
    return name.lower()


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    """Which identity headers the gateway adds to each upstream request.

    Attributes:
        xfcc: add x-forwarded-client-cert (the default; Envoy- and Istio-compatible).
        xfcc_fields: the XFCC keys to emit (see xfcc_value).
        client_cert: add RFC 9440 Client-Cert / Client-Cert-Chain (opt-in, as RFC 9440 asks).
        custom: (name, template) pairs, in order; a header whose value renders empty is
            left out (Envoy's keep_empty_value default).
        strip: more client-sent header names to drop (case-insensitive).
        stripped_names: every name dropped from client requests, lowercase bytes, with `_`
            read as `-` (WSGI/CGI servers map both to the same HTTP_* key).

    Raises:
        ConfigError: a bad header name, template or XFCC field.
    """

    xfcc: bool = True
    xfcc_fields: tuple[str, ...] = XFCC_FIELDS
    client_cert: bool = False
    custom: tuple[tuple[str, str], ...] = ()
    strip: tuple[str, ...] = ()
    stripped_names: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "xfcc_fields", tuple(self.xfcc_fields))
        object.__setattr__(self, "custom", tuple((n, t) for n, t in self.custom))
        object.__setattr__(self, "strip", tuple(self.strip))
        _xfcc_field_set(self.xfcc_fields)
        names = set(STRIPPED_HEADERS)
        for name, template in self.custom:
            lower = _check_name(name, "custom identity header")
            if lower in names:
                raise ConfigError(
                    f"custom identity header {name!r} is defined twice or is built in",
                    "XFCC and Client-Cert have their own switches (xfcc, client_cert)",
                )
            validate_header_template(template)
            names.add(lower)
        names.update(_check_name(name, "stripped header") for name in self.strip)
        stripped = frozenset(n.replace("_", "-").encode("ascii") for n in names)
        object.__setattr__(self, "stripped_names", stripped)


def build_identity_block(
    identity: PeerIdentity, config: IdentityHeaders, *, by: str | Sequence[str] | None = None
) -> bytes:
    """The `Name: value\\r\\n` lines to append to every request head on this connection.

    Computed once per TLS connection; the per-request work is a bytes concatenation.

    Raises:
        IdentityHeaderError: a value derived from the certificate (a URI or DNS SAN, `by`)
            holds a control or non-ASCII character: refused rather than sent or mangled.
    """
    lines: list[tuple[str, str]] = []
    if config.xfcc:
        lines.append(
            ("X-Forwarded-Client-Cert", xfcc_value(identity, fields=config.xfcc_fields, by=by))
        )
    if config.client_cert:
        lines.extend(rfc9440_headers(identity))
    for name, template in config.custom:
        if value := render_header_template(template, identity):
            lines.append((name, value))
    for name, value in lines:
        if _BAD_VALUE.search(value):
            raise IdentityHeaderError(
                f"the client certificate would put a control or non-ASCII character in {name}",
                "the client certificate has an unusual SAN; it cannot be forwarded safely",
            )
    return "".join(f"{name}: {value}\r\n" for name, value in lines).encode("ascii")
