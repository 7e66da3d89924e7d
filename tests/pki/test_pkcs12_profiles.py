"""PKCS#12 profiles (modern, legacy), read back by the openssl command and curl."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mtlskit.pki import CertificateAuthority
from mtlskit.pki.pkcs12 import MIN_PASSWORD_LENGTH, password_warning, to_pkcs12
from tests.integration.peers import curl, openssl, openssl_server

LONG = "correct-horse-battery-staple-42"  # 31 characters: no warning

# What `openssl pkcs12 -info` prints (on stderr) for each profile: the MAC, then the
# encryption of the certificate bag (PKCS7 Encrypted data) and of the key (Shrouded Keybag).
EXPECTED = {
    "modern": [
        "MAC: sha256, Iteration 2048",
        "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 200000, PRF hmacWithSHA256",
        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 200000, PRF hmacWithSHA256",
    ],
    "legacy": [
        "MAC: sha1, Iteration 2048",
        "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
    ],
}


def _info(path: Path, password: str, profile: str) -> str:
    """`openssl pkcs12 -info -noout` output; with -legacy when the default provider refuses."""
    argv: list[str | Path] = ["pkcs12", "-info", "-in", path, "-passin", f"pass:{password}"]
    result = openssl(*argv, "-noout")
    if result.returncode != 0 and profile == "legacy":
        # OpenSSL 3 keeps some PKCS#12 algorithms in the legacy provider (RC2 for certain);
        # 3DES is in the default one on 3.0, but a build may move it.
        result = openssl(*argv, "-noout", "-legacy")
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def _certs(path: Path, password: str) -> str:
    result = openssl("pkcs12", "-in", path, "-passin", f"pass:{password}", "-nokeys")
    if result.returncode != 0:
        result = openssl("pkcs12", "-in", path, "-passin", f"pass:{password}", "-nokeys", "-legacy")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_each_profile_has_the_algorithms_it_promises(
    ca: CertificateAuthority, tmp_path: Path, profile: str
) -> None:
    alice = ca.issue_client("alice", ["spiffe://example.org/ns/a/sa/alice"])
    assert alice.private_key is not None
    data = to_pkcs12(
        "alice",
        alice.private_key,
        alice.certificate,
        alice.intermediates,
        LONG.encode(),
        profile=profile,  # type: ignore[arg-type]
    )
    path = tmp_path / f"alice-{profile}.p12"
    path.write_bytes(data)
    info = _info(path, LONG, profile)
    for line in EXPECTED[profile]:
        assert line in info, info
    other = "legacy" if profile == "modern" else "modern"
    assert EXPECTED[other][0] not in info
    # leaf and intermediate both inside, so importers can build the chain
    certs = _certs(path, LONG)
    assert "subject=CN = alice" in certs and "subject=CN = Test Intermediate CA" in certs
    # and the MAC really is keyed by the password
    wrong = openssl("pkcs12", "-info", "-in", path, "-passin", "pass:wrong", "-noout")
    assert wrong.returncode != 0
    assert "mac verify error" in wrong.stderr.lower()


def test_an_unknown_profile_is_refused(ca: CertificateAuthority) -> None:
    alice = ca.issue_client("alice", ["alice.example.org"])
    assert alice.private_key is not None
    with pytest.raises(ValueError, match="unknown PKCS#12 profile 'rc2'"):
        to_pkcs12(
            "a",
            alice.private_key,
            alice.certificate,
            (),
            b"x" * 20,
            profile="rc2",  # type: ignore[arg-type]
        )


def test_short_passwords_are_explained() -> None:
    assert password_warning(b"x" * MIN_PASSWORD_LENGTH) is None
    why = password_warning(b"secret")
    assert why is not None
    assert "6 characters" in why and "2,048" in why and "pyca/cryptography#9644" in why
    assert "offline" in why


# -- through the CLI: `mtlskit ca issue client ... --p12` ----------------------------------
@pytest.fixture
def made(tmp_path: Path, run_cli) -> Path:
    d = tmp_path / "ca"
    assert run_cli("ca", "init", "--dir", d, "--name", "Example Root CA").code == 0
    return d


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_password_generates_one_beside_the_file(made: Path, out_dir: Path, run_cli) -> None:
    r = run_cli("ca", "issue", "client", "bob", "--dir", made, "--out", out_dir, "--p12")
    assert r.code == 0, r.err
    pass_file = out_dir / "bob.p12.pass"
    assert _mode(pass_file) == 0o600 and _mode(out_dir / "bob.p12") == 0o600
    password = pass_file.read_text().rstrip("\n")
    assert len(password) == 32
    # the password is said to be in the file, and never printed
    assert "bob.p12.pass" in r.out and password not in r.out + r.err
    assert "warning:" not in r.err
    info = _info(out_dir / "bob.p12", password, "modern")
    for line in EXPECTED["modern"]:
        assert line in info
    # two issuances, two different passwords
    again = run_cli(
        "ca", "issue", "client", "bob", "--dir", made, "--out", out_dir, "--p12", "--force"
    )
    assert again.code == 0, again.err
    assert pass_file.read_text().rstrip("\n") != password


def test_legacy_profile_with_a_given_password(
    made: Path, out_dir: Path, tmp_path: Path, run_cli
) -> None:
    pw = tmp_path / "p12.pass"
    pw.write_text(LONG + "\n")
    r = run_cli(
        "ca",
        "issue",
        "client",
        "carol",
        "--dir",
        made,
        "--out",
        out_dir,
        "--p12-profile",
        "legacy",
        "--p12-password-file",
        pw,
    )
    assert r.code == 0, r.err
    assert "warning:" not in r.err
    assert not (out_dir / "carol.p12.pass").exists()  # the caller has the password
    info = _info(out_dir / "carol.p12", LONG, "legacy")
    for line in EXPECTED["legacy"]:
        assert line in info, info
    # mtlskit's own reader takes the legacy file too
    shown = run_cli("cert", "inspect", out_dir / "carol.p12", "--password-file", pw)
    assert shown.code == 0, shown.err
    assert "CN=carol" in shown.out


def test_a_short_password_is_warned_about(
    made: Path, out_dir: Path, tmp_path: Path, run_cli
) -> None:
    pw = tmp_path / "p12.pass"
    pw.write_text("hunter2\n")
    r = run_cli(
        "ca",
        "issue",
        "client",
        "dave",
        "--dir",
        made,
        "--out",
        out_dir,
        "--p12",
        "--p12-password-file",
        pw,
    )
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert "7 characters" in warnings[0] and "2,048 iterations" in warnings[0]
    assert "pyca/cryptography#9644" in warnings[0]
    assert (out_dir / "dave.p12").exists()  # a warning, not a refusal


def test_an_unknown_profile_flag_is_a_usage_error(made: Path, out_dir: Path, run_cli) -> None:
    r = run_cli(
        "ca", "issue", "client", "eve", "--dir", made, "--out", out_dir, "--p12-profile", "rc2"
    )
    assert r.code == 2
    assert r.err.startswith("error: ") and "legacy" in r.err and "Traceback" not in r.err
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_curl_presents_each_profile_to_openssl_s_server(
    made: Path, out_dir: Path, tmp_path: Path, run_cli, profile: str
) -> None:
    pw = tmp_path / "p12.pass"
    pw.write_text(LONG)
    for argv in (
        ["server", "localhost", "--san", "localhost"],
        ["client", "frank", "--p12-profile", profile, "--p12-password-file", str(pw)],
    ):
        r = run_cli("ca", "issue", *argv, "--dir", made, "--out", out_dir)
        assert r.code == 0, r.err
    with openssl_server(
        cert=out_dir / "localhost.crt",
        key=out_dir / "localhost.key",
        chain=made / "intermediate.crt",
        ca=made / "root.crt",
    ) as port:
        got = curl(
            "--cacert",
            made / "root.crt",
            "--cert",
            f"{out_dir / 'frank.p12'}:{LONG}",
            "--cert-type",
            "P12",
            f"https://localhost:{port}/",
        )
    assert got.returncode == 0, got.stderr
    assert "CN = frank" in got.stdout.replace("CN=", "CN = ")
