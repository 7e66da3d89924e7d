"""Who the client is (PeerIdentity) and how the workload learns it: XFCC, RFC 9440, templates."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, cast
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mtlskit.errors import CertificateLoadError, ConfigError, MtlsKitError
from mtlskit.pki.store import format_serial

__all__ = [
    "STRIPPED_HEADERS",
    "TEMPLATE_OPERATORS",
    "XFCC_FIELDS",
    "IdentityHeaderError",
    "IdentityHeaders",
    "PeerIdentity",
    "build_identity_block",
    "from_headers",
    "parse_xfcc",
    "render_header_template",
    "rfc9440_headers",
    "strip_identity_headers",
    "validate_header_template",
    "xfcc_value",
]

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
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
     "proxy-connection", "te", "trailer", "upgrade"}
)  # fmt: skip
_XFCC_PAIR: Final = re.compile(
    r'[ \t]*([^=;,"\s]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;,"]*?))[ \t]*(?:([;,])|\Z)', re.S
)
_NEEDS_SHORT_NAMES: Final = re.compile(r"(?:^|[,+])(?:STREET|[0-9]+(?:\.[0-9]+)+)=")
_UNESCAPE: Final = functools.partial(re.compile(r"\\(.)", re.S).sub, r"\1")
_SF_BINARY: Final = re.compile(r"[ \t]*:([A-Za-z0-9+/]*=*):(?:;[^,]*)?[ \t]*")  # RFC 8941 4.2.7


class IdentityHeaderError(MtlsKitError, ValueError):
    """Identity headers are malformed, or an identity value cannot travel in a header."""


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
        serial: uppercase hex (mtlskit.pki.store.format_serial).
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


# -- Envoy x-forwarded-client-cert ----------------------------------------------------------
def _xfcc_plain(value: str) -> str:
    if not _XFCC_NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=64)
def _xfcc_field_set(fields: tuple[str, ...]) -> frozenset[str]:
    try:
        return frozenset(_XFCC_CANON[f.lower()] for f in fields)
    except (KeyError, AttributeError):
        raise ConfigError(
            f"unknown XFCC field in {list(fields)!r}",
            f"choose from {', '.join(XFCC_FIELDS)} (By is set from the gateway's own URI SAN)",
        ) from None


def xfcc_value(
    identity: PeerIdentity, *, fields: Iterable[str] = XFCC_FIELDS, by: str | None = None
) -> str:
    """The x-forwarded-client-cert element Envoy (SANITIZE_SET) would send for this client.

    Format (envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers, and
    source/common/http/conn_manager_utility.cc): `;`-separated `Key=value` pairs in Envoy's
    order By, Hash, Cert, Chain, Subject, URI, DNS, whatever order `fields` lists them in.
    `Hash` is lowercase hex SHA-256 of the DER leaf. `Cert` and `Chain` (leaf, then the
    intermediates sent) are PEM URL-encoded as Envoy does (only LF, space, `+`, `/` and `=`
    are replaced), in double quotes. `Subject` is always quoted and written as OpenSSL's
    RFC 2253 output, whose own escaping already backslash-escapes every `"` and `\\` inside.
    One `URI=` per URI SAN (an empty `URI=` when there is none, as Envoy does), one `DNS=` per
    DNS SAN. By/URI/DNS values holding `, ; = " \\` or whitespace are quoted (the doc's rule;
    Envoy itself never quotes them).

    Args:
        identity: the client.
        fields: which optional keys to emit (case-insensitive).
        by: the gateway's own URI SAN, emitted first as `By=`.

    Raises:
        ConfigError: `fields` names a key Envoy does not define.
    """
    wanted = _xfcc_field_set(tuple(fields))
    parts = [f"By={_xfcc_plain(by)}"] if by else []
    if "Hash" in wanted:
        parts.append(f"Hash={identity.fingerprint_sha256}")
    if "Cert" in wanted:
        parts.append(f'Cert="{_url_pem(identity.leaf_der)}"')
    if "Chain" in wanted:
        chain = _url_pem(identity.leaf_der) + "".join(map(_cached_url_pem, identity.chain_der))
        parts.append(f'Chain="{chain}"')
    if "Subject" in wanted:
        parts.append(f'Subject="{_header_dn(identity)}"')
    if "URI" in wanted:
        parts.extend(f"URI={_xfcc_plain(u)}" for u in identity.uri_sans or ("",))
    if "DNS" in wanted:
        parts.extend(f"DNS={_xfcc_plain(d)}" for d in identity.dns_sans)
    return ";".join(parts)


def parse_xfcc(value: str) -> list[list[tuple[str, str]]]:
    """Split an XFCC header into elements (one per proxy, closest proxy last) of pairs.

    Quoted values may hold `,` `;` `=` and backslash-escaped characters, and are unescaped,
    except `Subject`, kept verbatim: its backslashes are RFC 4514 escapes (Envoy writes the
    DN between quotes as is). Cert and Chain stay URL-encoded. Keys keep their spelling.

    Raises:
        IdentityHeaderError: an unclosed quote, a pair without `=`, or an empty element
            (which would make an earlier, client-supplied element look like the last one).
    """
    elements: list[list[tuple[str, str]]] = []
    element: list[tuple[str, str]] = []
    value, pos = value.strip(), 0
    while pos < len(value):
        match = _XFCC_PAIR.match(value, pos)
        if match is None:
            raise IdentityHeaderError(
                f"malformed x-forwarded-client-cert at offset {pos}: {value[pos : pos + 20]!r} "
                'is not Key=value or Key="quoted value"'
            )
        key, quoted, plain, sep = match.groups()
        if quoted is None:
            element.append((key, plain))
        else:
            element.append((key, quoted if key.lower() == "subject" else _UNESCAPE(quoted)))
        pos = match.end()
        if sep != ";":
            elements.append(element)
            element = []
            if sep == "," and pos == len(value):
                raise IdentityHeaderError("x-forwarded-client-cert ends with an empty element")
    if element:
        elements.append(element)
    return elements


def _one(pairs: list[tuple[str, str]], key: str) -> str | None:
    values = [v for k, v in pairs if k.lower() == key]
    if len(values) > 1:
        raise IdentityHeaderError(f"the closest proxy's XFCC element has {len(values)} {key} keys")
    return values[0] if values else None


def _load_pems(encoded: str, key: str) -> list[bytes]:
    try:
        certs = x509.load_pem_x509_certificates(unquote(encoded).encode("latin-1"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise IdentityHeaderError(f"XFCC {key} is not URL-encoded PEM: {exc}") from exc
    return [c.public_bytes(Encoding.DER) for c in certs]


def _from_xfcc(value: str) -> PeerIdentity | None:
    elements = parse_xfcc(value)
    if not elements:
        return None
    last = elements[-1]  # added by the proxy closest to us: the only one we can trust
    cert, chain, digest = _one(last, "cert"), _one(last, "chain"), _one(last, "hash")
    chain_der = _load_pems(chain, "Chain") if chain is not None else []
    if cert is not None:
        leaf = _load_pems(cert, "Cert")
        if len(leaf) != 1:
            raise IdentityHeaderError(f"XFCC Cert holds {len(leaf)} certificates, not one")
        if chain_der and chain_der[0] != leaf[0]:
            raise IdentityHeaderError("XFCC Chain does not start with the Cert leaf")
        chain_der = chain_der or leaf
    if not chain_der:
        raise IdentityHeaderError(
            "the closest proxy's x-forwarded-client-cert element has no Cert, so the client "
            "certificate cannot be rebuilt",
            "make the proxy add it (Envoy: set_current_client_cert_details.cert: true; mtlskit "
            "does by default), or read Hash/Subject/URI/DNS with mtlskit.identity.parse_xfcc()",
        )
    identity = _identity_from_der(chain_der[0], chain_der[1:], "x-forwarded-client-cert")
    if digest is not None and not hmac.compare_digest(
        digest.lower().encode(), identity.fingerprint_sha256.encode()
    ):
        raise IdentityHeaderError(
            f"XFCC Hash {digest} does not match the Cert (SHA-256 {identity.fingerprint_sha256})"
        )
    return identity


# -- RFC 9440 Client-Cert / Client-Cert-Chain -----------------------------------------------
def rfc9440_headers(identity: PeerIdentity) -> list[tuple[str, str]]:
    """`Client-Cert` and, when the client sent intermediates, `Client-Cert-Chain`.

    RFC 9440 section 2: each value is an RFC 8941 Byte Sequence, `:` base64(DER) `:`; the
    chain is a List of them, leaf excluded, the leaf's issuer first.
    """
    headers = [("Client-Cert", _sf_binary(identity.leaf_der))]
    if identity.chain_der:
        headers.append(("Client-Cert-Chain", ", ".join(map(_sf_binary, identity.chain_der))))
    return headers


def _sf_bytes(item: str, header: str) -> bytes:
    match = _SF_BINARY.fullmatch(item)
    if match is None:
        raise IdentityHeaderError(f"{header}: {item.strip()[:40]!r}... is not :base64: (RFC 9440)")
    data = match.group(1)
    try:  # RFC 8941 4.2.7: parsers SHOULD NOT fail when '=' padding is missing
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error as exc:
        raise IdentityHeaderError(f"{header}: invalid base64: {exc}") from exc


def _identity_from_der(leaf: bytes, chain: Iterable[bytes], header: str) -> PeerIdentity:
    chain = tuple(chain)
    try:
        for der in chain:
            x509.load_der_x509_certificate(der)
        return PeerIdentity.from_der(leaf, chain)
    except (ValueError, CertificateLoadError) as exc:
        raise IdentityHeaderError(f"{header} does not hold a valid certificate: {exc}") from exc


# -- the workload side ------------------------------------------------------------------------
HeaderInput = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")  # HTTP field octets; certificate data is ASCII anyway
    if isinstance(value, str):
        return value
    raise IdentityHeaderError(f"a header name or value is {type(value).__name__}, not str/bytes")


def from_headers(headers: HeaderInput) -> PeerIdentity | None:
    """The client identity a trusted proxy (mtlskit, Envoy, Istio) put in the request headers.

    Prefers RFC 9440 `Client-Cert` (+ `Client-Cert-Chain`); otherwise reads the last
    x-forwarded-client-cert element, the one the closest proxy added, and rebuilds the
    identity from its `Cert` (checked against its `Hash`). Only call this when every request
    reaches the app through that proxy, which strips client-sent copies.

    Args:
        headers: a mapping (dict, Flask/Starlette headers) or (name, value) pairs, str or
            bytes; names are case-insensitive and repeated fields are joined with `,`.

    Returns:
        The identity, or None when no identity header is present.

    Raises:
        IdentityHeaderError: a header is malformed, its certificate does not parse, the Hash
            does not match, or the XFCC element has no Cert. An element without Cert is an
            error rather than a partial identity: every field here is meant to be checked, and
            a silently half-empty identity would make policy code quietly wrong.
    """
    found: dict[str, list[str]] = {}
    items = getattr(headers, "items", None)
    pairs = cast("Iterable[object]", items() if callable(items) else headers)
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise IdentityHeaderError("headers must be a mapping or (name, value) pairs")
        name = _text(pair[0]).strip().lower()
        if name in STRIPPED_HEADERS and (value := _text(pair[1]).strip()):
            found.setdefault(name, []).append(value)
    if "client-cert" in found:
        leaf = _sf_bytes(",".join(found["client-cert"]), "Client-Cert")
        items_ = ",".join(found.get("client-cert-chain", [])).split(",")
        chain = [_sf_bytes(i, "Client-Cert-Chain") for i in items_ if i.strip()]
        return _identity_from_der(leaf, chain, "Client-Cert")
    if "client-cert-chain" in found:
        raise IdentityHeaderError("Client-Cert-Chain arrived without Client-Cert (RFC 9440 2.2)")
    if "x-forwarded-client-cert" in found:
        return _from_xfcc(",".join(found["x-forwarded-client-cert"]))
    return None


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
    identity: PeerIdentity, config: IdentityHeaders, *, by: str | None = None
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


def strip_identity_headers(
    headers: list[tuple[bytes, bytes]], config: IdentityHeaders
) -> list[tuple[bytes, bytes]]:
    """Drop client-sent identity headers (XFCC, Client-Cert[-Chain], custom, extra names).

    Names compare case-insensitively, `_` as `-` (Envoy SANITIZE_SET, made WSGI-proof).
    """
    names = config.stripped_names
    return [(n, v) for n, v in headers if n.lower().replace(b"_", b"-") not in names]
