"""CRLs: revoked, stale, forged and foreign CRLs, with our CA's real CRLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from mtlskit.pki import CertificateAuthority
from mtlskit.pki.crl import Revocation, build_crl
from mtlskit.pki.keys import generate_key
from mtlskit.pki.pem import load_private_key
from mtlskit.trust import ReasonCode, load_crl_set, verify_chain

NOW = datetime.now(UTC).replace(microsecond=0)
STEP_7 = "step 7: the server validates the client's certificate"


def test_revoked_with_reason_and_date(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    ca.revoke(alice.certificate.serial_number, "keyCompromise", now=NOW)
    crl = load_crl_set(ca.crl(now=NOW), [ca.root, ca.intermediate])
    assert crl.problem == "" and crl.signer == ca.intermediate
    assert crl.is_revoked(alice.certificate.serial_number)
    result = verify_chain(
        alice.certificate, [ca.intermediate], [ca.root], purpose="client", now=NOW, crls=[crl]
    )
    assert not result.valid and result.code is ReasonCode.REVOKED
    assert result.subject == "CN=alice"
    assert result.details["revocation_reason"] == "keyCompromise"
    assert result.details["revocation_date"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "CN=alice" in result.explanation and STEP_7 in result.explanation
    assert "issue a new certificate" in result.fix
    # the path is still shown: the chain itself was fine
    assert result.path[-1] == "CN=Test Root CA"


def test_other_certificates_pass_the_same_crl(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    bob = ca.issue_client("bob", now=NOW)
    ca.revoke(alice.certificate.serial_number, now=NOW)
    crl = load_crl_set(ca.crl(now=NOW), [ca.intermediate])
    result = verify_chain(
        bob.certificate, [ca.intermediate], [ca.root], purpose="client", now=NOW, crls=[crl]
    )
    assert result.valid
    assert any("CN=Test Root CA" in n and "not checked" in n for n in result.notes)


def test_stale_crl_fails_closed(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    crl = load_crl_set(ca.crl(next_update=timedelta(days=1), now=NOW), [ca.intermediate])
    later = NOW + timedelta(days=2)
    result = verify_chain(
        alice.certificate, [ca.intermediate], [ca.root], purpose="client", now=later, crls=[crl]
    )
    assert result.code is ReasonCode.CRL_STALE
    assert result.subject == "CN=Test Intermediate CA"
    assert "nextUpdate" in result.explanation and "mtlskit ca crl" in result.fix


def test_forged_crl_is_a_bad_signature(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", now=NOW)
    forged = build_crl(
        issuer=ca.intermediate,  # its name and key identifier ...
        issuer_key=generate_key("ec-p256"),  # ... but another key signs
        revoked=[Revocation(12345, NOW, "unspecified")],
        number=1,
        this_update=NOW,
        next_update=NOW + timedelta(days=7),
    )
    crl = load_crl_set(forged, [ca.root, ca.intermediate])
    assert crl.signer is None and "signature" in crl.problem
    result = verify_chain(
        alice.certificate, [ca.intermediate], [ca.root], purpose="client", now=NOW, crls=[crl]
    )
    assert result.code is ReasonCode.BAD_SIGNATURE
    assert result.subject == "CN=Test Intermediate CA"


def test_crl_of_another_ca_does_not_apply(ca: CertificateAuthority, tmp_path: Path) -> None:
    alice = ca.issue_client("alice", now=NOW)
    with CertificateAuthority.create(tmp_path / "other", name="Test Root CA") as other:
        # Same serial, same issuer name, other CA: must not revoke alice.
        foreign = build_crl(
            issuer=other.intermediate,
            issuer_key=load_private_key((tmp_path / "other" / "intermediate.key").read_bytes()),
            revoked=[Revocation(alice.certificate.serial_number, NOW, "unspecified")],
            number=1,
            this_update=NOW,
            next_update=NOW + timedelta(days=7),
        )
        crl = load_crl_set(foreign, [other.intermediate])
    result = verify_chain(
        alice.certificate, [ca.intermediate], [ca.root], purpose="client", now=NOW, crls=[crl]
    )
    assert result.valid
    assert any("does not cover" in n for n in result.notes)
