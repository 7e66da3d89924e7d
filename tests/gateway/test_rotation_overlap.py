"""Rotation without downtime: the real gateway admits old and new clients during the overlap
(client_ca = the transition bundle) and, after `ca rotate --retire` and a reload, refuses
the old ones naming the old intermediate, while the new ones pass (curl as the clients)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlskit.cli import main
from mtlskit.demo.echo import EchoServer
from mtlskit.pki import CertificateAuthority
from tests.gateway.harness import Running, config_for, running_gateway
from tests.integration.peers import curl


def _curl(d: Path, out: Path, name: str, gw: Running) -> tuple[int, str]:
    """GET / as NAME (leaf + its intermediate), trusting the root that signed the server."""
    r = curl(
        "--cacert",
        out / "server-root.pem",
        "--cert",
        out / f"{name}.chain.pem",
        "--key",
        out / f"{name}.key",
        "-w",
        "\n%{http_code}",
        gw.url + "/who",
    )
    if r.returncode != 0:
        return 0, r.stderr
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def _issue(d: Path, out: Path, name: str) -> None:
    with CertificateAuthority.load(d) as ca:
        ca.issue_client(name, [f"{name}.example.org"], unit="demo").write(out, name)


@pytest.mark.parametrize("root", [False, True], ids=["intermediate", "root"])
def test_overlap_admits_both_and_retire_refuses_the_old(
    tmp_path: Path, echo: EchoServer, root: bool
) -> None:
    d, out = tmp_path / "ca", tmp_path / "out"
    out.mkdir()
    with CertificateAuthority.create(d, name="Rotating Root CA") as ca:
        ca.issue_server("localhost", ["localhost", "127.0.0.1"]).write(out, "server")
        ca.issue_client("before", ["before.example.org"], unit="demo").write(out, "before")
        (out / "server-root.pem").write_bytes(ca.root_pem())
        old_int = ca.intermediate.subject.rfc4514_string()
    assert main(["ca", "rotate", "--dir", str(d), *(["--root"] if root else [])]) == 0
    _issue(d, out, "after")
    bundle = d / "transition.pem"
    config = config_for(
        out / "server.chain.pem", out / "server.key", bundle, echo.url, {"allow_ou": ["demo"]}
    )
    with running_gateway(config) as gw:
        # overlap: a client of the old intermediate and one of the new are both admitted
        for name in ("before", "after"):
            code, body = _curl(d, out, name, gw)
            assert code == 200, body
            assert f"CN={name}" in json.dumps(json.loads(body))
        assert main(["ca", "rotate", "--dir", str(d), "--retire", "--force"]) == 0
        assert gw.call(gw.gateway.reload, "test") is True  # client_ca = the new CA only
        code, body = _curl(d, out, "after", gw)
        assert code == 200, body
        code, err = _curl(d, out, "before", gw)
        # The bundle holds intermediates only and the gateway takes them as the trust
        # anchors, so the old intermediate's leaves are refused even under the same root.
        assert code == 0 and "alert" in err, err  # refused in the handshake: the client is told
        line = gw.wait_for_log("handshake_failed")
        assert "code=unknown_issuer" in line, line
        # it names the old intermediate (the certificate at fault), not the new one
        assert f'certificate="{old_int}"' in line and "G2" not in line, line
