"""What the gateway serves with, loaded from files as one immutable value: swapped on reload."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from OpenSSL import SSL

from mtlskit.config import GatewayConfig
from mtlskit.errors import ConfigError, TLSConfigError
from mtlskit.gateway.crlfetch import FetchedCrls, check_crl_urls, crl_number
from mtlskit.gateway.flight import watch_flight
from mtlskit.gateway.routing import Site, name_matches
from mtlskit.gateway.sitebuild import (
    ServerFiles,
    build_site,
    identity_headers,
    merge_headers,
    server_files,
    stripped_names,
)
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
_DER, _SPKI = Encoding.DER, PublicFormat.SubjectPublicKeyInfo


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
    """Every file a reload re-reads (every server's)."""
    return [path for files in server_files(config) for path in files.paths]


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
    site: Site  # its routes, default route and names
    crl_issuers: tuple[str, ...] = ()  # each CRL's issuer, as PeerIdentity.issuer spells it
    crl_sources: tuple[str, ...] = ()  # each CRL's file or URL
    crl_stale: str = "deny"  # [tls] crl_stale: a CRL past its nextUpdate denies or allows
    # CRL URLs that never gave a CRL: with "deny", a client whose CA has no CRL is refused
    # meanwhile (the missing CRL may be its CA's).
    crl_pending: tuple[str, ...] = ()
    # The [[server]]s on the same listener (on the top-level state only), and the names
    # SNI selects them by: (lowercase pattern, server state).
    servers: tuple[GatewayState, ...] = ()
    by_name: tuple[tuple[str, GatewayState], ...] = ()
    refuse_unknown: bool = False
    # Every client-sent header name any server or route adds: always removed.
    stripped: frozenset[bytes] = frozenset()
    # Clients reconnect with the same certificate: parse it and build its header block
    # once per state, not once per connection (bounded; cleared when full).
    _identities: dict[bytes, PeerIdentity] = field(default_factory=dict, repr=False)
    _blocks: dict[tuple[int, PeerIdentity], bytes | IdentityHeaderError] = field(
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
    def name(self) -> str:
        """The server's name: "default" for the top-level keys."""
        return self.site.name

    @property
    def stripped_headers(self) -> frozenset[bytes]:
        """Client-sent header names always removed (lowercase, `_` read as `-`)."""
        return self.stripped or self.identity_config.stripped_names

    def server_for(self, sni: bytes | None) -> GatewayState | None:
        """The server a client's SNI selects: one of ours, this (default) one, or None."""
        if sni is not None and self.by_name:
            name = sni.decode("ascii", "replace").lower().rstrip(".")
            for pattern, server in self.by_name:
                if name_matches(name, (pattern,)):
                    return server
        if self.refuse_unknown:
            return None
        return self

    def identity_block(
        self, identity: PeerIdentity, headers: IdentityHeaders | None = None
    ) -> bytes:
        """The identity header lines of a client (built once per identity and route).

        Args:
            identity: the client.
            headers: a route's own identity headers (None: the server's).

        Raises:
            IdentityHeaderError: a certificate value cannot travel in a header.
        """
        config = headers or self.identity_config
        key = (id(config), identity)
        block = self._blocks.get(key)
        if block is None:
            if len(self._blocks) >= _CACHE_SIZE:
                self._blocks.clear()
            try:
                block = build_identity_block(identity, config, by=self.tls.server_uris)
            except IdentityHeaderError as exc:
                block = exc
            self._blocks[key] = block
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
        deny_stale = self.crl_stale == "deny"
        covered = False
        for crl, issuer in zip(self.crls, self.crl_issuers, strict=True):
            if issuer != identity.issuer:
                continue
            covered = True
            if deny_stale and crl.next_update is not None and now > crl.next_update:
                return Decision(False, "crl_stale", _STALE.format(crl.next_update))
            if crl.is_revoked(int(identity.serial, 16)):
                return Decision(False, "revoked", "your client certificate is revoked")
        if not covered and deny_stale and self.crl_pending:
            return Decision(False, "crl_stale", _PENDING)
        if self.site.table is not None:
            return Decision(True, "valid")  # each request's route decides
        return evaluate(self.policy, identity)

    def revocation_entry(self, cert: x509.Certificate) -> dict[str, str]:
        """Revocation date and reason of a revoked client certificate, from its CRL."""
        for crl in self.crls:
            if crl.issuer == cert.issuer and crl.is_revoked(cert.serial_number):
                return crl.entry(cert.serial_number)
        return {}


# A refusal caused by the server, not the client: the 403 page and the access log say so.
_STALE = (
    "the server's CRL for your CA is out of date (its nextUpdate {:%Y-%m-%d %H:%M}Z has "
    "passed): your client certificate is not at fault; the server's operator must publish "
    "or fetch a fresh CRL"
)
_PENDING = (
    "the server has not obtained the CRL it needs to check your certificate yet: your client "
    "certificate is not at fault; the server's operator must make the CRL URL reachable"
)


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a == b or a.public_key() == b.public_key()


def _load_crls(
    paths: tuple[Path, ...],
    client_cas: list[x509.Certificate],
    fetched: FetchedCrls,
) -> tuple[tuple[RevocationList, str], ...]:
    """File CRLs (verified here) and the fetched ones this server's CAs signed: per issuer
    and key the newest (highest CRL number) only, as a CRL lists every revocation so far.

    A stale CRL is not an error, at start or on reload: its CA's clients are refused (or,
    with crl_stale = "allow", admitted) and the fetcher logs it; the other CAs' clients
    are served, and a reload that brings a renewed server certificate is never blocked.
    """
    found: list[tuple[RevocationList, str]] = []
    for path in paths:
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
        found.append((loaded, str(path)))
    for url, rl in fetched.lists:
        if rl.signer is not None and any(_same_key(rl.signer, ca) for ca in client_cas):
            found.append((rl, url))
    newest: dict[tuple[str, bytes], tuple[RevocationList, str]] = {}
    for rl, source in found:
        assert rl.signer is not None  # noqa: S101 - checked above
        key = (rl.issuer.rfc4514_string(), rl.signer.public_key().public_bytes(_DER, _SPKI))
        held = newest.get(key)
        if held is None or (crl_number(rl), rl.this_update) > (
            crl_number(held[0]),
            held[0].this_update,
        ):
            newest[key] = (rl, source)
    return tuple(newest.values())


def load_state(
    config: GatewayConfig, now: datetime, fetched: FetchedCrls | None = None
) -> GatewayState:
    """Read every file of every server and build a new state, or raise, keeping the old.

    Args:
        config: the gateway's config.
        now: the time the server certificates are checked at.
        fetched: the CRLs fetched from URLs (gateway.crlfetch), kept across reloads.

    Raises:
        ConfigError, TLSConfigError, CertificateLoadError: with the file and the fix.
    """
    check_crl_urls(config)
    stamps = file_stamps(watched_files(config))
    planned = []
    for files in server_files(config):
        server = files.server
        custom = merge_headers(config.headers, server.headers) if server else config.headers
        identity = identity_headers(config, custom)
        site, _ = build_site(config, files, identity)
        planned.append((files, site, identity))
    stripped = stripped_names(
        [identity for _, site, identity in planned]
        + [route.identity for _, site, _ in planned for route in site.routes]
    )
    several = len(planned) > 1
    fetched = fetched or FetchedCrls()
    states = [
        _load_server(config, files, site, identity, now, stamps, stripped, fetched, several=several)
        for files, site, identity in planned
    ]
    default, servers = states[0], tuple(states[1:])
    if not servers:
        return default
    by_name = tuple((name, st) for st in servers for name in st.site.names)
    default = dataclasses.replace(
        default,
        servers=servers,
        by_name=by_name,
        refuse_unknown=config.tls.unknown_server == "refuse",
    )
    default.tls.context.set_tlsext_servername_callback(_select_server(default))
    return default


def _load_server(
    config: GatewayConfig,
    files: ServerFiles,
    site: Site,
    identity: IdentityHeaders,
    now: datetime,
    stamps: tuple[FileStamp, ...],
    stripped: frozenset[bytes],
    fetched: FetchedCrls,
    *,
    several: bool,
) -> GatewayState:
    loaded = _load_crls(files.crl, load_client_cas(files.client_ca), fetched)
    crls = tuple(rl for rl, _ in loaded)
    explain = files.explain and files.client_auth == "optional"
    # A session is resumed before SNI picks the server (OpenSSL looks it up while it
    # parses the ClientHello, and calls the servername callback after), so with several
    # servers a session made on one could resume on another, whose CA never checked the
    # client; a session made in explain mode would resume a certificate that failed.
    # Resumption is off then (pyOpenSSL does not offer the client-hello callback that
    # would let SNI pick the server first).
    tickets = 0 if several or explain else config.tls.session_tickets
    tls = server_context(
        files.cert,
        files.key,
        files.client_ca,
        min_version=config.tls.min_version,
        session_tickets=tickets,
        crls=[rl.crl for rl in crls],
        # HTTP mode: h2 and http/1.1 (server.py serves what was selected); TCP mode carries
        # any protocol and selects none unless told.
        alpn=tuple(p.encode() for p in server_alpn(config)),
        client_auth=files.client_auth,
        explain=explain,
    )
    watch_flight(tls.context)  # tells a browser's speculative connection from a reset
    leaf = tls.chain[0]
    if now > leaf.not_valid_after_utc:
        raise TLSConfigError(
            f"{files.cert}: the server certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
            "issue a new one ('mtlskit ca issue server ...') and reload",
        )
    _check_server_purpose(leaf, files.cert)
    server = files.server
    return GatewayState(
        tls=tls,
        # An AccessPolicy, compiled once when the config was read.
        policy=server.policy if server is not None else config.policy,
        identity_config=identity,
        crls=crls,
        crl_issuers=tuple(crl.issuer.rfc4514_string() for crl in crls),
        crl_sources=tuple(source for _, source in loaded),
        crl_stale=config.tls.crl_stale,
        crl_pending=fetched.pending,
        stamps=stamps,
        loaded_at=now,
        site=site,
        stripped=stripped,
    )


def _select_server(default: GatewayState) -> Callable[[SSL.Connection], None]:
    """The servername callback: SNI picks the server's context, verify settings and state."""
    refuse = SSL.Context(SSL.TLS_SERVER_METHOD)  # no certificate: the handshake fails

    def select(conn: SSL.Connection) -> None:
        target = default.server_for(conn.get_servername())
        stream = conn.get_app_data()
        if target is default:
            return
        if target is None:
            stream.protocol.refused_name = conn.get_servername()
            conn.set_context(refuse)
            return
        conn.set_context(target.tls.context)
        conn.set_verify(target.tls.verify_mode, target.tls.verify_callback)
        stream.protocol.state = target

    return select


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
