"""The network shell shared by probe and request: TCP, TLS handshake, the first read, identity."""

from __future__ import annotations

import select
import socket
import ssl
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from mtlskit.client.events import Recorder
from mtlskit.client.observed import Handshake
from mtlskit.client.tlswire import WireError, certificate_list, certificate_request
from mtlskit.errors import CertificateLoadError, ConfigError
from mtlskit.pki.files import PRIVATE, OutputFile, read_file, write_files
from mtlskit.pki.pem import (
    certs_to_pem,
    load_bundle,
    load_private_key,
    private_key_to_pem,
)
from mtlskit.tlsconfig import client_context
from mtlskit.trust import VerificationResult, client_strength, verify_chain

__all__ = [
    "Attempt",
    "ClientIdentity",
    "ServerTrust",
    "ca_names",
    "chain_complete",
    "connect",
    "identity_context",
    "load_identity",
    "server_chain",
    "system_trust",
    "verify_server",
]


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """The client's certificate chain (leaf first) and the files OpenSSL loads it from."""

    chain: tuple[x509.Certificate, ...]
    cert: Path
    key: Path | None
    password: bytes | None = None
    pkcs12: bytes | None = None  # the PKCS#12 file's bytes; unpacked per connection


@dataclass(frozen=True, slots=True)
class ServerTrust:
    """Trust anchors for the server chain and known intermediates (hints only).

    Attributes:
        anchors: trusted roots.
        hints: known intermediates (never trusted, only used to name a missing one).
        source: "--ca FILE" or "system store".
        ca_file: a file OpenSSL can load for `request`'s own verification, if any.
    """

    anchors: tuple[x509.Certificate, ...]
    hints: tuple[x509.Certificate, ...] = ()
    source: str = "system store"
    ca_file: Path | None = None


def load_identity(
    cert: str, key: str | None, *, cert_type: str = "pem", password: bytes | None = None
) -> ClientIdentity:
    """Read --cert/--key (PEM chain + key, or a PKCS#12 holding both).

    Raises:
        ConfigError: no key for a PEM certificate, or a PKCS#12 without a key.
        CertificateLoadError, KeyPasswordError: unreadable files.
    """
    data = read_file(cert, "the client certificate (PEM chain or PKCS#12)")
    bundle = load_bundle(data, cert, password=password)
    if cert_type == "p12" or bundle.kind == "PKCS#12":
        if bundle.key is None or not bundle.certificates:
            raise ConfigError(f"{cert}: the PKCS#12 holds no key and certificate", "")
        return ClientIdentity(bundle.certificates, Path(cert), None, password, data)
    if key is None and bundle.key is None:
        raise ConfigError("--cert needs --key", "give the client's private key with --key")
    if key is not None:
        try:
            load_private_key(read_file(key, "the client private key"), key, password=password)
        except CertificateLoadError as exc:
            # A key cryptography cannot read (an EC curve outside P-256/384/521): say what
            # `cert verify` says of the certificate, which names the code and the fix.
            weak = client_strength(bundle.certificates)
            if weak is None:
                raise
            raise ConfigError(f"{cert}: {weak[0]}; no TLS peer will take it", weak[1]) from exc
    return ClientIdentity(bundle.certificates, Path(cert), Path(key) if key else None, password)


@contextmanager
def identity_context(identity: ClientIdentity | None, **kwargs: object) -> Iterator[ssl.SSLContext]:
    """A client_context() presenting `identity`; PKCS#12 passes through a 0700 temp dir."""
    if identity is None or identity.pkcs12 is None:
        yield client_context(
            cert=identity.cert if identity else None,
            key=identity.key if identity else None,
            key_password=identity.password if identity else None,
            **kwargs,  # type: ignore[arg-type]
        )
        return
    bundle = load_bundle(identity.pkcs12, identity.cert, password=identity.password)
    assert bundle.key is not None  # noqa: S101 - load_identity checked it
    with tempfile.TemporaryDirectory(prefix="mtlskit-") as tmp:
        cert_path, key_path = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        write_files(
            [
                OutputFile(cert_path, certs_to_pem(bundle.certificates)),
                OutputFile(key_path, private_key_to_pem(bundle.key), PRIVATE),
            ]
        )
        yield client_context(
            cert=cert_path,
            key=key_path,
            shown_as=str(identity.cert),
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass
class Attempt:
    """One connection: the Handshake facts so far, what was recorded, and the live socket.

    `sock` is open only when established. The facts are a frozen value, replaced as the
    connection goes (note()); probe and request build their Observation from them.
    """

    recorder: Recorder
    facts: Handshake = field(default_factory=Handshake)
    alpn: str | None = None
    peer_leaf: bytes | None = None
    sock: ssl.SSLSocket | None = None
    errors: list[str] = field(default_factory=list)

    def note(self, **facts: Any) -> None:
        """Record what the connection has come to (connect, handshake_error, after...)."""
        self.facts = replace(self.facts, **facts)

    def tls_json(self) -> dict[str, Any]:
        """What was negotiated, for --json."""
        return {
            "version": self.facts.tls_version or None,
            "cipher": self.facts.cipher or None,
            "alpn": self.alpn,
        }

    def events_json(self) -> list[dict[str, Any]]:
        """The recorded handshake events, for --json."""
        return [e.to_json() for e in self.recorder.events]

    def close(self) -> None:
        """Close the socket if open."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"CERTIFICATE_VERIFY_FAILED: {exc.verify_message}"
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "EOF"
    return str(exc.reason or exc.strerror or exc)


def connect(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    *,
    servername: str,
    timeout: float,
    settle: float = 0.0,
) -> Attempt:
    """TCP connect, TLS handshake with a recorder attached, then (settle > 0) a first read.

    The first read matters under TLS 1.3: a server rejects the client's certificate only
    after the client's Finished, so the alert arrives on the first read, not on connect.
    The read stops at a server alert, a session ticket (the server accepted us), data, EOF,
    or after `settle` seconds of quiet.
    """
    attempt = Attempt(Recorder())
    attempt.recorder.attach(ctx)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        attempt.note(connect="refused")
        return attempt
    except TimeoutError:
        attempt.note(connect="timeout")
        return attempt
    except OSError as exc:
        attempt.note(connect="unreachable")
        attempt.errors.append(str(exc))
        return attempt
    sock = ctx.wrap_socket(raw, server_hostname=servername, do_handshake_on_connect=False)
    sock.settimeout(timeout)
    try:
        sock.do_handshake()
    except TimeoutError:
        attempt.note(handshake_timeout=True)
    except ssl.SSLError as exc:
        attempt.note(handshake_error=_reason(exc))
    except OSError:  # reset by peer mid-handshake
        attempt.note(handshake_error="EOF")
    if attempt.facts.handshake_timeout or attempt.facts.handshake_error:
        sock.close()
        return attempt
    cipher = sock.cipher()
    attempt.note(
        established=True, tls_version=sock.version() or "", cipher=cipher[0] if cipher else ""
    )
    attempt.alpn = sock.selected_alpn_protocol()
    attempt.peer_leaf = sock.getpeercert(binary_form=True)
    attempt.sock = sock
    if settle > 0:
        _first_read(attempt, sock, settle)
    return attempt


def _settled(recorder: Recorder) -> bool:
    return any(
        e.sender == "server" and (e.kind == "alert" or e.name == "NewSessionTicket")
        for e in recorder.events
    )


def _first_read(attempt: Attempt, sock: ssl.SSLSocket, settle: float) -> None:
    deadline = time.monotonic() + settle
    sock.setblocking(False)
    try:
        while not _settled(attempt.recorder):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                attempt.note(after="quiet")
                return
            if not sock.pending():
                select.select([sock], [], [], remaining)
            try:
                data = sock.recv(4096)
            except ssl.SSLWantReadError:
                continue
            except ssl.SSLError as exc:
                attempt.note(after="alert" if _settled(attempt.recorder) else "closed")
                if attempt.facts.after == "closed":
                    attempt.errors.append(_reason(exc))
                attempt.close()
                return
            except OSError:
                attempt.note(after="closed")
                attempt.close()
                return
            attempt.note(after="accepted" if data else "closed")
            return
        alerted = any(e.sender == "server" and e.kind == "alert" for e in attempt.recorder.events)
        attempt.note(after="alert" if alerted else "accepted")
    finally:
        if attempt.sock is not None:
            attempt.sock.setblocking(True)


def server_chain(attempt: Attempt) -> tuple[list[x509.Certificate], str]:
    """The server's certificates as sent and where they came from.

    Returns:
        (certificates, source): source is "certificate_message" (the whole chain from the
        recorded Certificate message), "peer_leaf_only" (the ssl module's leaf, when no
        message was recorded) or "none".
    """
    found = attempt.recorder.message("server", "Certificate")
    if found is not None:
        try:
            ders = certificate_list(found[0], tls13=found[1])
            return [x509.load_der_x509_certificate(d) for d in ders], "certificate_message"
        except (WireError, ValueError) as exc:
            attempt.errors.append(f"server Certificate message: {exc}")
    if attempt.peer_leaf:
        return [x509.load_der_x509_certificate(attempt.peer_leaf)], "peer_leaf_only"
    return [], "none"


def chain_complete(sent: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]) -> bool:
    """Whether the server sent what leads to a root: intermediates present, root not needed.

    Complete when the top certificate sent is self-signed, is issued by a trusted root, or
    is itself a CA (an intermediate was sent; only the root, which is never needed, is
    missing). A leaf alone whose issuer is no trusted root is incomplete.
    """
    top = sent[-1]
    if top.issuer == top.subject or any(a.subject == top.issuer for a in anchors):
        return True
    try:
        return bool(top.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def verify_server(
    sent: Sequence[x509.Certificate], trust: ServerTrust, *, host: str, now: datetime
) -> VerificationResult:
    """The trust module's verdict on the server chain (purpose server, for `host`)."""
    return verify_chain(
        sent[0],
        sent[1:],
        trust.anchors,
        purpose="server",
        now=now,
        host=host,
        hints=trust.hints,
    )


def system_trust() -> ServerTrust:
    """The system's roots as OpenSSL loads them by default (unparsable ones skipped)."""
    ctx = ssl.create_default_context()
    roots = []
    for der in ctx.get_ca_certs(binary_form=True):
        with warnings.catch_warnings():
            # Some system roots predate RFC 5280 (negative serials): usable, just old.
            warnings.simplefilter("ignore")
            try:
                roots.append(x509.load_der_x509_certificate(bytes(der)))
            except ValueError:
                continue
    paths = ssl.get_default_verify_paths()
    ca_file = Path(paths.cafile) if paths.cafile else None
    return ServerTrust(tuple(roots), (), f"system store ({len(roots)} roots)", ca_file)


def ca_names(a: Attempt) -> tuple[list[bytes] | None, str]:
    """The CA names of the server's CertificateRequest, and where they came from.

    Returns:
        (DER names or None, source): "tls12_certificate_request" or
        "tls13_certificate_request"; "not_requested"; "unavailable" (no message callback
        in this Python, or an unreadable message).
    """
    found = a.recorder.message("server", "CertificateRequest")
    if found is None:
        return None, "not_requested" if a.recorder.available else "unavailable"
    try:
        names = certificate_request(found[0], tls13=found[1])
    except WireError as exc:
        a.errors.append(f"CertificateRequest: {exc}")
        return None, "unavailable"
    return names, "tls13_certificate_request" if found[1] else "tls12_certificate_request"
