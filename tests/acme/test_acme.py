"""ACME against Pebble: issuance, renewal, a failed challenge, unreachable/untrusted CAs."""

from __future__ import annotations

import ssl
import stat
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography import x509

from mtlskit.acme import (
    AcmeError,
    AcmeSettings,
    backoff,
    ensure_certificate,
    renew_due,
    renewal_time,
)
from mtlskit.pki.pem import key_matches_certificate, load_certificates, load_private_key

from .conftest import Pebble, free_port


@pytest.fixture
def acme_cli(run_cli: Any) -> Any:
    """Run `mtlskit ...` in-process (the shared runner: the acme group is registered)."""
    return run_cli


def _settings(pebble: Pebble, *domains: str, port: int | None = None) -> AcmeSettings:
    return AcmeSettings(
        directory=pebble.directory,
        domains=domains,
        email="ops@example.com",
        http01=("127.0.0.1", port or pebble.http_port),
        ca_bundle=pebble.ca_bundle,
    )


def _issue_argv(pebble: Pebble, out: Path, *domains: str, port: int | None = None) -> list[Any]:
    """`acme issue` as _settings: Pebble's directory and CA bundle, HTTP-01 on port."""
    argv: list[Any] = ["acme", "issue", "--directory", pebble.directory, "--out", out]
    for domain in domains:
        argv += ["--domain", domain]
    http01 = f"127.0.0.1:{port or pebble.http_port}"
    return [*argv, "--http-01", http01, "--ca-bundle", pebble.ca_bundle]


def _unreachable_argv() -> list[Any]:
    """`acme issue` for x.example.com from a directory URL nothing listens on."""
    argv: list[Any] = ["acme", "issue", "--directory", f"https://127.0.0.1:{free_port()}/dir"]
    return [*argv, "--domain", "x.example.com", "--http-01", "127.0.0.1:0"]


def _pebble_intermediate(pebble: Pebble) -> x509.Certificate:
    ctx = ssl.create_default_context(cafile=str(pebble.ca_bundle))
    with urllib.request.urlopen(f"{pebble.management}/intermediates/0", context=ctx) as r:  # noqa: S310
        return load_certificates(r.read())[0]


def _sans(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))


def test_issue_writes_key_leaf_and_chain(pebble: Pebble, acme_cli, tmp_path: Path) -> None:
    argv = _issue_argv(pebble, tmp_path, "orders.example.com", "www.orders.example.com")
    result = acme_cli(*argv, "--email", "ops@example.com")
    assert result.code == 0, result.err
    assert "wrote" in result.out and "server.chain.pem" in result.out
    leaf = load_certificates((tmp_path / "server.crt").read_bytes())[0]
    chain = load_certificates((tmp_path / "server.chain.pem").read_bytes())
    key = load_private_key((tmp_path / "server.key").read_bytes())
    assert _sans(leaf) == ["orders.example.com", "www.orders.example.com"]
    assert chain[0] == leaf and len(chain) >= 2
    assert key_matches_certificate(key, leaf)
    assert chain[1] == _pebble_intermediate(pebble)
    leaf.verify_directly_issued_by(chain[1])
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "acme-account.key").stat().st_mode & 0o777 == 0o600
    again = acme_cli(*_issue_argv(pebble, tmp_path, "orders.example.com"))
    assert again.code == 2 and "already exists" in again.err


def test_issue_creates_a_missing_out_directory_0700(
    pebble: Pebble, acme_cli, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "tls"  # parents too, as `mkdir -p`
    result = acme_cli(*_issue_argv(pebble, out, "mkdir.example.com"))
    assert result.code == 0, result.err
    assert f"note: created directory {out} (mode 0700: it holds private keys)" in result.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == ["acme-account.key", "server.chain.pem", "server.crt", "server.key"]


def test_issue_bad_out_or_flag_is_refused_before_the_ca_is_asked(acme_cli, tmp_path: Path) -> None:
    # Nothing listens on the directory URL: reaching it would fail with exit 1 instead.
    base = _unreachable_argv()
    file = tmp_path / "tls"
    file.write_text("not a directory")
    result = acme_cli(*base, "--out", file)
    assert result.code == 2
    assert f"error: --out {file} is not a directory" in result.err
    missing = tmp_path / "never"
    result = acme_cli(*base, "--out", missing, "--timeout", "soon")
    assert result.code == 2 and "--timeout" in result.err
    assert not missing.exists()  # a refused command leaves no directory behind


def test_ensure_obtains_keeps_and_renews(pebble: Pebble, tmp_path: Path) -> None:
    settings = _settings(pebble, "renew.example.com")
    now = datetime.now(UTC)
    first = ensure_certificate(settings, tmp_path, now=now)
    assert first.renewed and _sans(first.certificate) == ["renew.example.com"]
    account = (tmp_path / "acme-account.key").read_bytes()
    same = ensure_certificate(settings, tmp_path, now=now)
    assert not same.renewed and same.certificate == first.certificate and not same.paths
    due = renewal_time(first.certificate)
    assert ensure_certificate(settings, tmp_path, now=due - timedelta(seconds=1)).renewed is False
    renewed = ensure_certificate(settings, tmp_path, now=due)
    assert renewed.renewed
    assert renewed.certificate.serial_number != first.certificate.serial_number
    on_disk = load_certificates((tmp_path / "server.chain.pem").read_bytes())[0]
    assert on_disk == renewed.certificate
    key = load_private_key((tmp_path / "server.key").read_bytes())
    assert key_matches_certificate(key, renewed.certificate)
    assert (tmp_path / "acme-account.key").read_bytes() == account  # one account throughout
    # a certificate that lacks a configured name is replaced at once
    wider = ensure_certificate(
        _settings(pebble, "renew.example.com", "api.example.com"), tmp_path, now=now
    )
    assert wider.renewed and _sans(wider.certificate) == ["api.example.com", "renew.example.com"]


def test_failed_challenge_is_explained(pebble: Pebble, acme_cli, tmp_path: Path) -> None:
    # The responder listens where Pebble does not look: validation must fail.
    result = acme_cli(*_issue_argv(pebble, tmp_path, "fail.example.com", port=free_port()))
    assert result.code == 1
    assert "error: the ACME server could not validate over HTTP-01: fail.example.com:" in result.err
    assert "hint: each domain must resolve to this machine" in result.err
    assert not (tmp_path / "server.crt").exists()


def test_failed_renewal_keeps_the_old_files(pebble: Pebble, tmp_path: Path) -> None:
    good = ensure_certificate(
        _settings(pebble, "keep.example.com"), tmp_path, now=datetime.now(UTC)
    )
    before = (tmp_path / "server.chain.pem").read_bytes()
    broken = _settings(pebble, "keep.example.com", port=free_port())
    with pytest.raises(AcmeError, match="could not validate"):
        ensure_certificate(broken, tmp_path, now=renewal_time(good.certificate))
    assert (tmp_path / "server.chain.pem").read_bytes() == before


def test_unreachable_directory(acme_cli, tmp_path: Path) -> None:
    result = acme_cli(*_unreachable_argv(), "--out", tmp_path)
    assert result.code == 1
    assert "error: cannot reach the ACME directory https://127.0.0.1:" in result.err
    assert "hint: check --directory" in result.err


def test_untrusted_acme_server_names_ca_bundle(pebble: Pebble, tmp_path: Path) -> None:
    settings = AcmeSettings(pebble.directory, ("x.example.com",), http01=("127.0.0.1", 0))
    with pytest.raises(AcmeError) as info:
        ensure_certificate(settings, tmp_path, now=datetime.now(UTC))
    assert "cannot verify the TLS certificate" in info.value.message
    assert "--ca-bundle" in info.value.hint


def test_not_an_acme_directory(pebble: Pebble, tmp_path: Path) -> None:
    settings = AcmeSettings(
        f"{pebble.management}/roots/0",
        ("x.example.com",),
        http01=("127.0.0.1", 0),
        ca_bundle=pebble.ca_bundle,
    )
    with pytest.raises(AcmeError, match="did not answer as an ACME directory"):
        ensure_certificate(settings, tmp_path, now=datetime.now(UTC))


def _cert(start: datetime, days: int) -> x509.Certificate:
    """Just the validity a renewal decision reads."""
    fake = SimpleNamespace(
        not_valid_before_utc=start, not_valid_after_utc=start + timedelta(days=days)
    )
    return cast(x509.Certificate, fake)


def test_renewal_is_due_at_two_thirds() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cert = _cert(start, 90)
    assert renewal_time(cert) == start + timedelta(days=60)
    assert not renew_due(cert, start + timedelta(days=59, hours=23))
    assert renew_due(cert, start + timedelta(days=60))
    assert renew_due(cert, start + timedelta(days=45), fraction=0.5)


def test_backoff_doubles_and_caps() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert backoff(30) == timedelta(hours=1)
