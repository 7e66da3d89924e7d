"""What the gateway serves with, loaded from files as one immutable value: swapped on reload."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from mtlskit.config import GatewayConfig
from mtlskit.errors import ConfigError, TLSConfigError
from mtlskit.gateway.flight import watch_flight
from mtlskit.identity import (
    IdentityHeaderError,
    IdentityHeaders,
    PeerIdentity,
    build_identity_block,
)
from mtlskit.pki.files import CRL_MAX_BYTES, read_file
from mtlskit.pki.pem import load_crl
from mtlskit.policy import AccessPolicy, Decision, evaluate
from mtlskit.tlsconfig import ServerContext, load_client_cas, server_context
from mtlskit.trust import RevocationList, load_crl_set

__all__ = ["FileStamp", "GatewayState", "file_stamps", "load_state", "server_alpn"]

FileStamp = tuple[str, int, int, int]  # path, mtime_ns, size, inode
_CACHE_SIZE = 4096


def file_stamps(paths: list[Path]) -> tuple[FileStamp, ...]:
    """What the watcher compares to notice a changed certificate, key, CA or CRL."""
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)  # follows symlinks: Kubernetes swaps a ..data symlink
            stamps.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamps.append((str(path), 0, 0, 0))
    return tuple(stamps)


def server_alpn(config: GatewayConfig) -> tuple[str, ...]:
    """The ALPN IDs the listener selects from, ours first (`[tls] alpn` or the mode's)."""
    if config.tls.alpn is not None:
        return config.tls.alpn
    return ("h2", "http/1.1") if config.mode == "http" else ()


def watched_files(config: GatewayConfig) -> list[Path]:
    """Every file a reload re-reads."""
    tls = config.tls
    return [tls.cert, tls.key, tls.client_ca, *tls.crl]


@dataclass(frozen=True, slots=True, eq=False)
class GatewayState:
    """An immutable snapshot: TLS context, policy, CRLs and identity-header settings.

    A connection keeps the state it was accepted with; a reload builds a whole new one
    and swaps it in, so a broken file can never leave the gateway half-updated.
    """

    tls: ServerContext
    policy: AccessPolicy
    identity_config: IdentityHeaders
    crls: tuple[RevocationList, ...]
    stamps: tuple[FileStamp, ...]
    loaded_at: datetime
    crl_issuers: tuple[str, ...] = ()  # each CRL's issuer, as PeerIdentity.issuer spells it
    # Clients reconnect with the same certificate: parse it and build its header block
    # once per state, not once per connection (bounded; cleared when full).
    _identities: dict[bytes, PeerIdentity] = field(default_factory=dict, repr=False)
    _blocks: dict[PeerIdentity, bytes | IdentityHeaderError] = field(
        default_factory=dict, repr=False
    )

    def identity_of(self, leaf_der: bytes, chain: tuple[bytes, ...]) -> PeerIdentity:
        """The client's identity, parsed once per certificate (and chain) per state."""
        key = leaf_der + b"".join(chain)
        identity = self._identities.get(key)
        if identity is None:
            if len(self._identities) >= _CACHE_SIZE:
                self._identities.clear()
            identity = self._identities[key] = PeerIdentity.from_der(leaf_der, chain)
        return identity

    @property
    def stripped_headers(self) -> frozenset[bytes]:
        """Client-sent header names always removed (lowercase, `_` read as `-`)."""
        return self.identity_config.stripped_names

    def identity_block(self, identity: PeerIdentity) -> bytes:
        """The header lines added to every request of a connection (built once per identity).

        Raises:
            IdentityHeaderError: a certificate value cannot travel in a header.
        """
        block = self._blocks.get(identity)
        if block is None:
            if len(self._blocks) >= _CACHE_SIZE:
                self._blocks.clear()
            try:
                block = build_identity_block(
                    identity, self.identity_config, by=self.tls.server_uris
                )
            except IdentityHeaderError as exc:
                block = exc
            self._blocks[identity] = block
        if isinstance(block, IdentityHeaderError):
            raise block
        return block

    def decide(self, identity: PeerIdentity, now: datetime) -> Decision:
        """Validity and revocation first, then the allow rules; fails closed.

        OpenSSL has checked the chain and the CRL in the handshake; a resumed session
        skips those checks, so a certificate that expired since is refused here.
        """
        if now > identity.not_after:
            return Decision(False, "expired", "your client certificate has expired")
        for crl, issuer in zip(self.crls, self.crl_issuers, strict=True):
            if issuer != identity.issuer:
                continue
            if crl.next_update is not None and now > crl.next_update:
                return Decision(False, "crl_stale", "the CRL for your CA is out of date")
            if crl.is_revoked(int(identity.serial, 16)):
                return Decision(False, "revoked", "your client certificate is revoked")
        return evaluate(self.policy, identity)

    def revocation_entry(self, cert: x509.Certificate) -> dict[str, str]:
        """Revocation date and reason of a revoked client certificate, from its CRL."""
        for crl in self.crls:
            if crl.issuer == cert.issuer and crl.is_revoked(cert.serial_number):
                return crl.entry(cert.serial_number)
        return {}


def _load_crls(
    config: GatewayConfig, client_cas: list[x509.Certificate], now: datetime
) -> tuple[RevocationList, ...]:
    lists = []
    for path in config.tls.crl:
        crl = load_crl(read_file(path, "a CRL", max_bytes=CRL_MAX_BYTES), path)
        loaded = load_crl_set(crl, client_cas)
        if loaded.signer is None or loaded.problem:
            why = (
                loaded.problem or f"its issuer {crl.issuer.rfc4514_string()} is not in --client-ca"
            )
            raise ConfigError(
                f"--crl {path} cannot be trusted: {why}",
                "the CRL must be signed by a CA in the --client-ca bundle; append the "
                "intermediate that signs it (cat root.crt intermediate.crt > clients.pem)",
            )
        if loaded.next_update is not None and now > loaded.next_update:
            raise ConfigError(
                f"--crl {path} is stale: its nextUpdate {loaded.next_update:%Y-%m-%d %H:%M}Z "
                "has passed",
                "publish a fresh CRL ('mtlskit ca crl --dir DIR --out FILE')",
            )
        lists.append(loaded)
    return tuple(lists)


def load_state(config: GatewayConfig, now: datetime) -> GatewayState:
    """Read every file and build a new state, or raise without touching the old one.

    Raises:
        ConfigError, TLSConfigError, CertificateLoadError: with the file and the fix.
    """
    stamps = file_stamps(watched_files(config))
    crls = _load_crls(config, load_client_cas(config.tls.client_ca), now)
    tls = server_context(
        config.tls.cert,
        config.tls.key,
        config.tls.client_ca,
        min_version=config.tls.min_version,
        session_tickets=config.tls.session_tickets,
        crls=[rl.crl for rl in crls],
        # HTTP mode: h2 and http/1.1 (server.py serves what was selected); TCP mode carries
        # any protocol and selects none unless told.
        alpn=tuple(p.encode() for p in server_alpn(config)),
    )
    watch_flight(tls.context)  # tells a browser's speculative connection from a reset
    leaf = tls.chain[0]
    if now > leaf.not_valid_after_utc:
        raise TLSConfigError(
            f"{config.tls.cert}: the server certificate expired on "
            f"{leaf.not_valid_after_utc:%Y-%m-%d}",
            "issue a new one ('mtlskit ca issue server ...') and reload",
        )
    _check_server_purpose(leaf, config.tls.cert)
    identity_config = IdentityHeaders(
        xfcc="xfcc" in config.identity_headers,
        client_cert="client-cert" in config.identity_headers,
        custom=config.headers,
    )
    return GatewayState(
        tls=tls,
        policy=config.policy,  # an AccessPolicy, compiled once when the config was read
        identity_config=identity_config,
        crls=crls,
        crl_issuers=tuple(crl.issuer.rfc4514_string() for crl in crls),
        stamps=stamps,
        loaded_at=now,
    )


def _check_server_purpose(leaf: x509.Certificate, path: Path) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if x509.oid.ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise TLSConfigError(
            f"{path}: {leaf.subject.rfc4514_string()} is not a server certificate (no serverAuth)",
            "issue one with 'mtlskit ca issue server NAME --san HOST'",
        )
