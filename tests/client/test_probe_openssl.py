"""`probe` and `request` against servers and client certificates made with openssl (issue 13).

A server whose chain OpenSSL's default security level refuses is not `ok`; a client
certificate the stdlib client will not load is explained with the trust reason code, the
certificate and the fix, never as "the key does not match".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.client.servers import s_server
from tests.opensslpki import CA_EXT, CLIENT_EXT, OpenSSLPKI, server_ext

SUB_CA = CA_EXT + "authorityKeyIdentifier=keyid\n"
# s_server itself refuses to load a weak certificate at the default level: lower it on the
# server only (the probe's client keeps its own).
WEAK_SERVER = ["-cipher", "DEFAULT:@SECLEVEL=0", "-tls1_2"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One P-256 root and intermediate; weak and sound leaves below them."""
    made = OpenSSLPKI(Path(tmp_path_factory.mktemp("opensslpki")))
    root = made.root("Probe Root")
    sub = made.issue("Probe Sub", root, ext=SUB_CA)
    srv = server_ext("localhost", "127.0.0.1")
    leaves = {
        "rsa1024-server": made.issue("weak-srv", sub, ext=srv, key="rsa:1024"),
        "sha1-server": made.issue("sha1-srv", sub, ext=srv, md="sha1"),
        "server": made.issue("good-srv", sub, ext=srv),
        "sha1-client": made.issue("sha1-alice", sub, ext=CLIENT_EXT, md="sha1"),
        "rsa1024-client": made.issue("weak-alice", sub, ext=CLIENT_EXT, key="rsa:1024"),
        "client": made.issue("alice", sub, ext=CLIENT_EXT),
    }
    chains = {k: made.bundle(f"{k}-chain", v, sub) for k, v in leaves.items()}
    return {"root": root, "sub": sub, "leaves": leaves, "chains": chains}


def _probe(
    mtlskit: Any, port: int, pki: dict[str, Any], *extra: str | Path, exit_code: int = 1
) -> dict[str, Any]:
    result = mtlskit(
        "probe",
        f"127.0.0.1:{port}",
        "--ca",
        pki["root"].cert,
        "--servername",
        "localhost",
        *extra,
        "--json",
    )
    assert "Traceback" not in result.err
    data: dict[str, Any] = json.loads(result.out)
    assert result.code == exit_code, result.out
    return data


@pytest.mark.parametrize(
    ("name", "subject", "fix"),
    [
        ("rsa1024-server", "CN=weak-srv", "ec-p256"),
        ("sha1-server", "CN=sha1-srv", "SHA-256"),
    ],
)
def test_a_weak_server_chain_is_server_cert_weak_at_step_5(
    pki: dict[str, Any], mtlskit: Any, name: str, subject: str, fix: str
) -> None:
    leaf = pki["leaves"][name]
    with s_server(
        cert=leaf.cert, key=leaf.key, chain=pki["sub"].cert, verify=None, extra=WEAK_SERVER
    ) as port:
        data = _probe(mtlskit, port, pki)
    assert data["code"] == "server_cert_weak", data["explanation"]
    assert data["failed_step"] == 5
    assert {s["number"]: s["status"] for s in data["steps"]}[5] == "failed"
    assert subject in data["explanation"]
    assert data["server"]["verified"] is False
    assert data["server"]["reason"] in {"key_too_weak", "signature_too_weak"}
    assert subject in data["server"]["explanation"] and fix in data["server"]["fix"]
    assert data["fix"] == data["server"]["fix"]  # the outcome's fix names the certificate too


def test_a_sound_openssl_server_is_still_ok(pki: dict[str, Any], mtlskit: Any) -> None:
    leaf = pki["leaves"]["server"]
    with s_server(cert=leaf.cert, key=leaf.key, chain=pki["sub"].cert, verify=None) as port:
        data = _probe(mtlskit, port, pki, exit_code=0)
    assert data["code"] == "ok"


@pytest.mark.parametrize(
    ("name", "code", "subject", "fix"),
    [
        ("sha1-client", "signature_too_weak", "CN=sha1-alice", "signed with SHA-256"),
        ("rsa1024-client", "key_too_weak", "CN=weak-alice", "ec-p256"),
    ],
)
@pytest.mark.parametrize("command", ["request", "probe"])
def test_a_client_certificate_openssl_will_not_send_is_named_not_a_key_mismatch(
    pki: dict[str, Any], mtlskit: Any, name: str, code: str, subject: str, fix: str, command: str
) -> None:
    leaf = pki["leaves"][name]
    server = pki["leaves"]["server"]
    with s_server(
        cert=server.cert, key=server.key, chain=pki["sub"].cert, ca=pki["root"].cert
    ) as port:
        target = f"https://127.0.0.1:{port}/" if command == "request" else f"127.0.0.1:{port}"
        result = mtlskit(
            command,
            target,
            "--ca",
            pki["root"].cert,
            "--servername",
            "localhost",
            "--cert",
            pki["chains"][name],
            "--key",
            leaf.key,
        )
    assert result.code != 0 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], result.err
    assert code in lines[0] and subject in lines[0]
    assert "does not match" not in result.err
    assert fix in lines[1]


def test_a_real_key_mismatch_is_still_called_one(pki: dict[str, Any], mtlskit: Any) -> None:
    other_key = pki["leaves"]["client"].key
    result = mtlskit(
        "request",
        "https://127.0.0.1:1/",
        "--ca",
        pki["root"].cert,
        "--cert",
        pki["chains"]["sha1-client"],
        "--key",
        other_key,
    )
    assert result.code != 0
    assert "does not match" in result.err and "public keys differ" in result.err


def test_the_preflight_of_a_sound_client_is_ok_against_a_real_server(
    pki: dict[str, Any], mtlskit: Any
) -> None:
    server, alice = pki["leaves"]["server"], pki["leaves"]["client"]
    with s_server(
        cert=server.cert, key=server.key, chain=pki["sub"].cert, ca=pki["root"].cert
    ) as port:
        result = mtlskit(
            "probe",
            f"127.0.0.1:{port}",
            "--ca",
            pki["root"].cert,
            "--servername",
            "localhost",
            "--cert",
            pki["chains"]["client"],
            "--key",
            alice.key,
            "--json",
        )
    data = json.loads(result.out)
    assert data["code"] == "ok", data["explanation"]
    assert data["preflight"]["code"] == "ok" and data["preflight"]["problems"] == []
