"""[tls]: the server's chain and key, client CAs and CRLs, client authentication, renewal (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from mtlskit._config_acme import AcmeConfig
from mtlskit._config_keys import config_key, config_table
from mtlskit._config_kinds import ALPN, BOOL, CHOICE, DURATION, INT, PATH, PATHS, STR, STRS
from mtlskit.sites import ClientAuth, VerifyOptional

__all__ = ["TLSConfig"]


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """[tls]: the server's chain and key, the client CA, CRLs, protocol floor."""

    cert: Path = config_key(
        kind=PATH,
        help="server chain: leaf first, then intermediates (all are sent)",
        doc="server chain: leaf first, then intermediates; all are sent",
    )
    key: Path = config_key(kind=PATH, help="server private key", doc="the leaf's private key")
    client_ca: Path = config_key(
        kind=PATH,
        help="CA(s) that client chains must lead to (roots, or intermediates to pin)",
        doc="the CAs client chains must lead to, each a trust anchor (a root, or an "
        "intermediate to admit only its leaves: OpenSSL's partial chain); advertised as "
        "acceptable CA names",
    )
    crl: tuple[Path, ...] = config_key(
        (),
        kind=PATHS,
        help="CRL of a client CA (repeatable); must be signed by a CA in --client-ca",
        doc="CRLs of the client CAs (repeatable); signed by a CA in `client_ca`",
    )
    min_version: Literal["1.2", "1.3"] = config_key(
        "1.2", kind=CHOICE, help="lowest TLS version: 1.2 or 1.3", doc="`1.2` or `1.3`"
    )
    # OpenSSL sends 2 TLS 1.3 tickets per full handshake by default; resumption needs them.
    session_tickets: int = config_key(
        2,
        kind=INT,
        help="TLS 1.3 session tickets per handshake (0 disables resumption)",
        doc="`2`: resumption on (OpenSSL's two TLS 1.3 tickets per full handshake, kept 5 "
        "minutes); `0`: off. Other counts cannot be set through pyOpenSSL",
    )
    # None: h2 and http/1.1 in HTTP mode (the client picks), nothing in TCP mode.
    alpn: tuple[str, ...] | None = config_key(
        None,
        kind=ALPN,
        default_doc='`"h2", "http/1.1"` (HTTP mode); none (TCP mode)',
        help="ALPN protocols offered, in order of preference (repeatable): h2, http/1.1",
        doc="ALPN protocols selected from the client's offer, ours first: `h2` (HTTP/2) and "
        "`http/1.1` in HTTP mode; any IDs in TCP mode. A client offering none of them "
        "goes on without ALPN (HTTP/1.1)",
    )
    client_auth: ClientAuth = config_key(
        "required",
        kind=CHOICE,
        help="client certificates: required (refused in the handshake without one) or "
        "optional (routes decide; allow_anonymous admits callers without one)",
        doc="`required`: no certificate, no connection; `optional`: asked for but not "
        "required, routes with `allow_anonymous` admit callers without one and the others "
        "answer 401/403 with a page that says why",
    )
    verify_optional: VerifyOptional = config_key(
        "refuse",
        kind=CHOICE,
        help="with client_auth optional, a certificate that does not verify: refuse (in the "
        "handshake) or explain (a 403 page, never the workload)",
        doc='with `client_auth = "optional"`, a presented certificate that does not '
        "verify: `refuse` it in the handshake, or `explain` why in a 403 page (never "
        "forwarded, never identity headers)",
    )
    unknown_server: Literal["default", "refuse"] = config_key(
        "default",
        kind=CHOICE,
        help="with [[server]]s, a client sending no or an unknown SNI: default (the top-level "
        "server) or refuse (alert unrecognized_name)",
        doc="with `[[server]]` tables, a client whose SNI names no server: `default` (the "
        "top-level keys answer) or `refuse` (alert 112 unrecognized_name)",
    )
    ca_url: str | None = config_key(
        None,
        kind=STR,
        default_doc="off",
        help="renew the server certificate from this `mtlskit ca serve` URL (as with acme)",
        doc="`https://ca.example:9443`: renew the server certificate (cert and key) from an "
        "`mtlskit ca serve` at 2/3 of its lifetime, then reload",
    )
    ca_trust: Path | None = config_key(
        None,
        kind=PATH,
        default_doc="`client_ca`",
        help="root(s) to verify the ca_url server with",
        doc="root(s) to verify the `ca_url` server with",
    )
    crl_urls: tuple[str, ...] = config_key(
        (),
        kind=STRS,
        flag="--crl-url",
        help="fetch a client CA's CRL from this URL, refreshed before nextUpdate (repeatable)",
        doc="CRLs fetched over HTTP(S), refreshed before their nextUpdate; the last good one "
        "is kept",
    )
    crl_from_cdp: bool = config_key(
        False,
        kind=BOOL,
        help="also fetch the CRLs named in the client CAs' CRL Distribution Points",
        doc="also fetch the CRLs the client CAs' certificates name (CRL Distribution Points)",
    )
    crl_stale: Literal["deny", "allow"] = config_key(
        "deny",
        kind=CHOICE,
        help="a CRL past its nextUpdate: deny its CA's clients (default) or allow them",
        doc="a CRL past its nextUpdate: `deny` its CA's clients (a 403 that says it is the "
        "server's CRL) or `allow` them (logged)",
    )
    crl_warning: timedelta = config_key(
        timedelta(hours=24),
        kind=DURATION,
        doc="warn this long before a CRL's nextUpdate when no fresh one has come",
    )
    crl_refresh: timedelta = config_key(
        timedelta(minutes=5),
        kind=DURATION,
        doc="fetch each CRL URL at least this often (and at half the time left before its "
        "nextUpdate): how soon a revocation reaches the gateway",
    )
    acme: AcmeConfig | None = config_table(
        AcmeConfig,
        default=None,
        file_only=True,
        missing="tls.acme needs directory (the ACME URL), domains and dir (where to keep "
        "the certificate)",
    )
