"""What people are told about using NAME.p12 in a browser (no browser needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlskit.cli import main
from mtlskit.demo.browser import browser_lines


def test_ca_issue_client_p12_says_where_the_password_is_and_how_to_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, out = str(tmp_path / "ca"), str(tmp_path / "out")
    assert main(["ca", "init", "--dir", ca]) == 0
    capsys.readouterr()
    assert main(["ca", "issue", "client", "alice", "--dir", ca, "--p12", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "browser  import alice.p12 (password in alice.p12.pass)" in text
    assert "Your certificates" in text and "docs/browser.md" in text
    assert (tmp_path / "out" / "alice.p12.pass").stat().st_mode & 0o777 == 0o600


def test_ca_issue_client_p12_with_a_given_password_does_not_point_at_a_pass_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, out = str(tmp_path / "ca"), str(tmp_path / "out")
    secret = tmp_path / "secret"
    secret.write_text("a long enough password for the test\n")
    assert main(["ca", "init", "--dir", ca]) == 0
    argv = ["--p12", "--p12-password-file", str(secret), "--out", out]
    assert main(["ca", "issue", "client", "bob", "--dir", ca, *argv]) == 0
    text = capsys.readouterr().out
    assert "browser  import bob.p12 (your password)" in text
    assert not (tmp_path / "out" / "bob.p12.pass").exists()


def test_browser_lines_name_the_files_the_certificate_and_the_url() -> None:
    lines = browser_lines(
        Path("certs/demo-client.p12"),
        Path("certs/demo-client.p12.pass"),
        Path("ca/root.crt"),
        "https://localhost:8443/hello",
    )
    text = "\n".join(lines)
    assert "your certificate: certs/demo-client.p12" in text
    assert "its password is in certs/demo-client.p12.pass" in text
    assert "trust the demo root for websites: ca/root.crt" in text
    assert "open https://localhost:8443/hello" in text
    assert "pick the certificate 'demo-client'" in text
    assert "chrome://certificate-manager" in text and "Your Certificates, Import" in text
    assert all(len(line) <= 100 for line in lines)
