"""`mtlskit probe` against real `openssl s_server` peers: each acceptance case of issue 5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mtlskit.demo.echo import EchoServer
from tests.client.servers import mute_port, s_server
from tests.integration.peers import free_port

TLS12 = ["-tls1_2"]
TLS13 = ["-tls1_3"]


def _status(data: dict[str, Any]) -> dict[int, str]:
    return {s["number"]: s["status"] for s in data["steps"]}


def _server(certs: dict[str, Path], name: str = "server", **kw: Any) -> Any:
    kw.setdefault("chain", certs["intermediate.crt"])
    kw.setdefault("ca", certs["root.crt"])
    return s_server(cert=certs[f"{name}.crt"], key=certs[f"{name}.key"], **kw)


def _as(certs: dict[str, Path], name: str) -> list[str | Path]:
    return ["--cert", certs[f"{name}.chain.pem"], "--key", certs[f"{name}.key"]]


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_healthy_mtls_server_is_ok_with_ca_names_and_nine_steps(
    certs: dict[str, Path], probe_json: Any, version: list[str]
) -> None:
    with _server(certs, extra=version) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert code == 0 and data["code"] == "ok", data
    assert data["tls"]["version"] == ("TLSv1.3" if version == TLS13 else "TLSv1.2")
    assert data["client_auth"]["requested"] == "required"
    assert data["client_auth"]["ca_names"] == ["CN=Client Test Root CA"]
    tag = "tls13" if version == TLS13 else "tls12"
    assert data["client_auth"]["ca_names_source"] == f"{tag}_certificate_request"
    assert [c["subject"] for c in data["server"]["chain"]] == [
        "CN=localhost",
        "CN=Client Test Intermediate CA",
    ]
    assert data["server"]["chain"][0]["eku"] == ["serverAuth"]
    assert data["server"]["complete"] is True and data["server"]["verified"] is True
    assert data["preflight"]["chains_to_accepted_ca"] is True
    assert data["preflight"]["client_auth"] and data["preflight"]["intermediate_included"]
    assert _status(data) == dict.fromkeys(range(1, 10), "ok")
    assert bool(data["notes"]) == (version == TLS13)  # the CertificateVerify wording note


def test_text_output_shows_the_nine_numbered_steps(certs: dict[str, Path], mtlskit: Any) -> None:
    with _server(certs) as port:
        r = mtlskit(
            "probe",
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert r.code == 0, r.out + r.err
    for n in range(1, 10):
        assert f"  {n}. " in r.out
    assert "accepts CA CN=Client Test Root CA" in r.out
    assert r.out.rstrip().endswith("outcome: ok")


def test_server_sending_only_its_leaf_is_chain_incomplete(
    certs: dict[str, Path], probe_json: Any
) -> None:
    with _server(certs, chain=None) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert code == 1 and data["code"] == "server_chain_incomplete"
    assert len(data["server"]["chain"]) == 1 and data["server"]["complete"] is False
    assert data["failed_step"] == 5 and _status(data)[5] == "failed"


def test_chain_incomplete_names_the_missing_intermediate_with_a_ca_dir(
    certs: dict[str, Path], probe_json: Any
) -> None:
    with _server(certs, chain=None) as port:
        _, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["ca_dir"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert data["code"] == "server_chain_incomplete"
    assert data["server"]["reason"] == "missing_intermediate"
    assert "Client Test Intermediate CA" in data["server"]["explanation"]


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_no_client_certificate_against_required_is_client_cert_required(
    certs: dict[str, Path], probe_json: Any, version: list[str]
) -> None:
    with _server(certs, extra=version) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}", "--ca", certs["root.crt"], "--servername", "localhost"
        )
    assert code == 1 and data["code"] == "client_cert_required", data
    assert data["client_auth"]["requested"] == "required"
    alerts = [e["code"] for e in data["events"] if e["kind"] == "alert"]
    assert alerts == ([116] if version == TLS13 else [40])
    assert _status(data)[6] == "failed"


def test_optional_client_auth_lets_a_bare_client_in(
    certs: dict[str, Path], probe_json: Any
) -> None:
    with _server(certs, verify="-verify") as port:
        code, data = probe_json(
            f"127.0.0.1:{port}", "--ca", certs["root.crt"], "--servername", "localhost"
        )
    assert code == 0 and data["client_auth"]["requested"] == "optional"


def test_optional_is_told_apart_from_required_when_a_certificate_is_given(
    certs: dict[str, Path], probe_json: Any
) -> None:
    with _server(certs, verify="-verify") as port:
        _, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert data["code"] == "ok" and data["client_auth"]["requested"] == "optional"


def test_server_without_client_auth_is_none(certs: dict[str, Path], probe_json: Any) -> None:
    with _server(certs, verify=None, ca=None) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert code == 0 and data["client_auth"]["requested"] == "none"
    assert data["client_auth"]["ca_names"] == []
    assert _status(data)[4] == "skipped" and _status(data)[6] == "skipped"


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_client_from_another_ca_is_unknown_ca_and_preflight_says_why(
    certs: dict[str, Path], probe_json: Any, version: list[str]
) -> None:
    with _server(certs, extra=version) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "intruder"),
        )
    assert code == 1 and data["code"] == "client_cert_unknown_ca", data
    assert data["preflight"]["chains_to_accepted_ca"] is False
    assert "CN=Other Intermediate CA is not among the CA names" in data["preflight"]["problems"][0]
    assert data["failed_step"] == 7


def test_client_sending_only_its_leaf_is_told_to_send_the_chain(
    certs: dict[str, Path], probe_json: Any
) -> None:
    leaf_only: list[str | Path] = ["--cert", certs["alice.crt"], "--key", certs["alice.key"]]
    with _server(certs) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}", "--ca", certs["root.crt"], "--servername", "localhost", *leaf_only
        )
    assert code == 1 and data["code"] == "client_cert_unknown_ca", data
    assert data["preflight"]["intermediate_included"] is False
    assert "was not sent with the leaf" in data["preflight"]["problems"][0]
    assert "NAME.chain.pem" in data["explanation"]


def test_no_ca_names_server_leaves_the_preflight_unknown(
    certs: dict[str, Path], probe_json: Any
) -> None:
    with _server(certs, extra=["-no_ca_names"]) as port:
        _, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "intruder"),
        )
    assert data["code"] == "client_cert_unknown_ca"
    assert data["client_auth"]["ca_names"] == []
    assert data["preflight"]["chains_to_accepted_ca"] is None


def test_expired_client_certificate(certs: dict[str, Path], probe_json: Any) -> None:
    with _server(certs) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "expired"),
        )
    assert code == 1 and data["code"] == "client_cert_expired", data
    assert data["preflight"]["valid_now"] is False
    assert [e["code"] for e in data["events"] if e["kind"] == "alert"] == [45]


def test_client_leaf_with_only_server_auth_is_unsupported(
    certs: dict[str, Path], probe_json: Any
) -> None:
    with _server(certs) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "serveronly"),
        )
    assert code == 1 and data["code"] == "client_cert_unsupported", data
    assert data["preflight"]["client_auth"] is False
    assert data["preflight"]["eku"] == ["serverAuth"]


def test_server_certificate_for_another_name(certs: dict[str, Path], probe_json: Any) -> None:
    with _server(certs, "othername") as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert code == 1 and data["code"] == "server_name_mismatch"
    assert data["server"]["reason"] == "name_mismatch"
    assert data["server"]["chain"][0]["subject"] == "CN=other.example.org"


def test_server_with_an_expired_certificate(certs: dict[str, Path], probe_json: Any) -> None:
    with _server(certs, "oldserver") as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert code == 1 and data["code"] == "server_cert_expired"
    assert data["server"]["chain"][0]["expired"] is True
    # the probe still watched the rest of the handshake: the client side was fine
    assert _status(data)[7] == "ok"


def test_server_from_an_untrusted_ca(certs: dict[str, Path], probe_json: Any) -> None:
    with _server(certs) as port:
        code, data = probe_json(
            f"127.0.0.1:{port}",
            "--ca",
            certs["other_root.crt"],
            "--servername",
            "localhost",
            *_as(certs, "alice"),
        )
    assert code == 1 and data["code"] == "server_cert_untrusted", data
    assert data["server"]["complete"] is True  # the intermediate was sent
    assert data["server"]["reason"] == "unknown_issuer"


def test_plain_http_port_is_not_tls(probe_json: Any) -> None:
    with EchoServer() as echo:
        code, data = probe_json(f"127.0.0.1:{echo.port}")
    assert code == 1 and data["code"] == "not_tls", data
    assert data["tls"]["version"] is None


def test_closed_port_is_connection_refused(probe_json: Any) -> None:
    code, data = probe_json(f"127.0.0.1:{free_port()}")
    assert code == 1 and data["code"] == "connection_refused"
    assert _status(data)[1] == "failed"


def test_silent_port_is_a_timeout(probe_json: Any) -> None:
    with mute_port() as port:
        code, data = probe_json(f"127.0.0.1:{port}", "--timeout", "0.5")
    assert code == 1 and data["code"] == "timeout"


def test_tls12_client_against_tls13_only_server_is_a_version_mismatch(
    certs: dict[str, Path], probe_json: Any
) -> None:
    # The client speaks 1.2-1.3; a server limited to 1.1 shares nothing with it.
    with _server(certs, extra=["-tls1_1"]) as port:
        code, data = probe_json(f"127.0.0.1:{port}", "--ca", certs["root.crt"])
    assert code == 1 and data["code"] == "protocol_version_mismatch", data
