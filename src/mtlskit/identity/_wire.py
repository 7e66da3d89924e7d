"""XFCC (Envoy) and RFC 9440 Client-Cert: writing them, and reading them back."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Iterable, Mapping
from typing import Literal, cast
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.errors import CertificateLoadError, ConfigError, IdentityHeaderError
from mtlskit.identity._peer import (
    _SF_BINARY,
    _UNESCAPE,
    _XFCC_CANON,
    _XFCC_NEEDS_QUOTES,
    _XFCC_PAIR,
    STRIPPED_HEADERS,
    XFCC_FIELDS,
    PeerIdentity,
    _cached_url_pem,
    _header_dn,
    _sf_binary,
    _url_pem,
)

# -- Envoy x-forwarded-client-cert ----------------------------------------------------------
# Which element from_headers reads: "first" (the edge proxy's), "last", or an index.
XfccElement = Literal["first", "last"] | int


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
    identity: PeerIdentity,
    *,
    fields: Iterable[str] = XFCC_FIELDS,
    by: str | Iterable[str] | None = None,
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
        by: the gateway's own URI SAN(s), each emitted first as a `By=` pair (Envoy: one
            per URI SAN of the proxy's certificate).

    Raises:
        ConfigError: `fields` names a key Envoy does not define.
    """
    wanted = _xfcc_field_set(tuple(fields))
    bys = (by,) if isinstance(by, str) else tuple(by or ())
    parts = [f"By={_xfcc_plain(b)}" for b in bys if b]
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
        raise IdentityHeaderError(f"the chosen XFCC element has {len(values)} {key} keys")
    return values[0] if values else None


def _load_pems(encoded: str, key: str) -> list[bytes]:
    try:
        certs = x509.load_pem_x509_certificates(unquote(encoded).encode("latin-1"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise IdentityHeaderError(f"XFCC {key} is not URL-encoded PEM: {exc}") from exc
    return [c.public_bytes(Encoding.DER) for c in certs]


def _check_element(element: object) -> None:
    # bool is an int: element=True would silently mean index 1
    if isinstance(element, bool) or not isinstance(element, int | str):
        raise TypeError(f"element must be 'first', 'last' or an int, not {element!r}")
    if isinstance(element, str) and element not in ("first", "last"):
        raise ValueError(f"element must be 'first', 'last' or an int, not {element!r}")


def _index(element: XfccElement, count: int) -> int:
    if element == "first":
        return 0
    if element == "last":
        return count - 1
    assert isinstance(element, int)  # noqa: S101  (narrowing: _check_element ran first)
    if not -count <= element < count:
        raise IdentityHeaderError(
            f"x-forwarded-client-cert has {count} element(s); element={element} is not one",
            "count the proxies that append an element behind the edge, or use element='first'",
        )
    return element % count


def _values(pairs: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in pairs if k.lower() == key]


def _no_cert(elements: list[list[tuple[str, str]]], index: int, element: XfccElement) -> str:
    pairs = elements[index]
    where = f"element {index + 1} of {len(elements)} (element={element!r})"
    peer = ", ".join(_values(pairs, "uri")) or "none"
    by = ", ".join(_values(pairs, "by")) or "none"
    return (
        f"the chosen x-forwarded-client-cert {where} has no Cert or Chain, so it names no "
        f"client certificate (its By={by}, URI={peer}): an element like this is written by a "
        "mesh proxy about its own peer (an Istio sidecar describing the ingress gateway), and "
        "its identity is never returned as the client's"
    )


def _no_cert_hint(elements: list[list[tuple[str, str]]], index: int) -> str:
    with_cert = [i + 1 for i, e in enumerate(elements) if _values(e, "cert") or _values(e, "chain")]
    if with_cert and index != with_cert[0] - 1:
        return (
            f"element {with_cert[0]} carries a Cert: behind Kyma/Istio the edge client's "
            "element is the first (from_headers(headers, element='first'), the default)"
        )
    return (
        "make the edge proxy add it (Envoy: set_current_client_cert_details.cert: true; "
        "mtlskit does by default), or read Hash/Subject/URI/DNS with "
        "mtlskit.identity.parse_xfcc()"
    )


def _check_via(elements: list[list[tuple[str, str]]], index: int, via: str) -> None:
    last = elements[-1]
    peers = _values(last, "uri")
    if index == len(elements) - 1 or via not in peers:
        seen = ", ".join(peers) or "no URI"
        raise IdentityHeaderError(
            f"x-forwarded-client-cert does not show the request arriving from {via}: the "
            f"last element, the one the workload's own proxy wrote, names {seen}"
            + (" and is the chosen element itself" if index == len(elements) - 1 else ""),
            "the request did not come straight from the ingress gateway (another workload "
            "may have written the earlier elements); allow only the gateway to call this "
            "workload (an Istio AuthorizationPolicy on source.principals)",
        )


def _from_xfcc(value: str, element: XfccElement, via: str | None) -> PeerIdentity | None:
    elements = parse_xfcc(value)
    if not elements:
        return None
    index = _index(element, len(elements))
    if via is not None:
        _check_via(elements, index, via)
    chosen = elements[index]
    cert, chain, digest = _one(chosen, "cert"), _one(chosen, "chain"), _one(chosen, "hash")
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
            _no_cert(elements, index, element), _no_cert_hint(elements, index)
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


def from_headers(
    headers: HeaderInput, *, element: XfccElement = "first", via: str | None = None
) -> PeerIdentity | None:
    """The client identity a trusted proxy (mtlskit, Envoy, Istio) put in the request headers.

    Prefers RFC 9440 `Client-Cert` (+ `Client-Cert-Chain`); otherwise reads one
    x-forwarded-client-cert element and rebuilds the identity from its `Cert` (checked
    against its `Hash`). Only call this when every request reaches the app through that
    proxy, which strips client-sent copies.

    Which XFCC element: XFCC is a list, one element per proxy that appended one. The edge
    proxy (mtlskit always; Istio/Kyma ingress gateways by default, SANITIZE_SET) drops any
    XFCC the client sent and writes exactly one element, about the client's certificate;
    proxies behind it (the workload's sidecar, APPEND_FORWARD) append theirs after it, about
    their own peer and without `Cert`. So the edge client's element is the first, however
    many hops follow; counting from the end would break whenever a hop is added or removed
    (a sidecar appends nothing when mesh mTLS is off). `element="last"` suits an edge that
    appends client-sent values (APPEND_FORWARD) with no proxy behind it. The chosen element
    is used or refused: when it has no `Cert`, this raises rather than fall back to another
    element, so a mesh proxy's own identity is never taken for the client's.

    With "first", a caller that reaches the workload without passing the edge (another pod
    in the mesh) can write the first element itself. Give `via` (the ingress gateway's
    SPIFFE ID) to require that the last element, the one the workload's own sidecar writes
    about the peer it verified, names it; or allow only the gateway to call the workload.

    Args:
        headers: a mapping (dict, Flask/Starlette headers) or (name, value) pairs, str or
            bytes; names are case-insensitive and repeated fields are joined with `,`.
        element: "first" (default), "last", or an index into the elements (negative counts
            from the end).
        via: a URI the last XFCC element's `URI=` must hold, e.g.
            "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
            None checks nothing. Not used for RFC 9440 headers.

    Returns:
        The identity, or None when no identity header is present.

    Raises:
        IdentityHeaderError: a header is malformed, its certificate does not parse, the Hash
            does not match, the chosen XFCC element does not exist or has no Cert, or `via`
            is not the last element's peer. An element without Cert is an error rather than
            a partial identity: every field here is meant to be checked, and a silently
            half-empty identity would make policy code quietly wrong.
        ValueError: `element` is a string other than "first" or "last".
        TypeError: `element` is neither a string nor an int.
    """
    _check_element(element)
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
        return _from_xfcc(",".join(found["x-forwarded-client-cert"]), element, via)
    return None
