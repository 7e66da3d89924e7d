"""Failure codes of `mtlskit probe` and `mtlskit request` as data: meaning, seed step, fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FAILURES", "Failure", "server_failure_code"]


@dataclass(frozen=True, slots=True)
class Failure:
    """One stable outcome code (documented in docs/client.md; the values are public API).

    Attributes:
        code: the stable code.
        step: the seed step (1-9) it breaks; 0 for "ok" and failures before step 1.
        meaning: one line for people and the documentation table.
        fix: what to do about it.
    """

    code: str
    step: int
    meaning: str
    fix: str


def _f(code: str, step: int, meaning: str, fix: str) -> Failure:
    return Failure(code, step, meaning, fix)


FAILURES: Mapping[str, Failure] = {
    f.code: f
    for f in (
        _f("ok", 0, "the mTLS handshake completed and the server accepted the client", "none"),
        _f(
            "connection_refused",
            0,
            "nothing listens on that address (TCP connection refused)",
            "check the host and port, and that the server is running",
        ),
        _f(
            "timeout",
            0,
            "no answer in time (TCP connect or TLS handshake)",
            "check firewalls and that the port serves TLS; raise --timeout for slow links",
        ),
        _f(
            "not_tls",
            1,
            "the port answered, but not with TLS (plain HTTP or another protocol)",
            "use the TLS port of the service, or put a TLS front (mtlskit gateway) before it",
        ),
        _f(
            "protocol_version_mismatch",
            1,
            "client and server share no TLS version (mtlskit speaks TLS 1.2 and 1.3)",
            "enable TLS 1.2 or 1.3 on the server; older versions are broken",
        ),
        _f(
            "server_cert_untrusted",
            5,
            "the server's chain does not lead to a trusted root",
            "give --ca the root that issued the server's chain, or fix the server's certificate",
        ),
        _f(
            "server_chain_incomplete",
            5,
            "the server sent its leaf without the intermediate(s) that lead to the root",
            "configure the server with leaf + intermediates (NAME.chain.pem, nginx "
            "ssl_certificate with the chain, openssl s_server -cert_chain)",
        ),
        _f(
            "server_cert_expired",
            5,
            "a certificate in the server's chain is expired or not yet valid",
            "renew the server certificate (mtlskit ca issue server ...) and reload the server; "
            "check the clocks",
        ),
        _f(
            "server_name_mismatch",
            5,
            "the server certificate does not name the host asked for",
            "connect with a name the certificate lists (--servername), or re-issue it with "
            "that name in its SAN",
        ),
        _f(
            "server_cert_wrong_purpose",
            5,
            "the server certificate (or a CA above it) may not be used for serverAuth (EKU "
            "or key usage)",
            "issue a server certificate (mtlskit ca issue server ...); when the explanation "
            "names a CA, reissue that CA with serverAuth in its EKU (or without one), then "
            "the certificates below it",
        ),
        _f(
            "server_cert_weak",
            5,
            "a certificate in the server's chain has a key or signature hash OpenSSL's default "
            "security level refuses (RSA under 2048 bits, EC under 224 bits or on a curve TLS "
            "does not sign with, SHA-1/MD5): current clients refuse it",
            "reissue the certificate named with an ec-p256 key (or RSA 2048+), signed with "
            "SHA-256, and reload the server; for a CA, reissue the CA, then the certificates "
            "below it",
        ),
        _f(
            "client_cert_required",
            6,
            "the server requires a client certificate and none was sent",
            "pass --cert and --key (a certificate from one of the CAs the server accepts)",
        ),
        _f(
            "client_cert_unknown_ca",
            7,
            "the server does not trust the CA that issued the client certificate (alert 48)",
            "use a client certificate from a CA the server lists, or add your root to the "
            "server's client CA file",
        ),
        _f(
            "client_cert_bad",
            7,
            "the server rejected the client certificate as bad (alert 42)",
            "see the preflight: send the intermediate with the leaf (--cert NAME.chain.pem), "
            "use the key of that certificate, and a certificate valid now",
        ),
        _f(
            "client_cert_unsupported",
            7,
            "the server rejected the client certificate's purpose (alert 43, usually the EKU)",
            "issue a client certificate with extendedKeyUsage clientAuth "
            "(mtlskit ca issue client ...)",
        ),
        _f(
            "client_cert_expired",
            7,
            "the server rejected the client certificate as expired (alert 45)",
            "renew the client certificate (mtlskit ca issue client ...)",
        ),
        _f(
            "client_cert_revoked",
            7,
            "the server found the client certificate on a CRL (alert 44)",
            "get a new client certificate; the revoked one stays rejected",
        ),
        _f(
            "handshake_failed",
            1,
            "the handshake failed for another reason (the alert or error is shown)",
            "compare the versions, ciphers and groups both sides allow; read the server's log",
        ),
        _f(
            "access_denied",
            9,
            "mTLS succeeded, but the server's access policy refused this identity (HTTP 403)",
            "ask for the identity to be allowed (the gateway's [policy] allow_*), or use an "
            "allowed certificate",
        ),
    )
}

# trust.ReasonCode values -> the client-side code for a server chain that fails step 5.
_SERVER_CODES = {
    "expired": "server_cert_expired",
    "not_yet_valid": "server_cert_expired",
    "name_mismatch": "server_name_mismatch",
    "wrong_purpose": "server_cert_wrong_purpose",
    "missing_intermediate": "server_chain_incomplete",
    "key_too_weak": "server_cert_weak",
    "signature_too_weak": "server_cert_weak",
    "key_unsupported": "server_cert_weak",
}


def server_failure_code(reason: str, *, chain_complete: bool | None) -> str:
    """The failure code for a server chain rejected with trust reason `reason`.

    An open chain (the top certificate sent is neither a root nor issued by one we trust)
    reads as incomplete before it reads as untrusted: sending the intermediate is the
    first fix, and only then can trust be judged.
    """
    if reason in _SERVER_CODES:
        return _SERVER_CODES[reason]
    if chain_complete is False and reason == "unknown_issuer":
        return "server_chain_incomplete"
    return "server_cert_untrusted"
