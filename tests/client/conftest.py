"""Fixtures for the client tests: one PKI per module, and the CLI with `request`/`probe`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mtlskit.pki import CertificateAuthority


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our CA (started 30 days ago), another CA, and every certificate the cases need."""
    base = Path(tmp_path_factory.mktemp("clientpki"))
    out = base / "certs"
    out.mkdir()
    start = datetime.now(UTC) - timedelta(days=30)
    local = ["localhost", "127.0.0.1"]
    with CertificateAuthority.create(base / "ca", name="Client Test Root CA", now=start) as ca:
        ca.issue_server("localhost", local).write(out, "server")
        ca.issue_server("other.example.org", ["other.example.org"]).write(out, "othername")
        ca.issue_server(
            "localhost", local, now=start + timedelta(days=1), validity=timedelta(days=2)
        ).write(out, "oldserver")
        ca.issue_client("alice", ["alice.example.org"]).write(out, "alice")
        ca.issue_client(
            "old", ["old.example.org"], now=start + timedelta(days=1), validity=timedelta(days=2)
        ).write(out, "expired")
        ca.issue_server("imposter", ["imposter.example.org"]).write(out, "serveronly")
        alice = ca.issue_client("alice-p12", ["alice.example.org"])
        (out / "alice.p12").write_bytes(alice.pkcs12(b"secret"))
    (out / "p12pass").write_text("secret\n")
    with CertificateAuthority.create(base / "other", name="Other Root CA") as other:
        other.issue_client("intruder", ["intruder.example.org"]).write(out, "intruder")
    files = {p.name: p for p in out.iterdir()}
    files["root.crt"] = base / "ca" / "root.crt"
    files["intermediate.crt"] = base / "ca" / "intermediate.crt"
    files["ca_dir"] = base / "ca"
    files["other_root.crt"] = base / "other" / "root.crt"
    return files


@pytest.fixture
def mtlskit(run_cli: Any) -> Callable[..., Any]:
    """Run `mtlskit ARGS...` in-process (the shared runner, named for these tests)."""
    return run_cli


@pytest.fixture
def probe_json(mtlskit: Callable[..., Any]) -> Callable[..., tuple[int, dict[str, Any]]]:
    """`mtlskit probe ... --json` -> (exit code, parsed JSON)."""

    def run(*argv: str | Path) -> tuple[int, dict[str, Any]]:
        result = mtlskit("probe", *argv, "--json")
        assert "Traceback" not in result.err
        return result.code, json.loads(result.out)

    return run
