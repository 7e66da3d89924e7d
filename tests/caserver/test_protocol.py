"""The protocol's pure decisions: tokens, the renewal schedule, names a CSR may ask for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtlskit.caserver.protocol import (
    JITTER,
    bearer_token,
    check_names,
    error_body,
    refusal,
    renewal_due,
    token_hash,
)


def _csr(cn: str, *dns: str) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def test_renewal_is_due_between_the_jitter_floor_and_two_thirds() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=24)
    assert renewal_due(start, end, 0.0) == start + timedelta(hours=16)
    earliest = renewal_due(start, end, 0.999999)
    assert start + timedelta(hours=24) * (2 / 3 - JITTER) <= earliest < start + timedelta(hours=16)
    assert renewal_due(start, end, 5.0) == renewal_due(start, end, 1.0)  # clamped


def test_bearer_tokens_and_their_hash() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    assert token_hash("abc") == token_hash(" abc\n")
    assert len(token_hash("abc")) == 64 and "abc" not in token_hash("abc")


def test_check_names_allows_fewer_and_refuses_more() -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc")])
    allowed = ["DNS:svc", "DNS:svc.example.org"]
    assert check_names(_csr("svc", "svc"), subject, allowed) is None
    assert check_names(_csr("svc"), subject, allowed) is None
    wider = check_names(_csr("svc", "svc", "admin"), subject, allowed)
    assert wider is not None and wider.code == "names_widened" and "DNS:admin" in wider.reason
    other = check_names(_csr("admin", "svc"), subject, allowed)
    assert other is not None and other.status == 403 and "CN=admin" in other.reason


def test_error_body_is_the_protocols_json() -> None:
    body = json.loads(error_body(refusal("token_used", "used at 10:00")))
    assert body == {
        "error": "token_used",
        "reason": "used at 10:00",
        "hint": "a token works once: create a new one with 'mtlskit ca token'",
    }
