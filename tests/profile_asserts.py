"""Contract checks for certificate profiles, in the spirit of trustme's assert_is_ca/leaf."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

SHA256_OR_BETTER = {"sha256", "sha384", "sha512"}


def _ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(cls)


def assert_strong(cert: x509.Certificate) -> None:
    """Serial of 64+ random bits, SHA-256+ (or Ed25519), no RSA below 2048."""
    assert cert.serial_number > 0
    assert cert.serial_number.bit_length() >= 64
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        assert key.key_size >= 2048
    if cert.signature_hash_algorithm is None:
        assert isinstance(key, ed25519.Ed25519PublicKey) or cert.issuer != cert.subject
    else:
        assert cert.signature_hash_algorithm.name in SHA256_OR_BETTER


def assert_is_root(cert: x509.Certificate) -> None:
    """CA:TRUE critical, keyCertSign + cRLSign critical, SKI, self-issued, no EKU."""
    assert cert.issuer == cert.subject
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    _ext(cert, x509.SubjectKeyIdentifier)
    assert not any(isinstance(e.value, x509.ExtendedKeyUsage) for e in cert.extensions)
    assert_strong(cert)


def assert_is_intermediate(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """CA:TRUE critical pathLen 0, keyCertSign + cRLSign, SKI + AKI -> issuer, no EKU."""
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    _ext(cert, x509.SubjectKeyIdentifier)
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(issuer, x509.SubjectKeyIdentifier).value.digest
    assert not any(isinstance(e.value, x509.ExtendedKeyUsage) for e in cert.extensions)
    cert.verify_directly_issued_by(issuer)
    assert_strong(cert)


def assert_is_leaf(cert: x509.Certificate, purpose: str) -> None:
    """CA:FALSE, digitalSignature (+keyEncipherment only for RSA servers), one EKU, a SAN."""
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    is_rsa = isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert ku.key_encipherment == (is_rsa and purpose == "server")
    eku = list(_ext(cert, x509.ExtendedKeyUsage).value)
    want = (
        ExtendedKeyUsageOID.SERVER_AUTH if purpose == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    assert eku == [want]
    assert len(_ext(cert, x509.SubjectAlternativeName).value) >= 1
    _ext(cert, x509.AuthorityKeyIdentifier)
    assert isinstance(
        cert.public_key(), (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)
    )
    assert_strong(cert)
