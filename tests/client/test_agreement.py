"""probe, request, cert verify and the preflight name the same code and certificate (issue 13).

The cases are the table of tests/unit/test_trust_openssl.py (chains made with openssl):
each client chain is presented by `mtlskit probe` and `mtlskit request` to `openssl
s_server -Verify` trusting its root, and `mtlskit cert verify` checks the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mtlskit.trust import ReasonCode
from tests.client.servers import s_server
from tests.opensslpki import OpenSSLPKI, server_ext
from tests.unit.test_trust_openssl import CASES, Case

CLIENT_CASES = [c for c in CASES if c.purpose == "client" and c.preflight_sees]


def _verdicts(run: Callable[..., Any], *argv: str | Path) -> dict[str, Any]:
    """`mtlskit ARGV --json`: the code and the certificate named, or the one-line error."""
    result = run(*argv, "--json")
    assert "Traceback" not in result.err
    if result.code == 2:  # stopped before connecting: OpenSSL will not send this certificate
        return {"stopped": result.err}
    return dict(json.loads(result.out))


@pytest.mark.parametrize("c", CLIENT_CASES, ids=lambda c: c.id)
def test_every_command_names_the_same_certificate(
    c: Case, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    pki = OpenSSLPKI(tmp_path / "pki")
    chain = c.build(pki)
    server = pki.issue("localhost", chain.root, ext=server_ext("localhost", "127.0.0.1"))
    sent = pki.bundle("client-chain", chain.leaf, *chain.sent)
    client = ["--ca", str(chain.root.cert), "--cert", str(sent), "--key", str(chain.leaf.key)]

    verified = json.loads(
        run_cli(
            "cert",
            "verify",
            str(sent),
            "--ca",
            str(chain.root.cert),
            "--purpose",
            "client",
            "--json",
        ).out
    )
    assert verified["code"] == c.code.value
    with s_server(cert=server.cert, key=server.key, ca=chain.root.cert) as port:
        probed = _verdicts(run_cli, "probe", f"localhost:{port}", *client)
        asked = _verdicts(run_cli, "request", f"https://localhost:{port}/", *client)

    named = f"CN={c.at_fault}"
    if c.code is ReasonCode.OK:
        assert verified["valid"] and probed["code"] == "ok" and asked["code"] == "ok"
        return
    assert verified["subject"] == named
    if "stopped" in probed:
        for text in (probed["stopped"], asked["stopped"]):
            assert c.code.value in text and named in text, text
        return
    assert probed["preflight"]["code"] == c.code.value
    assert probed["preflight"]["at_fault"] == named
    # s_server takes what openssl verify takes (a CA:TRUE leaf): the preflight still warns.
    # A key on a curve TLS cannot sign with is never sent at all (client_cert_required).
    if not c.openssl_rejects and c.code is not ReasonCode.KEY_UNSUPPORTED:
        assert probed["code"] == "ok" and asked["code"] == "ok"
        return
    for report in (probed, asked):
        assert report["code"].startswith("client_cert"), report["explanation"]
        assert named in report["explanation"], report["explanation"]
        assert report["fix"] == verified["fix"]
