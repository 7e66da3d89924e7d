"""The only place TLS options are set: server and client SSLContexts, hardened, with reasons."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from mtlskit._openssl_ca_names import advertise_client_ca_names
from mtlskit.errors import TLSConfigError
from mtlskit.pki.files import read_file
from mtlskit.pki.pem import key_matches_certificate, load_certificates, load_private_key

__all__ = ["TLS12_CIPHERS", "ServerContext", "client_context", "server_context"]

# TLS 1.2 suites: ECDHE for forward secrecy, AEAD only (no CBC: Lucky13, POODLE-TLS), in the
# order Mozilla's "intermediate" profile uses. TLS 1.3 suites are all AEAD already.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _harden(ctx: ssl.SSLContext, min_version: str) -> None:
    ctx.minimum_version = _VERSIONS[min_version]  # SSLv3/TLS1.0/1.1 are broken or deprecated
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION  # CRIME
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # renegotiation DoS and CVE-2009-3555 class bugs
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE


class ServerContext:
    """A server SSLContext and what was learned while building it.

    Attributes:
        context: the ssl.SSLContext to serve with.
        chain: the server's certificates as loaded (leaf first).
        client_cas: the client CA certificates (trust anchors).
        ca_names_note: None when client CA names are advertised, else why not.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        chain: list[x509.Certificate],
        client_cas: list[x509.Certificate],
        ca_names_note: str | None,
    ) -> None:
        self.context = context
        self.chain = chain
        self.client_cas = client_cas
        self.ca_names_note = ca_names_note


def _check_ca_file(path: Path) -> list[x509.Certificate]:
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


def server_context(
    cert: Path,
    key: Path,
    client_ca: Path,
    *,
    min_version: str = "1.2",
    session_tickets: int = 2,
    require_client_cert: bool = True,
) -> ServerContext:
    """Build the gateway's server context: mTLS required, TLS 1.2+, AEAD only.

    Args:
        cert: the server chain, leaf first then intermediates (all of it is sent).
        key: the leaf's private key (unencrypted PEM).
        client_ca: the root(s) client chains must lead to.
        min_version: "1.2" or "1.3".
        session_tickets: TLS 1.3 tickets sent after a full handshake (0 disables
            resumption and saves their cost).
        require_client_cert: False only for tests of what clients see.

    Raises:
        TLSConfigError: unreadable files, a key that does not match, a CA file that is not
            a CA.
    """
    chain = load_certificates(read_file(cert, "the server certificate chain"), cert)
    private_key = load_private_key(read_file(key, "the server private key"), key)
    if not key_matches_certificate(private_key, chain[0]):
        raise TLSConfigError(
            f"{key} does not match the first certificate in {cert} "
            f"({chain[0].subject.rfc4514_string()})",
            "give the key created with that certificate, and put the leaf first in --cert",
        )
    cas = _check_ca_file(client_ca)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, min_version)
    ctx.num_tickets = session_tickets
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"OpenSSL refused {cert} / {key}: {exc}", "check the PEM files"
        ) from exc
    note = advertise_client_ca_names(ctx, client_ca)
    return ServerContext(ctx, chain, cas, note)


def client_context(
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    key_password: bytes | None = None,
    min_version: str = "1.2",
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """Build a client context: verify the server against `ca` (or the system store).

    Raises:
        TLSConfigError: unreadable files or a key that does not match the certificate.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    _harden(ctx, min_version)
    ctx.check_hostname = check_hostname
    if cert is not None:
        try:
            ctx.load_cert_chain(cert, key, password=key_password)
        except ssl.SSLError as exc:
            raise TLSConfigError(
                f"{key or cert} does not match {cert} ({exc.reason})",
                "give the key created with that certificate",
            ) from exc
        except OSError as exc:
            raise TLSConfigError(f"cannot read {cert}: {exc.strerror}", "check the path") from exc
    return ctx
