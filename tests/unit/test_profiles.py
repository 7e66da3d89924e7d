"""Every profile, on every key type, meets its contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from mtlskit.errors import IssuanceError
from mtlskit.pki import KEY_TYPES, CertificateAuthority
from mtlskit.pki.profiles import CLIENT, INTERMEDIATE, ROOT, SERVER
from tests.profile_asserts import assert_is_intermediate, assert_is_leaf, assert_is_root


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_profile_on_every_key_type(tmp_path: Path, key_type: str) -> None:
    with CertificateAuthority.create(tmp_path / "ca", key_type=key_type) as ca:  # type: ignore[arg-type]
        assert_is_root(ca.root)
        assert_is_intermediate(ca.intermediate, ca.root)
        server = ca.issue_server("api", ["api.example.com", "10.0.0.1"], key_type=key_type)  # type: ignore[arg-type]
        client = ca.issue_client("alice", ["spiffe://td/ns/x"], key_type=key_type)  # type: ignore[arg-type]
    assert_is_leaf(server.certificate, "server")
    assert_is_leaf(client.certificate, "client")
    server.certificate.verify_directly_issued_by(ca.intermediate)
    client.certificate.verify_directly_issued_by(ca.intermediate)


def test_default_lifetimes(ca: CertificateAuthority) -> None:
    def lifetime(cert) -> timedelta:
        return cert.not_valid_after_utc - cert.not_valid_before_utc

    backdate = timedelta(minutes=5)
    assert lifetime(ca.root) == ROOT.default_validity + backdate
    assert lifetime(ca.intermediate) == INTERMEDIATE.default_validity + backdate
    leaf = ca.issue_server("api", ["api.example.com"]).certificate
    assert lifetime(leaf) == SERVER.default_validity + backdate
    assert (
        lifetime(ca.issue_client("a", ["a.example"]).certificate)
        == CLIENT.default_validity + backdate
    )


def test_serials_are_unique_and_random(ca: CertificateAuthority) -> None:
    serials = {
        ca.issue_client(f"c{i}", [f"c{i}.example"]).certificate.serial_number for i in range(20)
    }
    assert len(serials) == 20
    assert all(s.bit_length() >= 64 for s in serials)


def test_leaf_validity_is_capped_at_the_issuing_ca(ca: CertificateAuthority) -> None:
    issued = ca.issue_server("api", ["api.example.com"], validity=timedelta(days=4000))
    assert issued.certificate.not_valid_after_utc == ca.intermediate.not_valid_after_utc
    assert any("capped" in note for note in issued.notes)


def test_issuing_after_the_ca_expired_is_refused(ca: CertificateAuthority) -> None:
    later = datetime.now(UTC) + timedelta(days=2000)
    with pytest.raises(IssuanceError, match="expired"):
        ca.issue_server("api", ["api.example.com"], now=later)


def test_client_without_san_gets_one_from_its_name(ca: CertificateAuthority) -> None:
    issued = ca.issue_client("alice")
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [n.value for n in san] == ["alice"]
    assert any("no --san given" in n for n in issued.notes)
