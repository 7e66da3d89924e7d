"""Why a client's TLS handshake failed, as a reason code, a seed step and a fix (pure)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = ["HandshakeFailure", "classify_handshake_error"]

_STEP7 = "step 7: the server validates the client's certificate"
_STEP6 = "step 6: the client presents its certificate"
_STEP1 = "step 1: the client hello (versions and cipher suites)"
_STEP5 = "step 5: the client validates the server's certificate"

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h) -> trust reason codes.
_VERIFY_CODES: dict[int, tuple[str, str]] = {
    2: ("unknown_issuer", "the issuer of a certificate in the client's chain is unknown"),
    7: ("bad_signature", "a signature in the client's chain does not verify"),
    9: ("not_yet_valid", "the client certificate is not valid yet"),
    10: ("expired", "the client certificate (or its CA) has expired"),
    12: ("crl_stale", "the CRL for the client's CA is past its nextUpdate"),
    18: ("self_signed_untrusted", "the client sent a self-signed certificate"),
    19: ("self_signed_untrusted", "the client's chain ends in a root we do not trust"),
    20: (
        "unknown_issuer",
        "no trusted CA issued the client's certificate (or its intermediate was not sent)",
    ),
    21: ("unknown_issuer", "the client's chain cannot be verified to a trusted root"),
    23: ("revoked", "the client certificate is revoked"),
    24: ("issuer_not_ca", "a certificate that signed the client's is not a CA"),
    25: ("path_too_long", "the client's chain is longer than its CAs allow"),
    26: (
        "wrong_purpose",
        "the client certificate is not meant for client authentication (EKU lacks clientAuth)",
    ),
    28: ("wrong_purpose", "a CA in the client's chain is not trusted for client authentication"),
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
    "no_client_certificate": "configure the client with a certificate and key "
    "(curl --cert NAME.chain.pem --key NAME.key)",
    "tls_version": "use TLS 1.2 or 1.3 on the client",
    "no_shared_cipher": "enable an ECDHE + AES-GCM or ChaCha20 suite on the client",
    "not_tls": "connect with https:// (TLS); this port speaks only TLS",
    "handshake_timeout": "the client was too slow or never finished; check its network",
    "server_cert_rejected": "make the client trust the gateway's root CA (curl --cacert root.crt)",
    "connection_reset": "the client closed the connection during the handshake",
    "tls_error": "see the OpenSSL reason in the log line",
}


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """A failed handshake, explained.

    Attributes:
        code: the trust reason code, or a handshake-level code (no_client_certificate,
            tls_version, no_shared_cipher, not_tls, handshake_timeout,
            server_cert_rejected, connection_reset, tls_error).
        step: the seed step that broke.
        explanation: one line for the log.
        fix: what to change.
    """

    code: str
    step: str
    explanation: str
    fix: str


def _failure(code: str, step: str, explanation: str) -> HandshakeFailure:
    return HandshakeFailure(code, step, explanation, _FIXES[code])


def classify_handshake_error(exc: BaseException) -> HandshakeFailure:
    """Map what OpenSSL (through `ssl`) or asyncio raised to a reason code."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code, text = _VERIFY_CODES.get(
            exc.verify_code, ("unknown_issuer", f"verification failed: {exc.verify_message}")
        )
        return _failure(code, _STEP7, f"{text} (OpenSSL: {exc.verify_message})")
    if isinstance(exc, TimeoutError):  # gateway.tls.HandshakeTimeoutError
        return _failure("handshake_timeout", _STEP1, "the TLS handshake did not finish in time")
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason or "CERTIFICATE_REQUIRED" in reason:
            return _failure(
                "no_client_certificate", _STEP6, "the client sent no certificate; one is required"
            )
        if "UNSUPPORTED_PROTOCOL" in reason or ("VERSION" in reason and "WRONG" not in reason):
            return _failure("tls_version", _STEP1, f"no common TLS version ({exc.reason})")
        if "NO_SHARED_CIPHER" in reason:
            return _failure("no_shared_cipher", _STEP1, "no cipher suite in common")
        if "HTTP_REQUEST" in reason or "WRONG_VERSION_NUMBER" in reason:
            return _failure("not_tls", _STEP1, "the client spoke plain text, not TLS")
        if "ALERT" in reason and ("UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason):
            return _failure(
                "server_cert_rejected",
                _STEP5,
                f"the client rejected our certificate ({exc.reason})",
            )
        if "CERTIFICATE" in reason and "REVOKED" in reason:
            return _failure("revoked", _STEP7, "the client certificate is revoked")
        return _failure("tls_error", _STEP1, f"TLS error: {exc.reason or exc}")
    if isinstance(exc, ConnectionError | EOFError):
        return _failure("connection_reset", _STEP1, "the client closed the connection")
    return _failure("tls_error", _STEP1, f"{type(exc).__name__}: {exc}")
