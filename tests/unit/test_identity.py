"""PeerIdentity from real certificates, and the XFCC / RFC 9440 / template headers it becomes."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mtlskit.errors import CertificateLoadError, ConfigError
from mtlskit.identity import (
    TEMPLATE_OPERATORS,
    IdentityHeaderError,
    IdentityHeaders,
    PeerIdentity,
    build_identity_block,
    from_headers,
    parse_xfcc,
    render_header_template,
    rfc9440_headers,
    validate_header_template,
    xfcc_value,
)
from mtlskit.pki import CertificateAuthority

GOLDEN_HASH = "375536d01b8e2610d7222469ade4b19fd11b57b14eca3d75ace720c31b327fbc"


def self_signed(
    attrs: list[tuple[x509.ObjectIdentifier, str]],
    sans: Sequence[x509.GeneralName],
    serial: int = 0x0ABC,
) -> x509.Certificate:
    """A deterministic certificate: Ed25519 with a fixed key signs the same bytes every run."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid, v) for oid, v in attrs]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Golden CA")]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, None)


@pytest.fixture
def golden() -> PeerIdentity:
    """Envoy's documented example client, as a real certificate."""
    cert = self_signed(
        [
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "Lyft"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "Lyft"),
            (NameOID.COMMON_NAME, "Test Client"),
        ],
        [
            x509.UniformResourceIdentifier("http://testclient.lyft.com"),
            x509.DNSName("lyft.com"),
            x509.DNSName("www.lyft.com"),
        ],
    )
    return PeerIdentity.from_certificate(cert)


@pytest.fixture
def alice(ca: CertificateAuthority) -> PeerIdentity:
    issued = ca.issue_client(
        "alice",
        ["spiffe://example.org/ns/shop/sa/alice", "alice.example.org", "10.0.0.7", "a@b.org"],
        organization="Acme",
        unit="payments",
    )
    return PeerIdentity.from_certificate(issued.certificate, issued.intermediates)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _url_pem(der: bytes) -> str:
    # An independent oracle: for the PEM alphabet, quote() encodes exactly Envoy's five
    # characters (LF, space, +, /, =).
    return quote(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode(), safe="-")


# -- PeerIdentity --------------------------------------------------------------------------
def test_identity_fields(ca: CertificateAuthority) -> None:
    issued = ca.issue_client(
        "alice",
        ["spiffe://example.org/ns/shop/sa/alice", "alice.example.org", "10.0.0.7"],
        organization="Acme",
        unit="payments",
    )
    identity = PeerIdentity.from_certificate(issued.certificate, issued.intermediates)
    assert identity.subject == "CN=alice,OU=payments,O=Acme"
    assert identity.issuer == issued.certificate.issuer.rfc4514_string()
    assert identity.common_name == "alice"
    assert identity.organizations == ("Acme",)
    assert identity.organizational_units == ("payments",)
    assert identity.uri_sans == ("spiffe://example.org/ns/shop/sa/alice",)
    assert identity.dns_sans == ("alice.example.org",)
    assert identity.ip_sans == ("10.0.0.7",)
    assert identity.spiffe_id == "spiffe://example.org/ns/shop/sa/alice"
    assert identity.serial == issued.serial
    der = _der(issued.certificate)
    assert identity.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert identity.not_after == issued.certificate.not_valid_after_utc
    assert identity.not_before.tzinfo is not None
    assert identity.leaf_der == der
    assert identity.chain_der == tuple(_der(c) for c in issued.intermediates)
    assert PeerIdentity.from_der(der, identity.chain_der) == identity
    # a chain as get_unverified_chain() returns it (leaf first) gives the same identity
    assert PeerIdentity.from_der(der, (der, *identity.chain_der)) == identity


def test_identity_of_a_certificate_without_san_or_cn() -> None:
    cert = self_signed([(NameOID.ORGANIZATION_NAME, "Only O")], [])
    identity = PeerIdentity.from_certificate(cert)
    assert identity.common_name is None
    assert identity.uri_sans == identity.dns_sans == ()
    assert identity.spiffe_id is None


def test_spiffe_id_needs_exactly_one_spiffe_uri() -> None:
    two = [
        x509.UniformResourceIdentifier("spiffe://a/x"),
        x509.UniformResourceIdentifier("spiffe://b/y"),
    ]
    assert PeerIdentity.from_certificate(self_signed([], two)).spiffe_id is None
    mixed = [x509.UniformResourceIdentifier("https://a/x"), two[0]]
    assert PeerIdentity.from_certificate(self_signed([], mixed)).spiffe_id == "spiffe://a/x"


def test_from_der_rejects_garbage() -> None:
    with pytest.raises(CertificateLoadError, match="not valid DER"):
        PeerIdentity.from_der(b"\x30\x03abc")


# -- XFCC ---------------------------------------------------------------------------------
def test_xfcc_golden_matches_envoy_documented_example(golden: PeerIdentity) -> None:
    # Envoy docs, example 3 (one client, URI and DNS SANs); the Subject is RFC 2253, which is
    # what current Envoy writes (the doc's "/C=US/..." form is from old OpenSSL oneline).
    fields = ("Hash", "Subject", "URI", "DNS")
    assert xfcc_value(golden, fields=fields, by="http://frontend.lyft.com") == (
        f"By=http://frontend.lyft.com;Hash={GOLDEN_HASH};"
        'Subject="CN=Test Client,OU=Lyft,O=Lyft,C=US";'
        "URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"
    )


def test_xfcc_default_fields_in_envoy_order(golden: PeerIdentity) -> None:
    cert = _url_pem(golden.leaf_der)
    assert "%0A" in cert and "%20" in cert and "\n" not in cert
    # asking in another order changes nothing: Envoy's order is fixed
    fields = ("DNS", "uri", "Subject", "Chain", "Cert", "Hash")
    assert xfcc_value(golden, fields=fields) == (
        f'Hash={GOLDEN_HASH};Cert="{cert}";Chain="{cert}";'
        'Subject="CN=Test Client,OU=Lyft,O=Lyft,C=US";'
        "URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"
    )


def test_xfcc_chain_is_leaf_then_intermediates(alice: PeerIdentity) -> None:
    chain = parse_xfcc(xfcc_value(alice, fields=("Chain",)))[0][0]
    assert chain == ("Chain", "".join(_url_pem(d) for d in (alice.leaf_der, *alice.chain_der)))


def test_xfcc_empty_uri_and_quoted_values() -> None:
    cert = self_signed([(NameOID.COMMON_NAME, "x")], [x509.DNSName("a.example")])
    assert xfcc_value(PeerIdentity.from_certificate(cert), fields=("URI", "DNS")) == (
        "URI=;DNS=a.example"  # Envoy keeps an empty URI= when there is no URI SAN
    )
    odd = self_signed([], [x509.UniformResourceIdentifier('https://h/p;q=1,"r"')])
    value = xfcc_value(PeerIdentity.from_certificate(odd), fields=("URI",), by="spiffe://gw")
    assert value == 'By=spiffe://gw;URI="https://h/p;q=1,\\"r\\""'
    assert parse_xfcc(value) == [[("By", "spiffe://gw"), ("URI", 'https://h/p;q=1,"r"')]]


def test_xfcc_rejects_unknown_field(golden: PeerIdentity) -> None:
    with pytest.raises(ConfigError, match="unknown XFCC field") as info:
        xfcc_value(golden, fields=("Hash", "SAN"))
    assert "Chain" in info.value.hint


def test_header_subject_escapes_like_openssl() -> None:
    cert = self_signed(
        [
            (NameOID.EMAIL_ADDRESS, "ops@example.org"),
            (NameOID.ORGANIZATION_NAME, 'Acme, "Inc"; \\ +'),
            (NameOID.COMMON_NAME, "zoë 日本"),
        ],
        [],
    )
    identity = PeerIdentity.from_certificate(cert)
    expected = (
        "CN=zo\\C3\\AB \\E6\\97\\A5\\E6\\9C\\AC,"
        'O=Acme\\, \\"Inc\\"\\; \\\\ \\+,emailAddress=ops@example.org'
    )
    assert render_header_template("%DOWNSTREAM_PEER_SUBJECT%", identity) == expected
    assert parse_xfcc(xfcc_value(identity))[0][3] == ("Subject", expected)
    assert identity.subject.startswith("CN=zoë 日本,")  # the Python value keeps Unicode
    if shutil.which("openssl"):
        pem = cert.public_bytes(Encoding.PEM)
        out = subprocess.run(
            ["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
            input=pem,
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert out.strip() == f"subject={expected}"


# -- parsing XFCC ---------------------------------------------------------------------------
def test_parse_xfcc_envoy_documented_examples() -> None:
    two = (
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02"
        "dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443"
        "c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com"
    )
    elements = parse_xfcc(two)
    assert len(elements) == 2
    assert elements[1][0] == ("By", "http://backend.lyft.com")
    three = (
        'Hash=ab;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";'
        "URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"
    )
    assert parse_xfcc(three) == [
        [
            ("Hash", "ab"),
            ("Subject", "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"),
            ("URI", "http://testclient.lyft.com"),
            ("DNS", "lyft.com"),
            ("DNS", "www.lyft.com"),
        ]
    ]


@pytest.mark.parametrize(
    "value",
    [
        'Hash=ab;Subject="CN=x',  # unclosed quote
        "Hash=ab;Subject",  # no '='
        "Hash=ab,",  # an empty last element would hide the closest proxy's
        "Hash=ab,,Hash=cd",
        '"x"=y',
        'Subject="a"b;Hash=1',
    ],
)
def test_parse_xfcc_rejects_malformed(value: str) -> None:
    with pytest.raises(IdentityHeaderError):
        parse_xfcc(value)


# -- from_headers ---------------------------------------------------------------------------
def test_from_headers_xfcc_reads_the_first_element_or_the_one_chosen(
    alice: PeerIdentity, ca: CertificateAuthority
) -> None:
    mallory = PeerIdentity.from_certificate(ca.issue_client("mallory").certificate)
    header = f"{xfcc_value(alice, by='spiffe://gw')},{xfcc_value(mallory)}"
    assert from_headers({"X-Forwarded-Client-Cert": header}) == alice
    assert from_headers([(b"x-forwarded-client-cert", header.encode())]) == alice
    assert from_headers({"x-forwarded-client-cert": header}, element="last") == mallory
    assert from_headers({"x-forwarded-client-cert": header}, element=1) == mallory
    assert from_headers({"x-forwarded-client-cert": header}, element=-2) == alice
    # two header lines are one list (RFC 9110 5.3), in order
    lines = [
        ("X-FORWARDED-CLIENT-CERT", xfcc_value(mallory)),
        ("x-forwarded-client-cert", xfcc_value(alice)),
    ]
    assert from_headers(lines) == mallory
    assert from_headers(lines, element="last") == alice


def test_from_headers_element_argument_is_checked(alice: PeerIdentity) -> None:
    header = {"x-forwarded-client-cert": xfcc_value(alice)}
    with pytest.raises(IdentityHeaderError, match="has 1 element") as info:
        from_headers(header, element=1)
    assert "element='first'" in info.value.hint
    with pytest.raises(ValueError, match="'middle'"):
        from_headers(header, element="middle")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_headers(header, element=True)
    with pytest.raises(ValueError, match="'middle'"):  # even with no identity header
        from_headers({}, element="middle")  # type: ignore[arg-type]


def test_from_headers_without_identity_headers() -> None:
    assert from_headers({"host": "a", "x-forwarded-client-cert": "  "}) is None
    assert from_headers([]) is None


def test_from_headers_cert_only_and_chain_only(alice: PeerIdentity) -> None:
    leaf_only = from_headers({"x-forwarded-client-cert": xfcc_value(alice, fields=("Cert",))})
    assert leaf_only is not None and leaf_only.leaf_der == alice.leaf_der
    assert leaf_only.chain_der == ()
    assert from_headers({"x-forwarded-client-cert": xfcc_value(alice, fields=("Chain",))}) == alice


def test_from_headers_refuses_xfcc_without_cert(alice: PeerIdentity) -> None:
    istio_style = xfcc_value(alice, fields=("Hash", "Subject", "URI", "DNS"))
    with pytest.raises(IdentityHeaderError, match="no Cert") as info:
        from_headers({"x-forwarded-client-cert": istio_style})
    assert "set_current_client_cert_details" in info.value.hint
    assert "parse_xfcc" in info.value.hint


def test_from_headers_checks_hash_against_cert(alice: PeerIdentity, golden: PeerIdentity) -> None:
    forged = xfcc_value(alice).replace(alice.fingerprint_sha256, golden.fingerprint_sha256)
    with pytest.raises(IdentityHeaderError, match="does not match"):
        from_headers({"x-forwarded-client-cert": forged})


def test_from_headers_rejects_chain_not_starting_with_cert(
    alice: PeerIdentity, golden: PeerIdentity
) -> None:
    cert = parse_xfcc(xfcc_value(golden, fields=("Cert",)))[0][0][1]
    chain = parse_xfcc(xfcc_value(alice, fields=("Chain",)))[0][0][1]
    with pytest.raises(IdentityHeaderError, match="Chain does not start"):
        from_headers({"x-forwarded-client-cert": f'Cert="{cert}";Chain="{chain}"'})


@pytest.mark.parametrize(
    "value", ['Cert="not%20a%20pem"', 'Cert="%ZZ"', "Hash=ab;Cert=abc;Cert=def"]
)
def test_from_headers_rejects_bad_cert(value: str) -> None:
    with pytest.raises(IdentityHeaderError):
        from_headers({"x-forwarded-client-cert": value})


def test_from_headers_rejects_non_pairs() -> None:
    with pytest.raises(IdentityHeaderError, match="pairs"):
        from_headers(["x-forwarded-client-cert"])  # type: ignore[list-item]


# -- RFC 9440 -------------------------------------------------------------------------------
def test_rfc9440_headers_and_round_trip(alice: PeerIdentity) -> None:
    headers = rfc9440_headers(alice)
    b64 = base64.b64encode(alice.leaf_der).decode()
    chain = ", ".join(f":{base64.b64encode(d).decode()}:" for d in alice.chain_der)
    assert headers == [("Client-Cert", f":{b64}:"), ("Client-Cert-Chain", chain)]
    assert from_headers(headers) == alice
    # RFC 9440 wins over XFCC when both arrive
    assert from_headers([*headers, ("x-forwarded-client-cert", "garbage=")]) == alice


def test_rfc9440_without_chain_and_unpadded(golden: PeerIdentity) -> None:
    headers = rfc9440_headers(golden)
    assert [name for name, _ in headers] == ["Client-Cert"]
    unpadded = headers[0][1].replace("=", "")
    assert from_headers({"client-cert": unpadded}) == golden  # RFC 8941 4.2.7


@pytest.mark.parametrize(
    "headers",
    [
        {"client-cert": "MIIB"},  # no colons
        {"client-cert": ":MI*B:"},
        {"client-cert": ":AAAA:"},  # base64, but not a certificate
        {"client-cert-chain": ":AAAA:"},  # a chain with no leaf
    ],
)
def test_rfc9440_rejects_malformed(headers: dict[str, str]) -> None:
    with pytest.raises(IdentityHeaderError):
        from_headers(headers)


# -- templates --------------------------------------------------------------------------------
def test_template_operators(alice: PeerIdentity, golden: PeerIdentity) -> None:
    two_uris = PeerIdentity.from_certificate(
        self_signed(
            [],
            [
                x509.UniformResourceIdentifier("spiffe://a/1"),
                x509.UniformResourceIdentifier("spiffe://a/2"),
            ],
        )
    )
    assert (
        render_header_template("%DOWNSTREAM_PEER_URI_SAN%", two_uris) == "spiffe://a/1,spiffe://a/2"
    )
    assert render_header_template("%DOWNSTREAM_PEER_DNS_SAN%", golden) == "lyft.com,www.lyft.com"
    assert render_header_template("%DOWNSTREAM_PEER_IP_SAN%", alice) == "10.0.0.7"
    assert render_header_template("%DOWNSTREAM_PEER_FINGERPRINT_256%", golden) == GOLDEN_HASH
    assert render_header_template("%DOWNSTREAM_PEER_ISSUER%", golden) == "CN=Golden CA"
    # Envoy's serial is BoringSSL's BN_bn2hex: lowercase, whole bytes
    assert render_header_template("%DOWNSTREAM_PEER_SERIAL%", golden) == "0abc"
    assert golden.serial == "ABC"
    assert render_header_template("%DOWNSTREAM_PEER_CERT%", golden) == _url_pem(golden.leaf_der)
    assert (
        render_header_template("%DOWNSTREAM_PEER_CERT_V_END%", golden) == "2026-01-01T00:00:00.000Z"
    )
    assert render_header_template("id=%DOWNSTREAM_PEER_URI_SAN%; 100%%", alice) == (
        "id=spiffe://example.org/ns/shop/sa/alice; 100%"
    )


def test_every_template_operator_renders(alice: PeerIdentity) -> None:
    for name in TEMPLATE_OPERATORS:
        assert render_header_template(f"%{name}%", alice)


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("%DOWNSTREAM_PEER_NOPE%", "%DOWNSTREAM_PEER_NOPE%"),
        ("%REQ(x-user)%", "%REQ(x-user)%"),
        ("100%", "lone"),
        ("a\r\nX-Evil: 1", "control"),
        ("nul\x00", "control"),
    ],
)
def test_bad_templates_are_config_errors(template: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="header template") as info:
        validate_header_template(template)
    assert needle in info.value.message
    if "operator" in info.value.message:
        assert "%DOWNSTREAM_PEER_SUBJECT%" in info.value.hint


# -- the gateway block -------------------------------------------------------------------------
def test_identity_block_defaults_to_xfcc_only(alice: PeerIdentity) -> None:
    block = build_identity_block(alice, IdentityHeaders(), by="spiffe://example.org/gw")
    expected = xfcc_value(alice, by="spiffe://example.org/gw")
    assert block == f"X-Forwarded-Client-Cert: {expected}\r\n".encode()


def test_identity_block_all_headers(alice: PeerIdentity) -> None:
    custom = (("X-Client-Id", "%DOWNSTREAM_PEER_URI_SAN%"), ("X-Ip", "%DOWNSTREAM_PEER_IP_SAN%"))
    config = IdentityHeaders(xfcc=False, client_cert=True, custom=custom)
    lines = build_identity_block(alice, config).decode().split("\r\n")
    assert lines[0].startswith("Client-Cert: :") and lines[1].startswith("Client-Cert-Chain: :")
    assert lines[2:] == ["X-Client-Id: spiffe://example.org/ns/shop/sa/alice", "X-Ip: 10.0.0.7", ""]


def test_identity_block_leaves_out_empty_custom_values(golden: PeerIdentity) -> None:
    # Envoy's keep_empty_value defaults to false: a header that renders empty is not sent
    custom = (("X-Ip", "%DOWNSTREAM_PEER_IP_SAN%"), ("X-Dns", "%DOWNSTREAM_PEER_DNS_SAN%"))
    block = build_identity_block(golden, IdentityHeaders(xfcc=False, custom=custom))
    assert block == b"X-Dns: lyft.com,www.lyft.com\r\n"


def test_identity_block_refuses_crlf_from_a_certificate() -> None:
    evil = PeerIdentity.from_certificate(
        self_signed([], [x509.UniformResourceIdentifier("spiffe://td/a\r\nX-Admin: 1")])
    )
    with pytest.raises(IdentityHeaderError, match="control"):
        build_identity_block(evil, IdentityHeaders())
    custom = IdentityHeaders(xfcc=False, custom=(("X-Id", "%DOWNSTREAM_PEER_URI_SAN%"),))
    with pytest.raises(IdentityHeaderError):
        build_identity_block(evil, custom)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"custom": (("Bad Name", "x"),)},
        {"custom": (("Content-Length", "1"),)},
        {"custom": (("X-A", "1"), ("x-a", "2"))},
        {"custom": (("Client-Cert", "%DOWNSTREAM_PEER_CERT%"),)},
        {"custom": (("X-A", "%NOPE%"),)},
        {"strip": ("transfer-encoding",)},
        {"xfcc_fields": ("Hash", "Nope")},
    ],
)
def test_identity_headers_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        IdentityHeaders(**kwargs)  # type: ignore[arg-type]
