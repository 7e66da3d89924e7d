"""Pebble (Let's Encrypt's ACME test server) on 127.0.0.1, with pebble-challtestsrv as DNS."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtlskit.pki import CertificateAuthority

INSTALL_HINT = "pebble is not installed: apt-get install pebble (make test installs it)"


@dataclass
class Pebble:
    """A running Pebble: its directory URL, the CA bundle for its TLS, its HTTP-01 port."""

    directory: str
    ca_bundle: Path
    http_port: int
    management: str


def free_port() -> int:
    """A port nothing listens on now (bound and released; Pebble binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Bounded wait (15 s) for a process to accept connections; fail with its log."""
    name = log.stem
    for _ in range(150):
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"{name} did not listen on 127.0.0.1:{port}:\n{log.read_text()}")


def _argv(binary: str, flags: dict[str, str]) -> list[str]:
    """`binary -flag value ...`, in the order given."""
    return [binary, *(part for flag in flags.items() for part in flag)]


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """Pebble on free 127.0.0.1 ports; every name resolves to 127.0.0.1 via challtestsrv.

    Pebble's own TLS certificate comes from an mtlskit CA (the package ships none).
    """
    binary, challtestsrv = shutil.which("pebble"), shutil.which("pebble-challtestsrv")
    if binary is None or challtestsrv is None:
        if os.environ.get("CI"):  # CI installs it (scripts/bootstrap.sh): missing is a failure
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    work = tmp_path_factory.mktemp("pebble")
    ca = CertificateAuthority.create(work / "ca", name="Pebble TLS Test CA")
    ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(work, "pebble")
    (work / "ca-bundle.pem").write_bytes(ca.root_pem())
    ca.close()
    acme, mgmt, http, tls, dns, dns_mgmt = (free_port() for _ in range(6))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme}",
            "managementListenAddress": f"127.0.0.1:{mgmt}",
            "certificate": str(work / "pebble.chain.pem"),
            "privateKey": str(work / "pebble.key"),
            "httpPort": http,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (work / "pebble-config.json").write_text(json.dumps(config))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PEBBLE_VA_NOSLEEP": "1",  # validate at once instead of after a random sleep
        "PEBBLE_WFE_NONCEREJECT": "0",  # do not reject 5% of good nonces on purpose
        "PEBBLE_AUTHZREUSE": "0",  # every order proves its names again
    }
    # challtestsrv as DNS only (an empty address turns a challenge responder off), answering
    # 127.0.0.1 for every name and no IPv6 address.
    dns_flags = {
        "-dns01": f"127.0.0.1:{dns}",
        "-http01": "",
        "-https01": "",
        "-tlsalpn01": "",
        "-management": f"127.0.0.1:{dns_mgmt}",
        "-defaultIPv4": "127.0.0.1",
        "-defaultIPv6": "",
    }
    dns_proc = _start(_argv(challtestsrv, dns_flags), work / "challtestsrv.log", env)
    try:
        _wait_listening(dns_mgmt, dns_proc, work / "challtestsrv.log")
        proc = _start(
            [binary, "-config", str(work / "pebble-config.json"), "-dnsserver", f"127.0.0.1:{dns}"],
            work / "pebble.log",
            env,
        )
        try:
            _wait_listening(acme, proc, work / "pebble.log")
            yield Pebble(
                f"https://127.0.0.1:{acme}/dir",
                work / "ca-bundle.pem",
                http,
                f"https://127.0.0.1:{mgmt}",
            )
        finally:
            _stop(proc)
    finally:
        _stop(dns_proc)
