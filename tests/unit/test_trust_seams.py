"""trust/ wraps cryptography's unstable API once and documents every code.

That trust/ is pure is checked with the rest of the core in test_architecture.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlskit.trust import REASONS, STEPS, ReasonCode

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("code", [c for c in ReasonCode if REASONS[c].ca_fix])
def test_a_ca_fix_formats_and_names_the_ca(code: ReasonCode) -> None:
    fields = {"subject": "CN=Sub", "role": "intermediate CA", "detail": "d", "purpose": "client"}
    assert "CN=Sub" in REASONS[code].ca_fix.format(**fields)
    assert "below it" in REASONS[code].ca_fix.format(**fields)
