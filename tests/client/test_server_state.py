"""A server refusing a sound client certificate: probe and request name the server's state."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.client.servers import s_server
from tests.opensslpki import CA_EXT, CLIENT_EXT, Made, OpenSSLPKI, server_ext


def _crl(pki: OpenSSLPKI, ca: Made, *, last: str, next_: str) -> Path:
    """A CRL of `ca` (no entries) with the given lastUpdate/nextUpdate, by `openssl ca`."""
    db = pki.dir / f"{ca.name}-db"
    db.mkdir(exist_ok=True)
    (db / "index.txt").write_text("")
    conf = db / "ca.cnf"
    conf.write_text(
        "[ca]\ndefault_ca = d\n[d]\n"
        f"database = {db / 'index.txt'}\ncrlnumber = {db / 'crlnumber'}\n"
        "default_md = sha256\n"
    )
    (db / "crlnumber").write_text("01\n")
    out = pki.dir / f"{ca.name}.crl"
    subprocess.run(
        [
            "openssl",
            "ca",
            "-config",
            conf,
            "-gencrl",
            "-cert",
            ca.cert,
            "-keyfile",
            ca.key,
            "-crl_lastupdate",
            last,
            "-crl_nextupdate",
            next_,
            "-out",
            out,
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A root, an intermediate, a server and a client, all made with openssl."""
    pki = OpenSSLPKI(Path(tmp_path_factory.mktemp("osslstate")))
    root = pki.root("State Root")
    inter = pki.issue("State Issuing CA", root, ext=CA_EXT + "authorityKeyIdentifier=keyid\n")
    server = pki.issue("localhost", inter, ext=server_ext("localhost", "127.0.0.1"))
    client = pki.issue("carol", inter, ext=CLIENT_EXT)
    other = pki.root("Unrelated Root")
    return {
        "pki": pki,
        "root": root,
        "inter": inter,
        "server": server,
        "client": client,
        "chain": pki.bundle("carol-chain", client, inter),
        "server_chain": pki.bundle("server-chain", inter),
        "ca_file": pki.bundle("ca-file", root, inter),
        "other": other,
        "expired_crl": _crl(pki, inter, last="20250101000000Z", next_="20250102000000Z"),
    }


def _server(w: dict[str, Any], *extra: str | Path) -> Any:
    return s_server(
        cert=w["server"].cert,
        key=w["server"].key,
        chain=w["server_chain"],
        ca=w["ca_file"],
        extra=[str(e) for e in extra],
    )


def _ask(mtlskit: Callable[..., Any], command: str, port: int, w: dict[str, Any]) -> Any:
    """`mtlskit probe|request` with carol's chain, as JSON."""
    target = f"localhost:{port}" if command == "probe" else f"https://localhost:{port}/"
    client = ["--cert", w["chain"], "--key", w["client"].key]
    result = mtlskit(command, target, "--ca", w["root"].cert, *client, "--json")
    assert "Traceback" not in result.err
    return json.loads(result.out)


CASES = [
    pytest.param(
        ("-CRL", "expired_crl", "-crl_check"),
        "client_cert_expired",
        ("nextUpdate", "clock"),
        ("fresh CRL", "client certificate is fine"),
        id="expired-crl",
    ),
    pytest.param(
        ("-crl_check",),
        "client_cert_unknown_ca",
        ("holds none", "root"),
        ("current CRL", "client certificate is fine"),
        id="no-crl-while-checking",
    ),
    pytest.param(
        ("-verifyCAfile", "other_root"),
        "client_cert_unknown_ca",
        ("cannot build the path",),
        ("client CA file", "client certificate is fine"),
        id="names-the-ca-but-trusts-another-root",
    ),
]


@pytest.mark.parametrize(("flags", "code", "causes", "fixes"), CASES)
def test_probe_says_the_client_certificate_is_fine_and_names_the_server_side_cause(
    mtlskit: Callable[..., Any],
    world: dict[str, Any],
    flags: tuple[str, ...],
    code: str,
    causes: tuple[str, ...],
    fixes: tuple[str, ...],
) -> None:
    files = {"expired_crl": world["expired_crl"], "other_root": world["other"].cert}
    extra = [files.get(f, f) for f in flags]
    with _server(world, *extra) as port:
        report = _ask(mtlskit, "probe", port, world)
        asked = _ask(mtlskit, "request", port, world)
    # request runs the same preflight: the same code, explanation and fix
    assert (asked["code"], asked["explanation"], asked["fix"]) == (
        report["code"],
        report["explanation"],
        report["fix"],
    )
    assert report["code"] == code
    assert "CN=carol" in report["explanation"]
    assert "likely on the server" in report["explanation"]
    for word in causes:
        assert word in report["explanation"]
    for word in fixes:
        assert word in report["fix"]
    assert "renew the client certificate" not in report["fix"]


def test_an_expired_client_certificate_is_still_blamed_on_the_client(
    mtlskit: Callable[..., Any], world: dict[str, Any]
) -> None:
    pki: OpenSSLPKI = world["pki"]
    old = pki.issue("dave", world["inter"], ext=CLIENT_EXT, days=-1)
    chain = pki.bundle("dave-chain", old, world["inter"])
    with _server(world) as port:
        result = mtlskit(
            "probe",
            f"localhost:{port}",
            "--ca",
            world["root"].cert,
            "--cert",
            chain,
            "--key",
            old.key,
            "--json",
        )
    report = json.loads(result.out)
    assert report["code"] == "client_cert_expired"
    assert "CN=dave" in report["explanation"]
    assert "on the server" not in report["explanation"]
    assert "CN=dave" in report["fix"] and "issue a new certificate" in report["fix"]
