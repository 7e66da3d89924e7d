"""`tls.acme = {...}` (and a [[server]]'s `acme`): an ACME CA's settings, as config keys (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlskit._config_keys import config_key
from mtlskit._config_kinds import ADDRESS, PATH, STR, STRS

__all__ = ["AcmeConfig"]


@dataclass(frozen=True, slots=True)
class AcmeConfig:
    """[tls] acme = {...}: get and renew the server certificate from an ACME CA.

    The certificate and key live in `dir` as server.chain.pem and server.key; tls.cert and
    tls.key point there and must not be set by hand.
    """

    directory: str = config_key(
        kind=STR,
        doc="ACME directory URL: get the server certificate from Let's Encrypt (or Pebble)",
    )
    domains: tuple[str, ...] = config_key(kind=STRS, doc="DNS names of the certificate")
    dir: Path = config_key(
        kind=PATH, doc="where `server.chain.pem`, `server.key` and the account key live"
    )
    email: str | None = config_key(None, kind=STR, doc="account contact")
    http01: tuple[str, int] = config_key(
        ("0.0.0.0", 80),  # noqa: S104 - the CA connects from outside
        kind=ADDRESS,
        doc="where the HTTP-01 responder listens while the CA validates",
    )
    ca_bundle: Path | None = config_key(
        None, kind=PATH, default_doc="system", doc="CA bundle to verify the ACME server with"
    )
