"""The only place TLS options are set: the gateway's pyOpenSSL context, clients' SSLContexts.

The gateway serves with pyOpenSSL's SSL module on the OpenSSL inside the `cryptography`
wheel (newer and about twice as fast per handshake as the system's); clients (`mtlskit
request`, the probe) use the stdlib `ssl` module, which is all they need.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography import x509
from OpenSSL import SSL

from mtlskit.errors import MtlsKitError, TLSConfigError
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import key_matches_certificate, load_certificates, load_private_key
from mtlskit.trust import client_strength

__all__ = [
    "SESSION_TIMEOUT",
    "TLS12_CIPHERS",
    "ServerContext",
    "VerifyRecord",
    "client_context",
    "load_client_cas",
    "server_context",
    "status_server_context",
]

# TLS 1.2 suites: ECDHE for forward secrecy, AEAD only (no CBC: Lucky13, POODLE-TLS), in the
# order Mozilla's "intermediate" profile uses. TLS 1.3 suites are all AEAD already.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_SERVER_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
# How long a client may resume its session, as nginx's ssl_session_timeout: a reload starts
# a new context (and session cache), so a revoked certificate never resumes past one.
SESSION_TIMEOUT: Final = 300
_SESSION_ID_CONTEXT: Final = b"mtlskit-gateway"
# OpenSSL's X509_V_FLAG_CRL_CHECK (include/openssl/x509_vfy.h): check the leaf against the
# CRL of its issuer. pyOpenSSL names it only in OpenSSL.crypto, which we do not use.
_X509_V_FLAG_CRL_CHECK: Final = 0x4
# X509_V_FLAG_PARTIAL_CHAIN: a trusted certificate that is not self-signed ends a chain.
_X509_V_FLAG_PARTIAL_CHAIN: Final = 0x80000
# X509_V_ERR_* codes the verify callback handles itself (x509_vfy.h).
_UNABLE_TO_GET_CRL: Final = 3
_CRL_HAS_EXPIRED: Final = 12


def _harden(ctx: ssl.SSLContext, min_version: str) -> None:
    ctx.minimum_version = _VERSIONS[min_version]  # SSLv3/TLS1.0/1.1 are broken or deprecated
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION  # CRIME
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # renegotiation DoS and CVE-2009-3555 class bugs
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE


class VerifyRecord(Protocol):
    """What each connection's app data offers the verify callback to write into.

    Attributes:
        verify_errors: (depth, X509_V_ERR code, certificate) of every certificate OpenSSL
            refused, in the order it checked them (the root first, the leaf last).
    """

    verify_errors: list[tuple[int, int, x509.Certificate]]


_VerifyCallback = Callable[[SSL.Connection, Any, int, int, int], bool]
_AlpnCallback = Callable[[SSL.Connection, list[bytes]], Any]


@dataclass(frozen=True, slots=True, eq=False)
class ServerContext:
    """A pyOpenSSL server context and what was learned while building it.

    Attributes:
        context: the SSL.Context every connection of one gateway state is made with.
        chain: the server's certificates as loaded (leaf first).
        client_cas: the client CA certificates (trust anchors).
        server_uris: the server leaf's URI SANs (XFCC `By=`, as Envoy sends it).
        verify_mode: the SSL.VERIFY_* flags set on the context.
        verify_callback: the context's verify callback. A connection switched to this
            context by SNI keeps the verify settings it was made with (OpenSSL's
            SSL_set_SSL_CTX), so it is given these two with Connection.set_verify.
    """

    context: SSL.Context
    chain: tuple[x509.Certificate, ...]
    client_cas: tuple[x509.Certificate, ...]
    server_uris: tuple[str, ...]
    verify_mode: int = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    verify_callback: _VerifyCallback | None = None


def load_client_cas(path: Path) -> list[x509.Certificate]:
    """The client CA bundle, every certificate of which must be a CA.

    Raises:
        CertificateLoadError: unreadable or not certificates.
        TLSConfigError: a certificate in it is not a CA.
    """
    cas = load_certificates(read_file(path, "the client CA certificate(s)"), path)
    for cert in cas:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TLSConfigError(
                f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate "
                "(basicConstraints CA:FALSE or absent)",
                "give the root CA that issued the clients' chains (e.g. ca/root.crt)",
            )
    return cas


def _verify_callback(crl_issuers: frozenset[x509.Name], *, explain: bool) -> _VerifyCallback:
    """OpenSSL's verification, with each refusal recorded for the explanation.

    pyOpenSSL calls this per certificate of the chain (root first) with OpenSSL's verdict;
    `cert` is pyOpenSSL's own X509 wrapper, turned into a cryptography object only when
    it was refused. Two verdicts are overruled: no CRL for a CA that has none configured
    (CRL checking is per CA here, not all or nothing), and a stale CRL for the leaf (the
    gateway answers that with a 403 that says so, rather than a bare alert). With
    `explain` (optional client certificates, verify_optional = "explain") every refusal
    is recorded and overruled: the connection is made, and the gateway answers each
    request with a 403 that says why, never forwarding it.
    """

    def verify(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
        if ok:
            return True
        found: x509.Certificate = cert.to_cryptography()
        if errno == _UNABLE_TO_GET_CRL and found.issuer not in crl_issuers:
            return True
        if errno == _CRL_HAS_EXPIRED and depth == 0:
            return True
        record: VerifyRecord = conn.get_app_data()
        record.verify_errors.append((depth, errno, found))
        return explain

    return verify


def server_context(
    cert: Path,
    key: Path,
    client_ca: Path,
    *,
    min_version: str = "1.2",
    session_tickets: int = 2,
    crls: Sequence[x509.CertificateRevocationList] = (),
    alpn: Sequence[bytes] = (),
    client_auth: str = "required",
    explain: bool = False,
) -> ServerContext:
    """Build the gateway's server context: mTLS required, TLS 1.2+, AEAD only.

    Args:
        cert: the server chain, leaf first then intermediates (all of it is sent).
        key: the leaf's private key (unencrypted PEM).
        client_ca: the root(s) client chains must lead to; their names are sent as the
            acceptable CAs in the CertificateRequest.
        min_version: "1.2" or "1.3".
        session_tickets: 2 (resumption on, OpenSSL's count) or 0 (off).
        crls: CRLs OpenSSL checks each client leaf against (its issuer's); a revoked
            leaf gets alert 44 certificate_revoked in the handshake.
        alpn: protocols to select from the client's offer, in our order of preference.
        client_auth: "required" (no certificate, no handshake) or "optional" (asked for;
            a client may send none).
        explain: with "optional", a certificate that does not verify is recorded in the
            connection's verify_errors instead of failing the handshake.

    Raises:
        TLSConfigError: unreadable files, a key that does not match, a CA file that is not
            a CA, or a session ticket count OpenSSL cannot be given through pyOpenSSL.
    """
    chain = load_certificates(read_file(cert, "the server certificate chain"), cert)
    private_key = load_private_key(read_file(key, "the server private key"), key)
    if not key_matches_certificate(private_key, chain[0]):
        raise TLSConfigError(
            f"{key} does not match the first certificate in {cert} "
            f"({chain[0].subject.rfc4514_string()})",
            "give the key created with that certificate, and put the leaf first in --cert",
        )
    cas = load_client_cas(client_ca)
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(_SERVER_VERSIONS[min_version])  # SSLv3-TLS1.1: broken
    ctx.set_cipher_list(TLS12_CIPHERS.encode())
    ctx.set_options(
        SSL.OP_NO_COMPRESSION  # CRIME
        | SSL.OP_NO_RENEGOTIATION  # renegotiation DoS, CVE-2009-3555 class bugs
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        # Our protocols frame their own messages: a peer closing without close_notify is
        # an ordinary end of stream, not an error to report.
        | SSL.OP_IGNORE_UNEXPECTED_EOF
        # TLS 1.3 sessions are kept in the server's cache (stateful tickets): a resumed
        # connection then has the client's whole chain again, where a stateless ticket
        # keeps only the leaf, so the identity headers stay the same on resumption.
        | SSL.OP_NO_TICKET
    )
    # An idle connection holds no 16-34 KiB read/write buffers (10,000 idle clients).
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    if session_tickets == 0:
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    elif session_tickets == 2:
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        ctx.set_session_id(_SESSION_ID_CONTEXT)  # resuming with client certificates needs it
        ctx.set_timeout(SESSION_TIMEOUT)
    else:
        raise TLSConfigError(
            f"tls.session_tickets = {session_tickets}: OpenSSL's ticket count cannot be set "
            "through pyOpenSSL",
            "use 2 (resumption on, the default) or 0 (off)",
        )
    try:
        ctx.use_certificate(chain[0])
        for extra in chain[1:]:
            ctx.add_extra_chain_cert(extra)
        ctx.use_privatekey(private_key)
        ctx.load_verify_locations(str(client_ca))
    except SSL.Error as exc:
        raise TLSConfigError(
            f"OpenSSL refused {cert} / {key}: {exc}", "check the PEM files"
        ) from exc
    for ca in cas:
        ctx.add_client_ca(ca)  # the acceptable CA names (CertificateRequest)
    store = ctx.get_cert_store()
    assert store is not None  # noqa: S101 - every SSL_CTX has one
    # Every CA listed in client_ca is a trust anchor, intermediates too (OpenSSL's partial
    # chain): a bundle of intermediates admits only their leaves, so a retired
    # intermediate (`ca rotate --retire`) is refused although its root is still trusted.
    flags = _X509_V_FLAG_PARTIAL_CHAIN
    for crl in crls:
        store.add_crl(crl)
    if crls:
        flags |= _X509_V_FLAG_CRL_CHECK
    store.set_flags(flags)
    issuers = frozenset(crl.issuer for crl in crls)
    mode = SSL.VERIFY_PEER
    if client_auth == "required":
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    callback = _verify_callback(issuers, explain=explain and client_auth == "optional")
    ctx.set_verify(mode, callback)
    if alpn:
        ctx.set_alpn_select_callback(_alpn_select(tuple(alpn)))
    try:
        san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    return ServerContext(ctx, tuple(chain), tuple(cas), uris, mode, callback)


def _alpn_select(ours: tuple[bytes, ...]) -> _AlpnCallback:
    def select(conn: SSL.Connection, offered: list[bytes]) -> Any:
        for proto in ours:
            if proto in offered:
                return proto
        return SSL.NO_OVERLAPPING_PROTOCOLS  # go on without ALPN rather than fail

    return select


def _refusal(
    cert: Path, key: Path | None, password: bytes | None, shown: str, exc: ssl.SSLError
) -> TLSConfigError:
    """Why OpenSSL refused a client certificate and key, never guessed.

    A mismatch is claimed only when the public keys differ. When they match, the cause is
    the certificate itself (OpenSSL's security level: an RSA-1024 key, a SHA-1 signature,
    "ee key too small" / "ca md too weak"), told as `cert verify` tells it.
    """
    reason = exc.reason or str(exc)
    try:
        chain = load_certificates(read_file(cert, "the client certificate"), cert)
        private_key = load_private_key(
            read_file(key or cert, "the client private key"), key or cert, password=password
        )
    except MtlsKitError:
        return TLSConfigError(
            f"OpenSSL refused {shown} ({reason})", "check the certificate and key files"
        )
    if not key_matches_certificate(private_key, chain[0]):
        return TLSConfigError(
            f"{key or cert} does not match {shown} ({chain[0].subject.rfc4514_string()}): "
            "their public keys differ",
            "give the key created with that certificate",
        )
    weak = client_strength(chain)
    if weak is None:
        return TLSConfigError(
            f"OpenSSL refused {shown} ({reason}); its key matches the certificate",
            "check the certificate with 'mtlskit cert verify --purpose client'",
        )
    return TLSConfigError(f"{shown}: {weak[0]}; OpenSSL will not send it ({reason})", weak[1])


def status_server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """The status listener's TLS off loopback: the gateway's certificate, a client one required.

    The stdlib is enough there (a few operators, no CA names to advertise beyond the
    trust file); TLS 1.2+, AEAD suites, no compression or renegotiation as everywhere.

    Raises:
        TLSConfigError: the certificate, key or client CA cannot be loaded.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _harden(ctx, "1.2")
    ctx.verify_mode = ssl.CERT_REQUIRED  # no certificate, no handshake: fail closed
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"status listener TLS: {exc} (tls.cert {cert}, tls.key {key}, "
            f"status_tls.client_ca {client_ca})",
            "check that --cert/--key match and --status-client-ca is a PEM CA certificate",
        ) from exc
    return ctx


def client_context(
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    key_password: bytes | None = None,
    min_version: str = "1.2",
    check_hostname: bool = True,
    shown_as: str | None = None,
) -> ssl.SSLContext:
    """Build a client context: verify the server against `ca` (or the system store).

    Args:
        ca: roots for the server chain; None uses the system store.
        cert: the client certificate (PEM, may hold the chain).
        key: its private key (None: in `cert`).
        key_password: the key's password.
        min_version: "1.2" or "1.3".
        check_hostname: match the server certificate against the server name.
        shown_as: how errors name the certificate (a PKCS#12 unpacked to a temp file).

    Raises:
        TLSConfigError: unreadable files, a key that does not match the certificate (the
            public keys compared), or a certificate OpenSSL's security level refuses
            (with the trust module's reason code and fix).
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    _harden(ctx, min_version)
    ctx.check_hostname = check_hostname
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, key, password=key_password)
        except ssl.SSLError as exc:
            raise _refusal(cert, key, key_password, shown_as or str(cert), exc) from exc
        except OSError as exc:
            raise TLSConfigError(f"cannot read {cert}: {exc.strerror}", "check the path") from exc
    return ctx
