"""The pure core stays pure: no sockets, files, databases, clocks or processes in it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mtlskit"
PURE = [
    "durations.py",
    "pki/names.py",
    "pki/keys.py",
    "pki/profiles.py",
    "pki/builder.py",
    "pki/csr.py",
    "pki/crl.py",
    "pki/pem.py",
    "pki/pkcs12.py",
    "pki/describe.py",
    "trust/__init__.py",
    "trust/_ext.py",
    "trust/_verifier.py",
    "trust/chain.py",
    "trust/diagnose.py",
    "trust/reasons.py",
    "trust/revocation.py",
    "identity/__init__.py",
    "identity/_peer.py",
    "identity/_wire.py",
    "identity/_headers.py",
    "policy.py",
    "gateway/handshake.py",
    "gateway/head.py",
    "gateway/admission.py",
    "gateway/access.py",
    "gateway/replies.py",
    "client/trace.py",
    "client/codes.py",
    "client/tlswire.py",
    "client/preflight.py",
    "export/kyma.py",
    "export/check.py",
    "export/render.py",
    "export/_certs.py",
]
ALLOWED: dict[str, set[str]] = {}
FORBIDDEN = {
    "socket",
    "ssl",
    "sqlite3",
    "subprocess",
    "os",
    "shutil",
    "tempfile",
    "asyncio",
    "time",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    assert not (_imports(SRC / module) & (FORBIDDEN - ALLOWED.get(module, set())))


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_read_the_clock(module: str) -> None:
    text = (SRC / module).read_text()
    assert "datetime.now(" not in text and "utcnow(" not in text


def test_every_module_says_what_it_owns() -> None:
    for path in SRC.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{path} has no module docstring"


# The gateway's TLS is pyOpenSSL's SSL module over the socket: never asyncio's Python record
# layer, never ctypes into a library, never pyOpenSSL's deprecated crypto module.
BANNED = ("asyncio.sslproto", "ctypes", "OpenSSL.crypto")


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_imports_the_python_record_layer_ctypes_or_openssl_crypto() -> None:
    found = {
        str(path.relative_to(SRC)): sorted(
            name
            for name in _all_imports(path)
            if any(name == b or name.startswith(b + ".") for b in BANNED)
        )
        for path in SRC.rglob("*.py")
    }
    assert {k: v for k, v in found.items() if v} == {}
