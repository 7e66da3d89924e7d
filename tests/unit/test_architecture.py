"""The pure core stays pure: no sockets, files, databases, clocks or processes in it.

The one architecture test. Three checks keep the core pure:

- statically, a pure module's own import statements (even inside functions, which run
  later) name no I/O module of the stdlib and no shell module of the project;
- at run time, importing a pure module in a fresh interpreter loads no shell module,
  however indirectly (through a package `__init__`, a shared helper, a dependency);
- its text reads no clock and opens no file (`now` and bytes are passed in).

A new pure module goes into PURE; a new shell module needs no entry (see _is_shell).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import types
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mtlskit"
PURE = [
    "durations.py",
    # The exception tree: every layer raises from it, so it must stay importable for free.
    "errors.py",
    # Config keys described once (kind, flag, parser) and the kinds of value: policy and
    # config build their fields from them.
    "_config_keys.py",
    "_config_kinds.py",
    "_config_limits.py",
    "_config_acme.py",
    "_config_tls.py",
    "sites.py",
    # How the package __init__s load their shell names on first use.
    "_lazy.py",
    "pki/names.py",
    "pki/keys.py",
    "pki/profiles.py",
    "pki/builder.py",
    "pki/csr.py",
    "pki/crl.py",
    "pki/pem.py",
    "pki/pkcs12.py",
    "pki/describe.py",
    "pki/leaves.py",
    "pki/serials.py",
    "pki/records.py",
    "caserver/__init__.py",
    "caserver/protocol.py",
    "trust/__init__.py",
    "trust/_ext.py",
    "trust/_verifier.py",
    "trust/checks.py",
    "trust/chain.py",
    "trust/diagnose.py",
    "trust/reasons.py",
    "trust/revocation.py",
    "identity/__init__.py",
    "identity/_peer.py",
    "identity/_wire.py",
    "identity/_headers.py",
    "policy.py",
    "routes.py",
    "gateway/handshake.py",
    "gateway/head.py",
    "gateway/h2head.py",
    "gateway/admission.py",
    "gateway/access.py",
    "gateway/replies.py",
    "gateway/h2guard.py",
    "gateway/grpc.py",
    "gateway/h2frames.py",
    "gateway/refusal_page.py",
    "gateway/routing.py",
    "gateway/sitebuild.py",
    "gateway/answers.py",
    "gateway/routed.py",
    "gateway/h1answer.py",
    "gateway/status_page.py",
    "client/trace.py",
    "client/observed.py",
    "client/render.py",
    "acme/renewal.py",
    "client/codes.py",
    "client/tlswire.py",
    "client/preflight.py",
    "export/__init__.py",
    "export/kyma.py",
    "export/check.py",
    "export/render.py",
    "export/_certs.py",
    "export/istio.py",
    "export/_manifest.py",
    "export/_objects.py",
    "export/_finding.py",
    "export/_check_gateways.py",
    "export/_check_policies.py",
    "export/_check_optional.py",
    "export/_principals.py",
    "export/_routes.py",
    "export/_secrets.py",
    "export/_servers.py",
]


def _dotted(module: str) -> str:
    """'pki/names.py' -> 'mtlskit.pki.names'; 'trust/__init__.py' -> 'mtlskit.trust'."""
    return ".".join(["mtlskit", *Path(module).with_suffix("").parts]).removesuffix(".__init__")


PURE_MODULES = {_dotted(m) for m in PURE}
# Project modules a pure module may load besides PURE ones:
# - the package __init__s above a pure module, which Python runs first. They hold shell
#   names too (Gateway, CertificateAuthority, probe), so they re-export lazily; whatever one
#   loads eagerly is itself checked here, so a shell import in it still fails the test.
# - mtlskit.config, the frozen settings tree the exporter renders. It also reads the TOML
#   file (so it is not in PURE); its one edge into the shell is listed in EXEMPT below.
SHARED = {
    "mtlskit",
    "mtlskit.pki",
    "mtlskit.gateway",
    "mtlskit.client",
    "mtlskit.acme",
    "mtlskit.config",
}

# Outside the project: what is I/O for this test. A name covers its submodules.
SHELL_STDLIB = {
    "sqlite3": "the CA database (pki.store)",
    "socket": "network I/O (the gateway, the probe)",
    "select": "readiness polling: the event loop's job",
    "selectors": "readiness polling: the event loop's job",
    "ssl": "TLS on sockets and SSLContexts (tlsconfig, client.connect); the core reads TLS "
    "facts from bytes (client.tlswire) and certificates with cryptography",
    "asyncio": "the gateway's event loop",
    "subprocess": "running programs",
    "multiprocessing": "the gateway's --workers",
    "signal": "process lifecycle (gateway.run)",
    "tempfile": "creating files (pki.issued, the CA)",
    "shutil": "copying and removing files",
    "http.client": "an HTTP client, i.e. a socket",
    "urllib.request": "an HTTP client, i.e. a socket",
}
SHELL_THIRD_PARTY = {
    "OpenSSL": "pyOpenSSL: the gateway's TLS over the socket",
    "uvloop": "the gateway's event loop",
    "httptools": "the gateway's and `mtlskit request`'s HTTP parser, fed from sockets",
    "prometheus_client": "metrics exposition (an HTTP server, multiprocess files)",
    "acme": "the ACME client (network)",
    "josepy": "the ACME client's JOSE types",
    "requests": "the ACME client's HTTP transport",
    "urllib3": "the ACME client's HTTP transport",
}
SHELL = SHELL_STDLIB | SHELL_THIRD_PARTY
# Import edges (importer, imported) that load a shell module without doing I/O.
EXEMPT = {
    # cryptography.x509.general_name imports email.utils for parseaddr (RFC 822 names);
    # email.utils imports socket only for make_msgid()'s getfqdn(), which nothing calls.
    # Every certificate-reading module goes through it, so it cannot be avoided.
    ("email.utils", "socket"),
}


def _is_shell(name: str) -> str | None:
    """The shell module `name` counts as (collapsed to its listed top), or None if allowed.

    Project modules fail closed: anything in mtlskit that is not pure or shared is shell,
    so a new gateway, CLI or store module needs no entry in this file.
    """
    if name == "mtlskit" or name.startswith("mtlskit."):
        return None if name in PURE_MODULES | SHARED else name
    for top in SHELL:
        if name == top or name.startswith(top + "."):
            return top
    return None


# ---------------------------------------------------------------------------------------
# Static: a pure module's own imports, wherever they stand in the file.

# Direct imports only: os and time are loaded by every interpreter (pathlib, datetime), so
# only a static check can tell that a pure module uses them itself.
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


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_project_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return name.startswith("mtlskit.") and (
        (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()
    )


def _direct_imports(path: Path) -> set[str]:
    """Every module the file's import statements name, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    # Annotations only: those imports never run.
    skip = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from mtlskit.pki import store` imports the module mtlskit.pki.store.
            subs = (f"{node.module}.{alias.name}" for alias in node.names)
            names.update(sub for sub in subs if _is_project_module(sub))
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_themselves(module: str) -> None:
    # A function-local import runs only when called, so only this check sees it.
    names = _direct_imports(SRC / module)
    assert sorted(n for n in names if n.split(".")[0] in FORBIDDEN or _is_shell(n)) == []


# ---------------------------------------------------------------------------------------
# At run time: everything importing a pure module loads, in an interpreter of its own.

# Runs in the child. Wrapping builtins.__import__ sees every import statement, including
# ones whose module another import already loaded (a cached `import socket` still counts),
# and who made it, so the failure can print the chain and EXEMPT can name an edge.
_PROBE = r"""
import builtins, importlib, importlib.util, json, sys

before = sorted(sys.modules)
edges = set()
real_import = builtins.__import__


def watch(name, globals=None, locals=None, fromlist=(), level=0):
    module = real_import(name, globals, locals, fromlist, level)
    scope = globals or {}
    importer = scope.get("__name__", "?")
    target = name
    if level:
        target = importlib.util.resolve_name("." * level + name, scope.get("__package__") or "")
    parts = target.split(".")
    edges.update((importer, ".".join(parts[:i])) for i in range(1, len(parts) + 1))
    subs = (f"{target}.{attr}" for attr in fromlist or ())
    edges.update((importer, sub) for sub in subs if sub in sys.modules)
    return module


builtins.__import__ = watch
importlib.import_module(sys.argv[1])
builtins.__import__ = real_import
print(json.dumps({"before": before, "after": sorted(sys.modules), "edges": sorted(edges)}))
"""


def _run_probe(module: str) -> subprocess.CompletedProcess[str]:
    # Same interpreter and environment, so mtlskit is found where this process found it
    # (installed or PYTHONPATH=src). What the environment preloads cannot hide anything:
    # the probe records import statements, not only first loads.
    return subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _report(module: str, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, f"importing {module} failed:\n{proc.stderr}"
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.fixture(scope="module")
def probes() -> dict[str, subprocess.CompletedProcess[str]]:
    """For each pure module, what importing it alone loaded (one interpreter each, in parallel).

    One interpreter per module, so a module imported earlier cannot hide what a later one
    loads; in parallel, so the whole check takes a few seconds.
    """
    modules = sorted(PURE_MODULES)
    with ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 1))) as pool:
        return dict(zip(modules, pool.map(_run_probe, modules), strict=True))


def _chains(edges: list[list[str]], starts: list[str]) -> dict[str, list[str]]:
    """Every module reachable from `starts` over `edges`, with a shortest chain to it."""
    graph: dict[str, list[str]] = {}
    for importer, target in edges:
        graph.setdefault(importer, []).append(target)
    chains = {name: [name] for name in starts}
    queue = deque(starts)
    while queue:
        name = queue.popleft()
        for target in graph.get(name, ()):
            if target not in chains:
                chains[target] = [*chains[name], target]
                queue.append(target)
    return chains


def _shell_loaded(module: str, report: dict[str, Any]) -> dict[str, list[str]]:
    """Each shell module the import loaded, with one shortest chain of imports to it."""
    parts = module.split(".")
    # importlib runs the parent packages first, so the walk starts from each of them too.
    starts = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    edges = [edge for edge in report["edges"] if tuple(edge) not in EXEMPT]
    found: dict[str, list[str]] = {}
    # Breadth first (dicts keep that order): the first chain met for a shell module is a
    # shortest one.
    for name, chain in _chains(edges, starts).items():
        shell = _is_shell(name)
        if shell and shell not in found:
            found[shell] = chain
    # Loaded, but by no import statement this import made (importlib.import_module, C
    # code): there is no chain to show, and it is loaded all the same.
    reached = _chains(report["edges"], starts)
    for name in sorted(set(report["after"]) - set(report["before"]) - set(reached)):
        shell = _is_shell(name)
        if shell and shell not in found:
            found[shell] = [module, "...", name]
    return found


@pytest.mark.parametrize("module", sorted(PURE_MODULES))
def test_pure_modules_load_no_shell_module(
    module: str, probes: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    found = _shell_loaded(module, _report(module, probes[module]))
    lines = [f"  {shell}: {' > '.join(chain)}" for shell, chain in sorted(found.items())]
    if found:
        pytest.fail(f"importing {module} loads shell modules:\n" + "\n".join(lines))


def test_the_probe_sees_a_shell_import() -> None:
    # The check above passes vacuously if the probe stops recording: a shell module must show.
    store = "mtlskit.pki.store"
    found = _shell_loaded(store, _report(store, _run_probe(store)))
    assert found["sqlite3"][-2:] == ["mtlskit.pki.store", "sqlite3"]


@pytest.mark.parametrize("package", ["mtlskit.pki", "mtlskit.client", "mtlskit.gateway"])
def test_lazy_re_exports_are_what_they_were(package: str) -> None:
    # The lazy packages keep their public names. The submodules are loaded first: loading
    # mtlskit.client.probe binds the module on the package, where the function must win.
    pkg = importlib.import_module(package)
    lazy: dict[str, str] = pkg._LAZY
    for module in lazy.values():
        importlib.import_module(module)
    for name in pkg.__all__:
        value = getattr(pkg, name)
        assert not isinstance(value, types.ModuleType), name
        if name in lazy:
            assert value is getattr(importlib.import_module(lazy[name]), name)
    assert set(pkg.__all__) <= set(dir(pkg))


# ---------------------------------------------------------------------------------------
# Text: no clock, no file.

CLOCK_AND_FILES = (
    "datetime.now(",
    "utcnow(",
    "time.time(",
    "monotonic(",
    "open(",
    "read_bytes(",
    "read_text(",
    "write_bytes(",
    "write_text(",
)


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_never_read_the_clock(module: str) -> None:
    text = (SRC / module).read_text()
    assert [s for s in CLOCK_AND_FILES if s in text] == []


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


def test_every_error_is_declared_in_errors_py() -> None:
    """One exception tree: every MtlsKitError subclass lives in mtlskit/errors.py."""
    import importlib
    import pkgutil

    import mtlskit
    from mtlskit.errors import MtlsKitError

    for info in pkgutil.walk_packages(mtlskit.__path__, "mtlskit."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    seen: list[type] = []
    todo: list[type] = [MtlsKitError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    assert {c.__qualname__: c.__module__ for c in seen if c.__module__ != "mtlskit.errors"} == {}


def test_modules_stay_small() -> None:
    """A module over 400 lines is split along a seam (CONTRIBUTING.md)."""
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")
    }
    assert {name: lines for name, lines in sizes.items() if lines > 400} == {}
