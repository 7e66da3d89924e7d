"""Per-certificate checks shared by cert verify and the preflight: dates, CA, purpose, strength."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, PublicKeyAlgorithmOID

from mtlskit.trust._ext import extension
from mtlskit.trust.reasons import Finding, Purpose, ReasonCode, display_name, explain

__all__ = [
    "check_path",
    "check_strength",
    "client_strength",
    "key_problem",
    "role_of",
    "signature_problem",
]

_EKU = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}
# OpenSSL's default security level (2, on Debian's 3.0 and the cryptography wheel's
# OpenSSL): 112 bits of security (SSL_CTX_set_security_level(3)): RSA/DSA 2048, EC 224.
_MIN_RSA_BITS = 2048
_MIN_EC_BITS = 224
# A signature hash gives half its digest length in bits of security: SHA-224 is the
# smallest with 112 (OpenSSL 3 rates SHA-1 at 63 bits, MD5 at 39).
_MIN_DIGEST_BYTES = 28
# The curves TLS 1.3 signature schemes name (RFC 8446 §4.2.3), which every TLS stack
# offers; a key elsewhere (P-224, secp256k1, brainpool) leaves the peer nothing to sign with.
_TLS_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1"}


def role_of(index: int, length: int, purpose: Purpose, complete: bool) -> str:
    """How to call the certificate at a path position: "client certificate", "root CA"..."""
    if index == 0:
        return f"{purpose}'s certificate"
    if complete and index == length - 1:
        return "root CA"
    return "intermediate CA"


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M") + "Z"


def _dates(cert: x509.Certificate, now: datetime, role: str) -> Finding | None:
    # Validity is encoded in whole seconds; compare at that granularity, as cryptography's
    # validator does (x509-limbo rfc5280::validity::notafter-fractional).
    now = now.replace(microsecond=0)
    if now > cert.not_valid_after_utc:
        return Finding(
            ReasonCode.EXPIRED,
            display_name(cert),
            role,
            _stamp(cert.not_valid_after_utc),
            {"not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")},
        )
    if now < cert.not_valid_before_utc:
        return Finding(
            ReasonCode.NOT_YET_VALID,
            display_name(cert),
            role,
            _stamp(cert.not_valid_before_utc),
            {"not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")},
        )
    return None


def _not_ca(cert: x509.Certificate) -> str:
    bc = extension(cert, x509.BasicConstraints)
    if bc is None:
        return "it has no basicConstraints extension"
    if not bc.ca:
        return "its basicConstraints say CA:FALSE"
    ku = extension(cert, x509.KeyUsage)
    if ku is not None and not ku.key_cert_sign:
        return "its key usage lacks keyCertSign"
    return ""


def _eku_names(eku: x509.ExtendedKeyUsage) -> str:
    known = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth"}
    known[ExtendedKeyUsageOID.CLIENT_AUTH] = "clientAuth"
    known[ExtendedKeyUsageOID.CODE_SIGNING] = "codeSigning"
    known[ExtendedKeyUsageOID.EMAIL_PROTECTION] = "emailProtection"
    known[ExtendedKeyUsageOID.OCSP_SIGNING] = "OCSPSigning"
    known[ExtendedKeyUsageOID.TIME_STAMPING] = "timeStamping"
    return ", ".join(known.get(o, o.dotted_string) for o in eku) or "none"


def _purpose(cert: x509.Certificate, purpose: Purpose, leaf: bool) -> str:
    """OpenSSL's check_purpose_ssl_client/_server, and the WebPKI's CA:FALSE on leaves."""
    if leaf:
        bc = extension(cert, x509.BasicConstraints)
        if bc is not None and bc.ca:
            return "it is a CA certificate (basicConstraints CA:TRUE), not an end-entity one"
    eku = extension(cert, x509.ExtendedKeyUsage)
    wanted = _EKU[purpose]
    if (
        eku is not None
        and wanted not in eku
        and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    ):
        return f"its extended key usage is [{_eku_names(eku)}] and lacks {purpose}Auth"
    ku = extension(cert, x509.KeyUsage)
    if not leaf or ku is None:
        return ""
    if purpose == "client" and not (ku.digital_signature or ku.key_agreement):
        return "its key usage lacks digitalSignature, needed to sign the TLS handshake"
    if purpose == "server" and not (
        ku.digital_signature or ku.key_encipherment or ku.key_agreement
    ):
        return "its key usage lacks digitalSignature, needed to sign the TLS handshake"
    return ""


def key_problem(cert: x509.Certificate, *, leaf: bool) -> tuple[ReasonCode, str] | None:
    """Whether OpenSSL's security level 2 (or TLS) refuses the certificate's public key.

    Ed25519 and Ed448 keys pass: OpenSSL takes them (cryptography's WebPKI profile
    refuses them on CAs, which its validator reports).
    """
    what = "EE" if leaf else "CA"
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return _unloadable_key(cert, what)
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        return ReasonCode.KEY_TOO_WEAK, (
            f"{kind} {key.key_size}-bit key; OpenSSL's security level 2 needs "
            f"{_MIN_RSA_BITS} (OpenSSL: {what} certificate key too weak)"
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = key.curve
        if curve.key_size < _MIN_EC_BITS:
            return ReasonCode.KEY_TOO_WEAK, (
                f"EC {curve.name} ({curve.key_size}-bit) key; OpenSSL's security level 2 "
                f"needs a curve of {_MIN_EC_BITS} bits or more (OpenSSL: {what} certificate "
                "key too weak)"
            )
        if curve.name not in _TLS_CURVES:
            return ReasonCode.KEY_UNSUPPORTED, (
                f"EC {curve.name} key; TLS signs only with P-256, P-384 or P-521 keys"
            )
    return None


def _unloadable_key(cert: x509.Certificate, what: str) -> tuple[ReasonCode, str] | None:
    """A key cryptography cannot load: an EC key on a curve it does not implement.

    Those curves (secp192k1, secp224k1, secp160r1, ...) are either below security level
    2 (OpenSSL: {what} certificate key too weak) or ones no TLS signature scheme names;
    either way no TLS peer here can use the certificate, and the fix is the same.
    """
    if cert.public_key_algorithm_oid != PublicKeyAlgorithmOID.EC_PUBLIC_KEY:
        return None
    return ReasonCode.KEY_UNSUPPORTED, (
        "EC key on a curve other than P-256, P-384 or P-521 (one this toolkit cannot "
        f"read, usually too small for OpenSSL's security level 2: {what} certificate key "
        "too weak); TLS signs only with P-256, P-384 or P-521 keys"
    )


def signature_problem(cert: x509.Certificate) -> str:
    """Why OpenSSL's security level 2 refuses the hash of the certificate's signature, or ""."""
    try:
        digest = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return ""
    if digest is None or digest.digest_size >= _MIN_DIGEST_BYTES:
        return ""  # Ed25519/Ed448 sign without a separate hash
    name = _HASH_NAMES.get(digest.name, digest.name.upper())
    return (
        f"it is signed with {name}; OpenSSL's security level 2 needs SHA-224 or better "
        "(OpenSSL: CA signature digest algorithm too weak)"
    )


def check_strength(
    path: Sequence[x509.Certificate], purpose: Purpose, *, complete: bool
) -> tuple[Finding, ...]:
    """The keys and signature hashes of a path that OpenSSL's default security level refuses.

    Every certificate's key is checked, the root's included; every signature but a
    self-signed certificate's own (OpenSSL does not check the trust anchor's, nor do we).

    Args:
        path: certificates from the leaf up.
        purpose: "client" or "server" (names the leaf's role).
        complete: the path ends at a trust anchor (its top is called "root CA").
    """
    found: list[Finding] = []
    n = len(path)
    for i, cert in enumerate(path):
        role = role_of(i, n, purpose, complete)
        weak_key = key_problem(cert, leaf=i == 0)
        if weak_key is not None:
            found.append(Finding(weak_key[0], display_name(cert), role, weak_key[1]))
        anchor = complete and i == n - 1
        why = "" if anchor or cert.issuer == cert.subject else signature_problem(cert)
        if why:
            found.append(Finding(ReasonCode.SIGNATURE_TOO_WEAK, display_name(cert), role, why))
    return tuple(found)


def check_path(
    path: Sequence[x509.Certificate], purpose: Purpose, now: datetime, *, complete: bool
) -> tuple[Finding, ...]:
    """Every per-certificate problem of a path, the most fundamental first.

    The one implementation behind `cert verify` (on paths the validator accepted and on
    those it rejected) and the client's preflight: dates, CA flags of each issuer,
    purpose (EKU on every certificate, key usage and CA:FALSE on the leaf), then key
    and signature strength (OpenSSL's default security level).

    Args:
        path: certificates from the leaf up (with the trust anchor last when complete).
        purpose: what the leaf must be fit for.
        now: the validation time (timezone-aware).
        complete: the path ends at a trust anchor.

    Returns:
        The findings, grouped by check in the order above; empty when all pass.
    """
    n = len(path)
    roles = [role_of(i, n, purpose, complete) for i in range(n)]
    found = [f for i, c in enumerate(path) if (f := _dates(c, now, roles[i])) is not None]
    for i, cert in enumerate(path[1:], start=1):
        why = _not_ca(cert)
        if why:
            found.append(Finding(ReasonCode.ISSUER_NOT_CA, display_name(cert), roles[i], why))
    for i, cert in enumerate(path):
        why = _purpose(cert, purpose, i == 0)
        if why:
            found.append(Finding(ReasonCode.WRONG_PURPOSE, display_name(cert), roles[i], why))
    found.extend(check_strength(path, purpose, complete=complete))
    return tuple(found)


def client_strength(chain: Sequence[x509.Certificate]) -> tuple[str, str] | None:
    """Why no TLS peer takes this client chain at OpenSSL's security level, or None.

    The words `cert verify` uses: ("CODE: explanation", fix) for the first finding, for
    a client whose own certificate OpenSSL refuses to load or send.
    """
    weak = check_strength(chain, "client", complete=False)
    if not weak:
        return None
    text, fix = explain(weak[0], "client")
    return f"{weak[0].code.value}: {text}", fix
