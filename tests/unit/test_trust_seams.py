"""trust/ stays pure, wraps cryptography's unstable API once, and documents every code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mtlskit.trust import REASONS, STEPS, ReasonCode

ROOT = Path(__file__).resolve().parents[2]
TRUST = ROOT / "src" / "mtlskit" / "trust"
IO = {"socket", "ssl", "sqlite3", "subprocess", "os", "shutil", "tempfile", "asyncio", "time"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(TRUST.glob("*.py")), ids=lambda p: p.name)
def test_trust_modules_are_pure(path: Path) -> None:
    imports = _imports(path)
    assert not {name.split(".")[0] for name in imports} & IO
    text = path.read_text()
    assert "datetime.now(" not in text and "open(" not in text and "read_bytes" not in text
    if path.name != "_verifier.py":
        assert "cryptography.x509.verification" not in imports


def test_only_the_verifier_module_imports_the_unstable_api() -> None:
    users = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "src").rglob("*.py")
        if "cryptography.x509.verification" in p.read_text()
    ]
    assert users == ["src/mtlskit/trust/_verifier.py"]


def test_every_code_has_a_reason_and_a_row_in_the_docs() -> None:
    assert set(REASONS) == set(ReasonCode)
    docs = (ROOT / "docs" / "trust.md").read_text()
    for code in ReasonCode:
        assert f"| `{code.value}` |" in docs, code
    assert set(STEPS) == {"client", "server"}
    assert "step 7" in STEPS["client"] and "step 5" in STEPS["server"]


@pytest.mark.parametrize("code", list(ReasonCode))
def test_templates_format_with_the_documented_fields(code: ReasonCode) -> None:
    fields = {"subject": "CN=x", "role": "client's certificate", "detail": "d", "purpose": "client"}
    assert REASONS[code].explanation.format(**fields)
    assert REASONS[code].fix.format(**fields)
