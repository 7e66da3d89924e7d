"""Why a client's TLS handshake failed, as a reason code, a seed step and a fix (pure).

Input is what the TLS layer saw: the exception pyOpenSSL raised (its OpenSSL reason
strings) and, from the verify callback, each certificate OpenSSL refused with its
X509_V_ERR code and depth, so the explanation names the certificate at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from mtlskit.errors import HandshakeTimeoutError
from mtlskit.trust.checks import signature_problem

__all__ = [
    "HandshakeFailure",
    "HandshakeTimeoutError",
    "classify_handshake_failure",
]

_STEP7 = "step 7: the server validates the client's certificate"
_STEP6 = "step 6: the client presents its certificate"
_STEP1 = "step 1: the client hello (versions and cipher suites)"
_STEP5 = "step 5: the client validates the server's certificate"


# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h) -> trust reason codes, with what
# it means for the certificate at fault ({cert} is its role and subject).
_VERIFY_CODES: Final[dict[int, tuple[str, str]]] = {
    2: ("unknown_issuer", "the issuer of {cert} is unknown"),
    4: ("bad_signature", "the signature on {cert} cannot be decrypted"),
    7: ("bad_signature", "the signature on {cert} does not verify"),
    9: ("not_yet_valid", "{cert} is not valid yet"),
    10: ("expired", "{cert} has expired"),
    11: ("crl_not_yet_valid", "the CRL for {cert} is not valid yet"),
    12: ("crl_stale", "the CRL for {cert} is past its nextUpdate"),
    13: ("malformed", "{cert} has an unreadable notBefore"),
    14: ("malformed", "{cert} has an unreadable notAfter"),
    18: ("self_signed_untrusted", "{cert} is self-signed and not trusted"),
    19: ("self_signed_untrusted", "the chain of {cert} ends in a root we do not trust"),
    20: (
        "unknown_issuer",
        "no trusted CA issued {cert} (or the client did not send its intermediate)",
    ),
    21: ("unknown_issuer", "the chain of {cert} cannot be verified to a trusted root"),
    22: ("path_too_long", "the chain of {cert} is too long"),
    23: ("revoked", "{cert} is revoked"),
    24: ("issuer_not_ca", "{cert} is not a CA but signed a certificate in the chain"),
    25: ("path_too_long", "the chain below {cert} is longer than its pathLenConstraint allows"),
    26: ("wrong_purpose", "{cert} is not meant for client authentication (EKU)"),
    28: ("wrong_purpose", "{cert} is not trusted for client authentication"),
    32: ("wrong_key_usage", "{cert} may not sign certificates (keyUsage lacks keyCertSign)"),
    34: ("unhandled_critical_extension", "{cert} has a critical extension OpenSSL cannot read"),
    35: ("wrong_key_usage", "{cert} may not sign CRLs (keyUsage lacks cRLSign)"),
    66: ("key_too_weak", "{cert} has a key too small for OpenSSL's security level (EE key)"),
    67: ("key_too_weak", "{cert} has a key too small for OpenSSL's security level (CA key)"),
    68: ("signature_too_weak", "{cert} is signed with a digest OpenSSL's security level refuses"),
}
_FIXES = {
    "unknown_issuer": "issue the client certificate from the CA in --client-ca, and make the "
    "client send its intermediate (use NAME.chain.pem, not NAME.crt)",
    "bad_signature": "reissue the client certificate; the chain was altered or mixed up",
    "not_yet_valid": "check the client's and the CA's clocks, or wait until notBefore",
    "expired": "issue a new client certificate ('mtlskit ca issue client ...')",
    "crl_stale": "publish a fresh CRL ('mtlskit ca crl') and reload the gateway",
    "self_signed_untrusted": "use a certificate issued by the CA in --client-ca",
    "revoked": "issue a new client certificate; this one was revoked",
    "issuer_not_ca": "issue the client certificate from a real CA (basicConstraints CA:TRUE)",
    "path_too_long": "issue the client certificate directly from the intermediate CA",
    "wrong_purpose": "issue a client certificate ('mtlskit ca issue client'): EKU clientAuth",
    "no_client_certificate": "browsers, Java and many TLS libraries send no certificate, "
    "without a word, when theirs does not chain to a CA named in the CertificateRequest "
    "(sent: {ca_names}): import NAME.p12 (it carries the intermediate) into the browser or "
    "keystore; for curl: --cert NAME.chain.pem --key NAME.key",
    "closed_before_certificate": "none when a browser does it: it asks its user for a "
    "certificate and connects again; if one client does it every time, it has no certificate "
    "from a CA named in the CertificateRequest (import NAME.p12 into it)",
    "tls_version": "use TLS 1.2 or 1.3 on the client",
    "no_shared_cipher": "enable an ECDHE + AES-GCM or ChaCha20 suite on the client",
    "not_tls": "connect with https:// (TLS); this port speaks only TLS",
    "handshake_timeout": "the client was too slow or never finished; check its network",
    "server_cert_rejected": "make the client trust the gateway's root CA (curl --cacert root.crt)",
    "connection_reset": "the client closed the connection during the handshake",
    "tls_error": "see the OpenSSL reason in the log line",
    "crl_not_yet_valid": "check the gateway's clock, or publish the CRL with a past thisUpdate",
    "malformed": "reissue the certificate with a conforming profile",
    "wrong_key_usage": "reissue the CA certificate with keyUsage keyCertSign and cRLSign",
    "unhandled_critical_extension": "reissue the certificate without the unknown critical "
    "extension",
    "key_too_weak": "reissue the client certificate with a new ec-p256 (or RSA-2048+) key",
    "signature_too_weak": "have the CA reissue the client certificate signed with SHA-256",
}
# Fixes for a CA certificate at fault (an intermediate or the root), where reissuing the
# client's leaf would not help.
_CA_FIXES = {
    "expired": "renew the CA certificate {subject} (it signs the client certificates), then "
    "reissue the clients' certificates under it",
    "not_yet_valid": "check the clocks: the CA certificate {subject} is not valid yet",
    "revoked": "the CA certificate {subject} is revoked: issue clients from another CA",
    "wrong_purpose": "reissue the CA certificate {subject} with clientAuth in its EKU, or "
    "without an EKU",
    "bad_signature": "the CA certificate {subject} is not signed by its issuer: restore the "
    "right chain (use NAME.chain.pem from the same CA)",
    "key_too_weak": "reissue the CA {subject} with a new ec-p256 (or RSA-2048+) key, then "
    "every certificate below it",
    "signature_too_weak": "have the issuer of the CA {subject} re-sign it with SHA-256 (same "
    "key and name: the certificates below it stay valid)",
}

# Codes that are not failures of the client or of the gateway: logged at INFO.
_BENIGN: Final = frozenset({"closed_before_certificate"})


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """A failed handshake, explained.

    Attributes:
        code: the trust reason code, or a handshake-level code (no_client_certificate,
            tls_version, no_shared_cipher, not_tls, handshake_timeout,
            server_cert_rejected, connection_reset, closed_before_certificate, tls_error).
        step: the seed step that broke.
        explanation: one line for the log.
        fix: what to change.
        at_fault: the certificate OpenSSL refused (None when no certificate was).
        depth: its place in the chain: 0 the client's leaf, 1 its issuer, and so on.
    """

    code: str
    step: str
    explanation: str
    fix: str
    at_fault: x509.Certificate | None = None
    depth: int = -1

    @property
    def level(self) -> str:
        """The log level: "info" for what clients do normally, else "warning"."""
        return "info" if self.code in _BENIGN else "warning"


def _failure(code: str, step: str, explanation: str) -> HandshakeFailure:
    return HandshakeFailure(code, step, explanation, _FIXES[code])


def _closed(after_flight: bool) -> HandshakeFailure:
    if not after_flight:
        return _failure("connection_reset", _STEP1, "the client closed the connection")
    return _failure(
        "closed_before_certificate",
        _STEP6,
        "the client closed the connection after our CertificateRequest, before sending a "
        "certificate: normal for browsers, which open speculative connections and drop them "
        "while the user picks a certificate (Chromium: two per new profile)",
    )


def _role(cert: x509.Certificate, depth: int) -> str:
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    if depth == 0:
        return f"the client certificate {subject}"
    if cert.subject == cert.issuer:
        return f"the root CA {subject}"
    return f"the intermediate CA {subject} (depth {depth} of the client's chain)"


def _verify_failure(depth: int, errno: int, cert: x509.Certificate) -> HandshakeFailure:
    code, text = _VERIFY_CODES.get(errno, ("unknown_issuer", "{cert} failed verification"))
    explanation = text.format(cert=_role(cert, depth))
    weak = signature_problem(cert) if code == "unknown_issuer" else ""
    if weak:
        # OpenSSL will not check a SHA-1 (or MD5) signature at its security level, so it
        # finds no issuer for the certificate and says "unable to get local issuer".
        code = "signature_too_weak"
        explanation = f"{_role(cert, depth)} cannot be checked: {weak}"
    if code in ("expired", "not_yet_valid"):
        explanation += (
            f" (valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
        )
    fix = _FIXES.get(code, _FIXES["tls_error"])
    if depth > 0 and code in _CA_FIXES:
        fix = _CA_FIXES[code].format(subject=cert.subject.rfc4514_string())
    return HandshakeFailure(
        code, _STEP7, f"{explanation} (X509_V_ERR {errno})", fix, at_fault=cert, depth=depth
    )


def unknown_server_name(name: bytes | None) -> HandshakeFailure:
    """A client whose SNI names no [[server]] while `[tls] unknown_server = "refuse"`."""
    asked = f"{name.decode('ascii', 'replace')!r}" if name else "no name"
    return HandshakeFailure(
        "unknown_server_name",
        _STEP1,
        f"the client asked for {asked} (SNI), which no [[server]] answers (unknown_server = "
        "refuse)",
        "connect with a name in a [[server]]'s server_names, add the name there, or set "
        '[tls] unknown_server = "default"',
    )


def explain_verify_errors(
    verify_errors: Sequence[tuple[int, int, x509.Certificate]],
) -> HandshakeFailure:
    """Why a certificate the handshake let through (explain mode) did not verify."""
    return _verify_failure(*verify_errors[0])


def _reasons(exc: BaseException) -> str:
    """OpenSSL's reason strings from a pyOpenSSL error, upper case, words joined by `_`."""
    if len(exc.args) == 2 and isinstance(exc.args[0], int):  # SysCallError(errno, text)
        return f"SYSCALL_{exc.args[1]}".upper().replace(" ", "_")
    args = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    texts = [str(item[-1]) for item in args if isinstance(item, tuple) and item]
    return " ".join(t.upper().replace(" ", "_") for t in texts) or str(exc).upper()


def classify_handshake_failure(
    exc: BaseException,
    verify_errors: Sequence[tuple[int, int, x509.Certificate]] = (),
    *,
    after_flight: bool = False,
    ca_names: Sequence[str] = (),
) -> HandshakeFailure:
    """Map what the TLS layer raised (and what the verify callback saw) to a reason code.

    Args:
        exc: the exception of the failed handshake (pyOpenSSL's SSL.Error and its
            subclasses, an OSError, or HandshakeTimeoutError).
        verify_errors: (depth, X509_V_ERR code, certificate) for each certificate OpenSSL
            refused; the first one decided.
        after_flight: our CertificateRequest was sent and no client Certificate had
            arrived (gateway.flight): a client that closes then is
            `closed_before_certificate`, not `connection_reset`.
        ca_names: the CA names the CertificateRequest carried (RFC 4514), for the fix.
    """
    if verify_errors:
        return _verify_failure(*verify_errors[0])
    if isinstance(exc, TimeoutError):
        return _failure("handshake_timeout", _STEP1, "the TLS handshake did not finish in time")
    if isinstance(exc, ConnectionError | EOFError):
        return _closed(after_flight)
    reason = _reasons(exc)
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason or "CERTIFICATE_REQUIRED" in reason:
        names = "; ".join(ca_names) or "no CA names"
        return HandshakeFailure(
            "no_client_certificate",
            _STEP6,
            f"the client sent no certificate; one is required (acceptable CAs sent: {names})",
            _FIXES["no_client_certificate"].format(ca_names=names),
        )
    if "UNSUPPORTED_PROTOCOL" in reason or "VERSION_TOO_LOW" in reason:
        return _failure("tls_version", _STEP1, f"no common TLS version ({reason.lower()})")
    if "NO_SHARED_CIPHER" in reason or "NO_SUITABLE_SIGNATURE" in reason:
        return _failure("no_shared_cipher", _STEP1, "no cipher suite in common")
    if "HTTP_REQUEST" in reason or "WRONG_VERSION_NUMBER" in reason or "PACKET_LENGTH" in reason:
        return _failure("not_tls", _STEP1, "the client spoke plain text, not TLS")
    if "ALERT" in reason and ("UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason):
        return _failure(
            "server_cert_rejected",
            _STEP5,
            f"the client rejected our certificate ({reason.lower()})",
        )
    if "UNEXPECTED_EOF" in reason or "SYSCALL" in reason or not reason.strip("()[]"):
        return _closed(after_flight)
    return _failure("tls_error", _STEP1, f"TLS error: {reason.lower()}")
