"""A workload behind Kyma reads its client from XFCC as Istio sends it (certificates by openssl).

The ingress gateway (SANITIZE_SET) writes the edge client's element; the workload's sidecar
(APPEND_FORWARD) appends one about its own peer, the ingress gateway, without Cert.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.identity import (
    IdentityHeaderError,
    PeerIdentity,
    XfccElement,
    from_headers,
    parse_xfcc,
    xfcc_value,
)
from tests.opensslpki import CA_EXT, Made, OpenSSLPKI

GATEWAY_SA = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
WORKLOAD_SA = "spiffe://cluster.local/ns/app/sa/default"
TRICKY_URI = "spiffe://example.org/ns/a,b;c=d/sa/x"


@dataclass(frozen=True)
class Client:
    """A client certificate openssl made, as the ingress gateway would describe it."""

    leaf: Made
    intermediate: Made

    def der(self, made: Made) -> bytes:
        return made.x509.public_bytes(Encoding.DER)

    def subject(self) -> str:
        # what Envoy prints: OpenSSL's RFC 2253 form (X509_NAME_print_ex, XN_FLAG_RFC2253)
        out = subprocess.run(
            ["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", self.leaf.cert],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.strip().removeprefix("subject=")

    def edge_element(self, *, cert: bool = True, by: str | None = WORKLOAD_SA) -> str:
        """The ingress gateway's element: By, Hash, Cert, Chain, Subject, URI, DNS."""

        def url_pem(made: Made) -> str:
            return quote(made.cert.read_text(), safe="-")  # Envoy's encoding of the PEM

        uris = self.leaf.x509.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        parts = [f"By={by}"] if by else []
        parts.append(f"Hash={hashlib.sha256(self.der(self.leaf)).hexdigest()}")
        if cert:
            parts.append(f'Cert="{url_pem(self.leaf)}"')
            parts.append(f'Chain="{url_pem(self.leaf)}{url_pem(self.intermediate)}"')
        parts.append(f'Subject="{self.subject()}"')
        for uri in uris.value.get_values_for_type(x509.UniformResourceIdentifier):
            parts.append(f'URI="{uri}"' if set(uri) & set(",;=") else f"URI={uri}")
        parts.append("DNS=client.example.org")
        return ";".join(parts)


def sidecar_element(peer: str = GATEWAY_SA) -> str:
    """What the workload's sidecar appends: its peer over mesh mTLS, no Cert."""
    return f'By={WORKLOAD_SA};Hash={"5d" * 32};Subject="";URI={peer}'


def _make(pki: OpenSSLPKI, name: str, uri: str) -> Client:
    root = pki.root(f"{name} Root")
    inter = pki.issue(f"{name} Issuing CA", root, ext=CA_EXT + "authorityKeyIdentifier=keyid\n")
    ext = (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectAltName=@alt\n"
        "[alt]\n"
        f"URI.1={uri}\n"
        "DNS.1=client.example.org\n"
    )
    return Client(pki.issue(name, inter, ext=ext), inter)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLPKI:
    return OpenSSLPKI(tmp_path_factory.mktemp("xfcc-pki"))


@pytest.fixture(scope="module")
def orders(pki: OpenSSLPKI) -> Client:
    return _make(pki, "orders-client", "spiffe://example.org/ns/shop/sa/orders")


@pytest.fixture(scope="module")
def tricky(pki: OpenSSLPKI) -> Client:
    # separators of XFCC (',' ';' '=') and of RFC 2253 in the subject and the URI SAN
    return _make(pki, "Smith, Jane; ops=1", TRICKY_URI)


def _xfcc(*elements: str) -> dict[str, str]:
    return {"x-forwarded-client-cert": ",".join(elements)}


def test_kyma_shape_gives_the_edge_client(orders: Client) -> None:
    headers = _xfcc(orders.edge_element(), sidecar_element())
    peer = from_headers(headers)
    assert peer is not None
    assert peer == PeerIdentity.from_der(orders.der(orders.leaf), [orders.der(orders.intermediate)])
    assert peer.common_name == "orders-client"
    assert peer.spiffe_id == "spiffe://example.org/ns/shop/sa/orders"
    assert GATEWAY_SA not in peer.uri_sans
    # the gateway's element may come without By (its listener certificate has no URI SAN)
    assert from_headers(_xfcc(orders.edge_element(by=None), sidecar_element())) == peer
    # the same with the via check: the sidecar saw the ingress gateway as its peer
    assert from_headers(headers, via=GATEWAY_SA) == peer


def test_the_sidecars_element_is_never_the_client(orders: Client) -> None:
    headers = _xfcc(orders.edge_element(), sidecar_element())
    with pytest.raises(IdentityHeaderError, match="no Cert or Chain") as info:
        from_headers(headers, element="last")
    assert "element 2 of 2" in info.value.message
    assert GATEWAY_SA in info.value.message  # it says whose identity it refused
    assert "element='first'" in info.value.hint  # and where the client's element is
    with pytest.raises(IdentityHeaderError, match="no Cert or Chain"):
        from_headers(headers, element=-1)


def test_an_edge_element_without_cert_is_refused_not_replaced(orders: Client) -> None:
    # Istio's default details (Hash, Subject, URI, DNS): no Cert, and no fallback either
    headers = _xfcc(orders.edge_element(cert=False), sidecar_element())
    with pytest.raises(IdentityHeaderError, match="element 1 of 2") as info:
        from_headers(headers)
    assert "set_current_client_cert_details" in info.value.hint
    assert "parse_xfcc" in info.value.hint
    [edge, sidecar] = parse_xfcc(headers["x-forwarded-client-cert"])
    assert ("URI", "spiffe://example.org/ns/shop/sa/orders") in edge
    assert ("URI", GATEWAY_SA) in sidecar


def test_quoted_values_with_commas_and_semicolons(tricky: Client) -> None:
    subject = tricky.subject()
    assert "\\," in subject and "\\;" in subject  # openssl escapes them in RFC 2253
    header = _xfcc(tricky.edge_element(), sidecar_element())
    [edge, sidecar] = parse_xfcc(header["x-forwarded-client-cert"])
    assert ("Subject", subject) in edge  # kept verbatim, RFC 4514 escapes included
    assert ("URI", TRICKY_URI) in edge
    assert sidecar[-1] == ("URI", GATEWAY_SA)
    peer = from_headers(header)
    assert peer is not None
    assert peer.common_name == "Smith, Jane; ops=1"
    assert peer.uri_sans == (TRICKY_URI,)


def test_via_refuses_a_request_that_did_not_come_from_the_gateway(
    orders: Client, tricky: Client
) -> None:
    # another pod in the mesh calls the workload with an XFCC it wrote itself: the sidecar
    # keeps it (APPEND_FORWARD) and appends the pod as its peer
    pod = "spiffe://cluster.local/ns/app/sa/attacker"
    forged = _xfcc(orders.edge_element(), sidecar_element(GATEWAY_SA), sidecar_element(pod))
    with pytest.raises(IdentityHeaderError, match="does not show the request arriving") as info:
        from_headers(forged, via=GATEWAY_SA)
    assert pod in info.value.message
    assert "AuthorizationPolicy" in info.value.hint
    # a lone element has no sidecar's word on where it came from
    with pytest.raises(IdentityHeaderError, match="chosen element itself"):
        from_headers(_xfcc(tricky.edge_element()), via=GATEWAY_SA)


def test_mtlskit_gateway_headers_read_as_before(orders: Client) -> None:
    # mtlskit's gateway strips client-sent XFCC and writes one element: first == last
    identity = PeerIdentity.from_der(orders.der(orders.leaf), [orders.der(orders.intermediate)])
    value = xfcc_value(identity, by="spiffe://example.org/mtlskit-gateway")
    choices: tuple[XfccElement, ...] = ("first", "last", 0, -1)
    for element in choices:
        assert from_headers(_xfcc(value), element=element) == identity
    # and behind it, a sidecar's element changes nothing
    assert from_headers(_xfcc(value, sidecar_element())) == identity
