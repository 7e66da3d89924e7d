"""verify_chain: a test per reason code, with certificates from our CA or broken on purpose."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtlskit.pki import CLIENT, INTERMEDIATE, SERVER, CertificateAuthority, Profile
from mtlskit.pki.builder import Validity, build_certificate, make_name
from mtlskit.pki.keys import PrivateKey, generate_key
from mtlskit.pki.pem import load_private_key
from mtlskit.trust import (
    REASONS,
    STEPS,
    ReasonCode,
    VerificationResult,
    verify_chain,
)

NOW = datetime.now(UTC).replace(microsecond=0)
STEP_7 = "step 7: the server validates the client's certificate"
STEP_5 = "step 5: the client validates the server's certificate"


def ca_key(ca_dir: Path, which: str) -> PrivateKey:
    return load_private_key((ca_dir / f"{which}.key").read_bytes())


def make_cert(
    profile: Profile,
    name: str,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey | None,
    *,
    sans: Sequence[x509.GeneralName] = (),
    days: int = 30,
    key: PrivateKey | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A certificate from a profile, signed by any key we choose (even a wrong one)."""
    key = key or generate_key("ec-p256")
    cert = build_certificate(
        profile=profile,
        subject=make_name(name),
        public_key=key.public_key(),
        issuer=issuer,
        issuer_key=issuer_key or key,
        validity=Validity(NOW - timedelta(minutes=5), NOW + timedelta(days=days), False, ""),
        serial=x509.random_serial_number(),
        sans=sans,
    )
    return cert, key


def check(
    ca: CertificateAuthority,
    leaf: x509.Certificate,
    sent: Sequence[x509.Certificate] = (),
    *,
    purpose: str = "client",
    at: datetime = NOW,
    **kwargs: object,
) -> VerificationResult:
    return verify_chain(leaf, sent, [ca.root], purpose=purpose, now=at, **kwargs)  # type: ignore[arg-type]


def assert_explained(result: VerificationResult, code: ReasonCode, subject: str) -> None:
    assert not result.valid
    assert result.code is code, result.explanation
    assert result.subject == subject
    assert subject in result.explanation
    assert result.step in result.explanation
    assert result.fix and "{" not in result.fix
    assert result.explanation.startswith(REASONS[code].explanation.split("{")[0])


def test_ok_client_chain_lists_the_verified_path(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    result = check(ca, alice.certificate, [ca.intermediate])
    assert result.valid and result.code is ReasonCode.OK
    assert result.path == ("CN=alice", "CN=Test Intermediate CA", "CN=Test Root CA")
    assert result.step == STEP_7 == STEPS["client"]
    assert "passes step 7" in result.explanation
    assert result.chain[0] == alice.certificate


def test_ok_server_with_host(ca: CertificateAuthority) -> None:
    api = ca.issue_server("api.example.com", ["api.example.com", "10.0.0.1"], now=NOW)
    for host in ("api.example.com", "10.0.0.1", "API.example.com."):
        result = check(ca, api.certificate, [ca.intermediate], purpose="server", host=host)
        assert result.valid, (host, result.explanation)
        assert result.step == STEP_5


def test_expired_leaf(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", validity=timedelta(days=1), now=NOW)
    result = check(ca, alice.certificate, [ca.intermediate], at=NOW + timedelta(days=2))
    assert_explained(result, ReasonCode.EXPIRED, "CN=alice")
    assert "expired on" in result.explanation and STEP_7 in result.explanation
    assert "issue a new certificate for CN=alice" in result.fix
    assert result.details["not_after"] == alice.certificate.not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_not_yet_valid(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    result = check(ca, alice.certificate, [ca.intermediate], at=NOW - timedelta(hours=1))
    assert_explained(result, ReasonCode.NOT_YET_VALID, "CN=alice")
    assert "clock" in result.fix


def test_wrong_root_is_unknown_issuer(ca: CertificateAuthority, tmp_path: Path) -> None:
    # Same names, different keys: only the AKI/SKI link tells the two CAs apart.
    with CertificateAuthority.create(tmp_path / "other", name="Test Root CA") as other:
        mallory = other.issue_client("mallory", now=NOW)
        result = check(ca, mallory.certificate, [other.intermediate])
        assert_explained(result, ReasonCode.UNKNOWN_ISSUER, "CN=Test Intermediate CA")
        assert "CN=Test Root CA" in result.explanation
        assert "--ca" in result.fix
        sent_root = check(ca, mallory.certificate, [other.intermediate, other.root])
        assert_explained(sent_root, ReasonCode.UNKNOWN_ISSUER, "CN=Test Root CA")
        assert "self-signed root" in sent_root.explanation


def test_missing_intermediate_is_detected_from_a_hint(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    result = check(ca, alice.certificate, [], hints=[ca.intermediate])
    assert_explained(result, ReasonCode.MISSING_INTERMEDIATE, "CN=alice")
    assert result.details["missing"] == "CN=Test Intermediate CA"
    assert "chain.pem" in result.fix and "CN=Test Intermediate CA" in result.fix
    # without the hint nobody knows the intermediate: no path to a trusted root
    assert check(ca, alice.certificate).code is ReasonCode.UNKNOWN_ISSUER


def test_wrong_purpose_on_the_leaf(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", ["alice.example.com"], now=NOW)
    result = check(ca, alice.certificate, [ca.intermediate], purpose="server")
    assert_explained(result, ReasonCode.WRONG_PURPOSE, "CN=alice")
    assert "lacks serverAuth" in result.explanation and STEP_5 in result.explanation
    assert "mtlskit ca issue server" in result.fix
    api = ca.issue_server("api.example.com", now=NOW)
    assert check(ca, api.certificate, [ca.intermediate]).code is ReasonCode.WRONG_PURPOSE


def test_wrong_eku_on_an_intermediate(ca: CertificateAuthority, ca_dir: Path) -> None:
    server_only = dataclasses.replace(
        INTERMEDIATE, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,)
    )
    sub, sub_key = make_cert(server_only, "Server-only CA", ca.root, ca_key(ca_dir, "root"))
    leaf, _ = make_cert(CLIENT, "alice", sub, sub_key, sans=[x509.DNSName("alice")])
    result = check(ca, leaf, [sub])
    assert_explained(result, ReasonCode.WRONG_PURPOSE, "CN=Server-only CA")
    assert "intermediate CA" in result.explanation and "clientAuth" in result.explanation


def test_name_mismatch(ca: CertificateAuthority) -> None:
    api = ca.issue_server("api.example.com", now=NOW)
    result = check(ca, api.certificate, [ca.intermediate], purpose="server", host="www.example.com")
    assert_explained(result, ReasonCode.NAME_MISMATCH, "CN=api.example.com")
    assert "'www.example.com' is not in [api.example.com]" in result.explanation
    assert "--san" in result.fix


def test_issuer_not_ca(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    assert alice.private_key is not None
    forged, _ = make_cert(
        CLIENT, "bob", alice.certificate, alice.private_key, sans=[x509.DNSName("bob")]
    )
    result = check(ca, forged, [alice.certificate, ca.intermediate])
    assert_explained(result, ReasonCode.ISSUER_NOT_CA, "CN=alice")
    assert "CA:FALSE" in result.explanation


def test_path_len_exceeded(ca: CertificateAuthority, ca_dir: Path) -> None:
    # mtlskit's intermediate has pathLen 0: a CA below it is one too many.
    sub, sub_key = make_cert(
        INTERMEDIATE, "Sub CA", ca.intermediate, ca_key(ca_dir, "intermediate")
    )
    leaf, _ = make_cert(CLIENT, "alice", sub, sub_key, sans=[x509.DNSName("alice")])
    result = check(ca, leaf, [sub, ca.intermediate])
    assert_explained(result, ReasonCode.PATH_TOO_LONG, "CN=Test Intermediate CA")
    assert "pathLenConstraint is 0" in result.explanation


def test_max_depth_exceeded(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    result = check(ca, alice.certificate, [ca.intermediate], max_depth=0)
    assert_explained(result, ReasonCode.PATH_TOO_LONG, "CN=Test Intermediate CA")
    assert "--max-depth" in result.explanation
    assert check(ca, alice.certificate, [ca.intermediate], max_depth=1).valid


def test_bad_signature(ca: CertificateAuthority) -> None:
    # Claims the intermediate as issuer (name and AKI) but is signed by another key.
    forged, _ = make_cert(
        CLIENT, "alice", ca.intermediate, generate_key("ec-p256"), sans=[x509.DNSName("alice")]
    )
    result = check(ca, forged, [ca.intermediate])
    assert_explained(result, ReasonCode.BAD_SIGNATURE, "CN=alice")
    assert "CN=Test Intermediate CA" in result.explanation


def test_self_signed_untrusted(ca: CertificateAuthority) -> None:
    selfie, _ = make_cert(CLIENT, "eve", None, None, sans=[x509.DNSName("eve")])
    result = check(ca, selfie)
    assert_explained(result, ReasonCode.SELF_SIGNED_UNTRUSTED, "CN=eve")
    assert "mtlskit ca issue client" in result.fix


def test_cn_only_client_is_malformed(ca: CertificateAuthority, ca_dir: Path) -> None:
    cn_only = dataclasses.replace(CLIENT, requires_san=False)
    leaf, _ = make_cert(cn_only, "bob", ca.intermediate, ca_key(ca_dir, "intermediate"))
    result = check(ca, leaf, [ca.intermediate])
    assert_explained(result, ReasonCode.MALFORMED, "CN=bob")
    assert "subjectAltName" in result.explanation and "--san" in result.fix


def test_ed25519_chain_is_a_policy_violation(tmp_path: Path) -> None:
    # cryptography's WebPKI profile forbids Ed25519, which mtlskit can issue.
    with CertificateAuthority.create(tmp_path / "ed", name="Ed Root", key_type="ed25519") as ed:
        leaf = ed.issue_client("alice", key_type="ed25519", now=NOW)
        result = verify_chain(
            leaf.certificate, [ed.intermediate], [ed.root], purpose="client", now=NOW
        )
        assert_explained(result, ReasonCode.POLICY_VIOLATION, "CN=alice")
        assert "Forbidden public key algorithm" in result.explanation


def test_server_leaf_with_wildcard_and_no_host(ca: CertificateAuthority) -> None:
    api = ca.issue_server("wild", ["*.example.com"], now=NOW)
    result = check(ca, api.certificate, [ca.intermediate], purpose="server")
    assert result.valid
    assert any("not checked" in note for note in result.notes)
    assert check(
        ca, api.certificate, [ca.intermediate], purpose="server", host="a.example.com"
    ).valid
    named = check(ca, api.certificate, [ca.intermediate], purpose="server", host="a.b.example.com")
    assert named.code is ReasonCode.NAME_MISMATCH


@pytest.mark.parametrize("purpose", ["client", "server"])
def test_json_object_is_stable(ca: CertificateAuthority, purpose: str) -> None:
    alice = ca.issue_client("alice", now=NOW)
    data = check(ca, alice.certificate, [ca.intermediate], purpose=purpose).to_json()
    assert {"valid", "code", "subject", "path", "explanation", "fix"} <= set(data)
    assert data["valid"] is (purpose == "client")
    assert data["code"] == ("ok" if purpose == "client" else "wrong_purpose")


def test_profiles_are_unchanged_by_tests() -> None:
    assert SERVER.extended_key_usage == (ExtendedKeyUsageOID.SERVER_AUTH,)
