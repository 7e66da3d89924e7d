"""`mtlskit ca rotate` / `ca status`: new intermediate or cross-signed root, overlap, retire."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.errors import KeyPasswordError
from mtlskit.pki import CertificateAuthority
from mtlskit.pki.rotation import read_state
from mtlskit.tlsconfig import load_client_cas
from tests.integration.peers import openssl
from tests.profile_asserts import assert_is_intermediate, assert_is_root


def _certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def _one_error(result, code: int) -> str:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 2, result.err
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    assert "Traceback" not in result.err
    return result.err


@pytest.fixture
def rotated_ca(tmp_path: Path) -> Path:
    """A CA with one client leaf issued before any rotation (tmp/ca, tmp/out/old.*)."""
    d = tmp_path / "ca"
    (tmp_path / "out").mkdir()
    with CertificateAuthority.create(d, name="Rot Root CA", organization="Example") as ca:
        ca.issue_client("old", ["old.example.org"]).write(tmp_path / "out", "old")
    return d


def _issue_new(d: Path, name: str = "new") -> Path:
    out = d.parent / "out"
    with CertificateAuthority.load(d) as ca:
        ca.issue_client(name, [f"{name}.example.org"]).write(out, name)
    return out


def test_rotate_makes_a_new_intermediate_and_keeps_the_old(rotated_ca: Path, run_cli) -> None:
    d = rotated_ca
    old_int = _certs(d / "intermediate.crt")[0]
    root = _certs(d / "root.crt")[0]
    r = run_cli("ca", "rotate", "--dir", d)
    assert r.code == 0, r.err
    assert "phase                    overlap" in r.out and "transition.pem" in r.out
    new_int = _certs(d / "intermediate.crt")[0]
    assert_is_intermediate(new_int, root)  # same root
    assert _cn(new_int) == "Rot Intermediate CA G2"  # never the old name: CRLs match by name
    assert new_int.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == (
        "Example"
    )
    assert _certs(d / "root.crt")[0] == root
    serial = format(old_int.serial_number, "X")
    kept = d / "previous" / f"intermediate-{serial}.crt"
    assert _certs(kept)[0] == old_int
    assert stat.S_IMODE((d / "previous" / f"intermediate-{serial}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "intermediate.key").stat().st_mode) == 0o600
    # the transition bundle: root (the anchor), new and old intermediate; a valid client_ca
    # intermediates only: the gateway takes them as the trust anchors (partial chain)
    assert _certs(d / "transition.pem") == [new_int, old_int]
    assert len(load_client_cas(d / "transition.pem")) == 2
    state = json.loads((d / "rotation.json").read_text())
    assert state["phase"] == "overlap" and state["kind"] == "intermediate"
    # the CA now issues with the new intermediate; the old leaf still verifies
    out = _issue_new(d)
    assert _certs(out / "new.crt")[0].issuer == new_int.subject
    for name in ("old", "new"):
        v = openssl(
            "verify",
            "-CAfile",
            d / "root.crt",
            "-untrusted",
            out / f"{name}.chain.pem",
            out / f"{name}.crt",
        )
        assert v.returncode == 0 and ": OK" in v.stdout, v.stdout + v.stderr
    # ca list shows the new intermediate; the audit log has the rotation
    with CertificateAuthority.load(d, with_key=False) as ca:
        profiles = [rec.profile for rec in ca.records()]
        assert profiles.count("intermediate") == 2
        assert [a.event for a in ca.store.audit_records(event="rotated")] == ["rotated"]


def test_old_leaves_stay_revocable_and_their_crl_publishable(
    rotated_ca: Path, run_cli, tmp_path: Path
) -> None:
    d = rotated_ca
    old_leaf = _certs(tmp_path / "out" / "old.crt")[0]
    assert run_cli("ca", "rotate", "--dir", d).code == 0
    r = run_cli("ca", "revoke", format(old_leaf.serial_number, "X"), "--dir", d)
    assert r.code == 0, r.err
    crl_file = tmp_path / "old.crl.pem"
    r = run_cli("ca", "rotate", "--dir", d, "--previous-crl", crl_file)
    assert r.code == 0, r.err
    assert "1 revoked" in r.out
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    assert crl.issuer == old_leaf.issuer
    assert crl.get_revoked_certificate_by_serial_number(old_leaf.serial_number) is not None
    # openssl checks the CRL's signature with the old intermediate, and the leaf against it
    old_chain = tmp_path / "out" / "old.chain.pem"
    v = openssl("crl", "-in", crl_file, "-CAfile", old_chain, "-noout")
    assert "verify OK" in v.stdout + v.stderr, v.stdout + v.stderr
    both = tmp_path / "trust.pem"
    both.write_bytes((d / "root.crt").read_bytes() + crl_file.read_bytes())
    v = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        both,
        "-untrusted",
        old_chain,
        tmp_path / "out" / "old.crt",
    )
    assert v.returncode != 0 and "revoked" in v.stdout + v.stderr


def test_status_walks_through_the_phases(rotated_ca: Path, run_cli) -> None:
    d = rotated_ca
    r = run_cli("ca", "status", "--dir", d)
    assert r.code == 0, r.err
    assert r.out.startswith("phase: old only")
    assert "1 valid leaves" in r.out and f"mtlskit ca rotate --dir {d}" in r.out

    assert run_cli("ca", "rotate", "--dir", d).code == 0
    _issue_new(d, "new1")
    _issue_new(d, "new2")
    r = run_cli("ca", "status", "--dir", d, "--json")
    data = json.loads(r.out)
    assert data["phase"] == "overlap" and data["kind"] == "intermediate"
    by_role = {c["role"]: c for c in data["certificates"]}
    assert by_role["intermediate"]["valid_leaves"] == 2
    assert by_role["previous intermediate"]["valid_leaves"] == 1
    assert by_role["previous intermediate"]["subject"].startswith("CN=Rot Intermediate CA,")
    assert by_role["root"]["not_after"].endswith("Z")
    r = run_cli("ca", "status", "--dir", d)
    assert r.out.startswith("phase: overlap (last rotation: intermediate)")
    assert f"put {d / 'transition.pem'} (old and new CA) in the gateway's client_ca" in r.out
    assert f"mtlskit ca rotate --dir {d} --retire" in r.out

    # retiring while the old intermediate has a valid leaf needs --force
    err = _one_error(run_cli("ca", "rotate", "--dir", d, "--retire"), 1)
    assert "still has 1 valid leaves" in err and "--force" in err
    r = run_cli("ca", "rotate", "--dir", d, "--retire", "--force")
    assert r.code == 0, r.err
    assert "new only" in r.out
    new_int = _certs(d / "intermediate.crt")[0]
    assert _certs(d / "transition.pem") == [new_int]
    r = run_cli("ca", "status", "--dir", d)
    assert r.out.startswith("phase: new only")
    assert "the root did not change" in r.out  # peers trusting the root still accept old leaves
    err = _one_error(run_cli("ca", "rotate", "--dir", d, "--retire"), 1)
    assert "not in an overlap" in err

    # a second rotation: generation 3, two past generations recorded
    assert run_cli("ca", "rotate", "--dir", d).code == 0
    assert _cn(_certs(d / "intermediate.crt")[0]) == "Rot Intermediate CA G3"
    state = read_state(d)
    assert state is not None and len(state.previous) == 2 and state.phase == "overlap"


def test_rotate_refuses_during_an_overlap_and_bad_flags(rotated_ca: Path, run_cli) -> None:
    d = rotated_ca
    err = _one_error(run_cli("ca", "rotate", "--dir", d, "--previous-crl", d / "x.pem"), 2)
    assert "never rotated" in err
    err = _one_error(run_cli("ca", "rotate", "--dir", d, "--force"), 2)
    assert "--force goes with --retire" in err
    assert run_cli("ca", "rotate", "--dir", d).code == 0
    before = (d / "intermediate.crt").read_bytes()
    err = _one_error(run_cli("ca", "rotate", "--dir", d, "--root"), 1)
    assert "already in an overlap" in err and "--retire" in err
    assert (d / "intermediate.crt").read_bytes() == before
    err = _one_error(run_cli("ca", "status", "--dir", d.parent / "nope"), 2)
    assert "does not exist" in err
    (d / "rotation.json").write_text("{not json")
    err = _one_error(run_cli("ca", "status", "--dir", d), 2)
    assert "rotation.json" in err


def test_rotate_root_cross_signs_the_new_root(rotated_ca: Path, run_cli, tmp_path: Path) -> None:
    d = rotated_ca
    old_root = _certs(d / "root.crt")[0]
    old_int = _certs(d / "intermediate.crt")[0]
    old_root_file = tmp_path / "old-root.pem"
    old_root_file.write_bytes((d / "root.crt").read_bytes())
    r = run_cli("ca", "rotate", "--dir", d, "--root")
    assert r.code == 0, r.err
    assert "cross-signed by" in r.out
    new_root, cross = _certs(d / "root.crt")[0], _certs(d / "root-cross.crt")[0]
    new_int = _certs(d / "intermediate.crt")[0]
    assert_is_root(new_root)
    assert _cn(new_root) == "Rot Root CA G2"
    assert_is_intermediate(new_int, new_root)
    # the cross certificate: the new root's name and key, issued by the old root
    assert cross.subject == new_root.subject and cross.issuer == old_root.subject
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert cross.public_key().public_bytes(der, spki) == new_root.public_key().public_bytes(
        der, spki
    )
    cross.verify_directly_issued_by(old_root)
    assert cross.not_valid_after_utc <= old_root.not_valid_after_utc
    # the old root is kept; the bundle trusts both roots during the overlap
    kept = d / "previous" / f"root-{format(old_root.serial_number, 'X')}.crt"
    assert _certs(kept)[0] == old_root
    assert _certs(d / "transition.pem") == [new_int, old_int]
    out = _issue_new(d)
    leaf = out / "new.crt"
    # a client of the new root verifies against the OLD root through the cross certificate
    untrusted = tmp_path / "cross-and-int.pem"
    untrusted.write_bytes(
        (d / "intermediate.crt").read_bytes() + (d / "root-cross.crt").read_bytes()
    )
    v = openssl("verify", "-CAfile", old_root_file, "-untrusted", untrusted, leaf)
    assert v.returncode == 0 and ": OK" in v.stdout, v.stdout + v.stderr
    v = openssl("verify", "-CAfile", old_root_file, "-untrusted", d / "intermediate.crt", leaf)
    assert v.returncode != 0  # without the cross certificate it does not
    v = openssl("verify", "-CAfile", d / "root.crt", "-untrusted", d / "intermediate.crt", leaf)
    assert v.returncode == 0, v.stdout + v.stderr
    # the old leaf still verifies against the old root
    v = openssl(
        "verify",
        "-CAfile",
        old_root_file,
        "-untrusted",
        tmp_path / "out" / "old.chain.pem",
        tmp_path / "out" / "old.crt",
    )
    assert v.returncode == 0, v.stdout + v.stderr
    r = run_cli("ca", "status", "--dir", d)
    assert "cross" in r.out and "previous root" in r.out and "root-cross.crt" in r.out
    assert "install the new root" in r.out


def test_rotate_an_encrypted_ca_keeps_its_keys_encrypted(tmp_path: Path, run_cli) -> None:
    d, pw = tmp_path / "ca", tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    assert run_cli("ca", "init", "--dir", d, "--password-file", pw).code == 0
    err = _one_error(run_cli("ca", "rotate", "--dir", d, "--root"), 2)
    assert "password" in err.lower()
    assert not (d / "rotation.json").exists()
    r = run_cli("ca", "rotate", "--dir", d, "--root", "--password-file", pw)
    assert r.code == 0, r.err
    with pytest.raises(KeyPasswordError):
        CertificateAuthority.load(d)
    for key in ("root.key", "intermediate.key"):
        assert b"ENCRYPTED" in (d / key).read_bytes()
    with CertificateAuthority.load(d, password=pw.read_bytes().strip()) as ca:
        assert _cn(ca.intermediate) == "mtlskit Intermediate CA G2"


def test_revoke_by_file_takes_a_leaf_of_the_rotated_out_intermediate(tmp_path: Path) -> None:
    """After `ca rotate`, `ca revoke --cert` still revokes what the old intermediate issued."""
    from mtlskit.cli import main

    d, out = tmp_path / "ca", tmp_path / "out"
    out.mkdir()
    with CertificateAuthority.create(d, name="Revoking Root CA") as ca:
        ca.issue_client("old", ["old.example.org"]).write(out, "old")
    assert main(["ca", "rotate", "--dir", str(d)]) == 0
    assert main(["ca", "revoke", "--cert", str(out / "old.crt"), "--dir", str(d)]) == 0
    with CertificateAuthority.load(d) as ca:
        (record,) = [r for r in ca.records() if r.subject == "CN=old"]
        assert record.revoked_at is not None
