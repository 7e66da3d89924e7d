"""PeerIdentity: who the client is, and the header-safe formats of its fields."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mtlskit.errors import CertificateLoadError
from mtlskit.pki.serials import format_serial

# Client-sent copies of these are always dropped (Envoy SANITIZE_SET): only we may set them.
STRIPPED_HEADERS: Final = frozenset({"x-forwarded-client-cert", "client-cert", "client-cert-chain"})
# Envoy's canonical XFCC order (conn_manager_utility.cc): By, Hash, Cert, Chain, Subject, URI, DNS.
XFCC_FIELDS: Final = ("Hash", "Cert", "Chain", "Subject", "URI", "DNS")
_XFCC_CANON: Final = {name.lower(): name for name in XFCC_FIELDS}
# OpenSSL/BoringSSL short names where cryptography prints a dotted OID or "STREET": header
# values use them, to read as Envoy's X509_NAME_print_ex(XN_FLAG_RFC2253) output does.
_OPENSSL_NAMES: Final = {
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.STREET_ADDRESS: "street",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
}
# Envoy docs (http_conn_man/headers, x-forwarded-client-cert): a value holding , ; or = must
# be double-quoted. We also quote on quote, backslash and whitespace, so parsing is unambiguous.
_XFCC_NEEDS_QUOTES: Final = re.compile(r'[,;="\\\s]')
_BAD_VALUE: Final = re.compile(r"[^\t\x20-\x7e]")  # RFC 9110 5.5: no CR, LF, NUL or other CTL
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2 field-name
_FRAMING: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)
_XFCC_PAIR: Final = re.compile(
    r'[ \t]*([^=;,"\s]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;,"]*?))[ \t]*(?:([;,])|\Z)', re.S
)
_NEEDS_SHORT_NAMES: Final = re.compile(r"(?:^|[,+])(?:STREET|[0-9]+(?:\.[0-9]+)+)=")
_UNESCAPE: Final = functools.partial(re.compile(r"\\(.)", re.S).sub, r"\1")
_SF_BINARY: Final = re.compile(r"[ \t]*:([A-Za-z0-9+/]*=*):(?:;[^,]*)?[ \t]*")  # RFC 8941 4.2.7


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The client of one TLS connection, as its leaf certificate says.

    Attributes:
        subject: the RFC 4514 string cryptography's `Name.rfc4514_string()` gives.
        issuer: the issuer's name, same format.
        common_name: the CN; with several, the last one in the certificate (as Go's pkix does).
        organizations: every O, in certificate order.
        organizational_units: every OU, in certificate order.
        dns_sans: DNS names from the SAN extension.
        uri_sans: URIs from the SAN extension.
        email_sans: rfc822 names from the SAN extension.
        ip_sans: IP addresses from the SAN extension, as `str(ipaddress)` prints them.
        serial: uppercase hex (mtlskit.pki.serials.format_serial).
        fingerprint_sha256: lowercase hex SHA-256 of the DER leaf, no colons (Envoy's Hash).
        not_before: start of validity (aware, UTC).
        not_after: end of validity (aware, UTC).
        leaf_der: the leaf, DER.
        chain_der: DER of the certificates the client sent after its leaf (may be empty).
    """

    subject: str
    issuer: str
    common_name: str | None
    organizations: tuple[str, ...]
    organizational_units: tuple[str, ...]
    dns_sans: tuple[str, ...]
    uri_sans: tuple[str, ...]
    email_sans: tuple[str, ...]
    ip_sans: tuple[str, ...]
    serial: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    leaf_der: bytes = field(repr=False)
    chain_der: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def spiffe_id(self) -> str | None:
        """The SPIFFE ID: the one spiffe:// URI SAN, or None when there is none or several."""
        ids = [uri for uri in self.uri_sans if uri.startswith("spiffe://")]
        return ids[0] if len(ids) == 1 else None

    @classmethod
    def from_der(cls, leaf_der: bytes, chain_der: Iterable[bytes] = ()) -> PeerIdentity:
        """Build the identity from the DER bytes a TLS stack hands over.

        Args:
            leaf_der: the client's leaf (`SSLObject.getpeercert(binary_form=True)`).
            chain_der: what the client sent after its leaf; a leading copy of the leaf
                (as `get_unverified_chain()` returns it) is dropped.

        Raises:
            CertificateLoadError: the leaf is not a parseable certificate.
        """
        try:
            cert = x509.load_der_x509_certificate(leaf_der)
        except ValueError as exc:
            raise CertificateLoadError(
                None, f"the peer certificate is not valid DER: {exc}"
            ) from exc
        return _build(cert, bytes(leaf_der), tuple(bytes(d) for d in chain_der))

    @classmethod
    def from_certificate(
        cls, cert: x509.Certificate, chain: Iterable[x509.Certificate] = ()
    ) -> PeerIdentity:
        """Build the identity from cryptography objects (leaf, then the intermediates sent)."""
        chain_der = tuple(c.public_bytes(Encoding.DER) for c in chain)
        return _build(cert, cert.public_bytes(Encoding.DER), chain_der)


def _strings(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(a.value for a in name.get_attributes_for_oid(oid) if isinstance(a.value, str))


def _build(cert: x509.Certificate, der: bytes, chain: tuple[bytes, ...]) -> PeerIdentity:
    if chain and chain[0] == der:
        chain = chain[1:]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CertificateLoadError(
            None, f"the peer certificate's SAN is unreadable: {exc}"
        ) from exc
    cns = _strings(cert.subject, NameOID.COMMON_NAME)
    return PeerIdentity(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=cns[-1] if cns else None,
        organizations=_strings(cert.subject, NameOID.ORGANIZATION_NAME),
        organizational_units=_strings(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        dns_sans=tuple(san.get_values_for_type(x509.DNSName)),
        uri_sans=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
        email_sans=tuple(san.get_values_for_type(x509.RFC822Name)),
        ip_sans=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        serial=format_serial(cert.serial_number),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        leaf_der=der,
        chain_der=chain,
    )


# -- formatting helpers (shared by XFCC and the template operators) -------------------------
def _header_dn(identity: PeerIdentity, issuer: bool = False) -> str:
    """The DN as OpenSSL's XN_FLAG_RFC2253 (so Envoy) prints it: OpenSSL short names, and
    non-ASCII and control characters as \\XX escapes of their UTF-8 bytes (ASN1_STRFLGS_ESC_MSB,
    ESC_CTRL). Header-safe; equal to `subject` for the usual CN/O/OU/C/L/ST/DC names."""
    text = identity.issuer if issuer else identity.subject
    if _NEEDS_SHORT_NAMES.search(text):  # rare: re-render with OpenSSL's attribute names
        cert = x509.load_der_x509_certificate(identity.leaf_der)
        text = (cert.issuer if issuer else cert.subject).rfc4514_string(_OPENSSL_NAMES)
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        ch if " " <= ch <= "~" else "".join(f"\\{b:02X}" for b in ch.encode("utf-8", "replace"))
        for ch in text
    )


def _url_pem(der: bytes) -> str:
    """PEM (64-column lines, as PEM_write_bio_X509 writes) URL-encoded as Envoy's
    urlEncodedPemEncodedPeerCertificate() (tls/connection_info_impl_base.cc) does: exactly
    LF, space, `+`, `/` and `=` become %0A %20 %2B %2F %3D; nothing else is touched."""
    b64 = base64.b64encode(der).decode("ascii")
    body = "%0A".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    body = body.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return f"-----BEGIN%20CERTIFICATE-----%0A{body}%0A-----END%20CERTIFICATE-----%0A"


_cached_url_pem: Final = functools.lru_cache(maxsize=64)(_url_pem)  # intermediates repeat


def _envoy_serial(identity: PeerIdentity) -> str:
    # BoringSSL's BN_bn2hex: lowercase, whole bytes ("0cb1..."; Envoy's test certs agree).
    sign, digits = (
        ("-", identity.serial[1:]) if identity.serial.startswith("-") else ("", identity.serial)
    )
    digits = digits.lower()
    return sign + ("0" + digits if len(digits) % 2 and digits != "0" else digits)


def _sf_binary(der: bytes) -> str:
    return f":{base64.b64encode(der).decode('ascii')}:"
