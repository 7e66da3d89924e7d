"""Browsers and other clients (issue 13): speculative connections, and a missing certificate.

A browser's speculative connection reads the gateway's flight (CertificateRequest
included) and closes while its user picks a certificate: not a failure, logged at INFO
with its own result. A client that closes before our flight is still connection_reset.
A client that sends no certificate is told which CA names the gateway asked for.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from OpenSSL import SSL

from mtlskit.demo.echo import EchoServer
from mtlskit.gateway.handshake import classify_handshake_failure
from tests.gateway.harness import Running, running_gateway
from tests.gateway.outside import OutsidePKI, abandon_after_flight, make_outside_pki, outside_config
from tests.integration.peers import curl, openssl
from tests.opensslpki import CLIENT_EXT, KeySpec, Made, OpenSSLPKI

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> OutsidePKI:
    return make_outside_pki(Path(tmp_path_factory.mktemp("outside")))


@pytest.fixture
def gw(outside: OutsidePKI, echo: EchoServer) -> Iterator[Running]:
    with running_gateway(outside_config(outside, echo.url)) as running:
        yield running


def _handshakes(gw: Running, result: str) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(
        "mtlskit_handshakes_total", {"result": result}
    )
    return value or 0.0


def _wait_streams_gone(gw: Running) -> None:
    """Every socket accepted is closed: its handshake result has been counted."""
    gw.wait_until(lambda: not gw.call(lambda: len(gw.gateway.streams)))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_a_speculative_connection_is_not_a_failure(
    gw: Running, outside: OutsidePKI, version: str, reset: bool
) -> None:
    received = abandon_after_flight(gw.port, outside.root, VERSIONS[version], reset=reset)
    assert received > 1000  # the whole flight: the server's chain came with it
    line = gw.wait_for_log("code=closed_before_certificate")
    assert " INFO " in line and "handshake_abandoned" in line
    assert "before sending a certificate" in line and "normal for browsers" in line
    assert "step 6" in line
    _wait_streams_gone(gw)
    assert _handshakes(gw, "closed_before_certificate") == 1
    assert _handshakes(gw, "connection_reset") == 0
    assert not [x for x in gw.lines() if "WARNING" in x and "handshake" in x], gw.lines()
    # The user has picked a certificate: the browser's next connection goes through.
    client = ["--cert", str(outside.client_chain), "--key", str(outside.client_key)]
    r = curl("--cacert", outside.root, *client, gw.url + "/after")
    assert r.returncode == 0, r.stderr
    assert _handshakes(gw, "ok") == 1


@pytest.mark.parametrize(
    "sent",
    [b"", b"\x16\x03\x01\x00\xff\x01"],  # nothing at all; half a ClientHello
    ids=["connect-close", "partial-hello"],
)
def test_a_client_closing_before_our_flight_is_connection_reset(gw: Running, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
        if sent:
            raw.sendall(sent)
    line = gw.wait_for_log("code=connection_reset")
    assert " WARNING " in line and "handshake_failed" in line and "step 1" in line
    _wait_streams_gone(gw)
    assert _handshakes(gw, "connection_reset") == 1
    assert _handshakes(gw, "closed_before_certificate") == 0


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_no_client_certificate_names_the_ca_names_sent(
    gw: Running, outside: OutsidePKI, version: str
) -> None:
    r = openssl(
        "s_client",
        "-connect",
        f"127.0.0.1:{gw.port}",
        "-servername",
        "localhost",
        "-CAfile",
        outside.root,
        f"-tls{version.replace('.', '_')}",
        "-ign_eof",  # TLS 1.3: the alert comes after the client's side of the handshake
        stdin="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    out = r.stdout + r.stderr
    # openssl saw both names in the CertificateRequest, and so does the log line.
    assert "Acceptable client certificate CA names" in out, out
    assert "CN=Outside Root CA" in out.replace(" = ", "=") and "Partner Root CA" in out
    line = gw.wait_for_log("code=no_client_certificate")
    assert " WARNING " in line and "step 6" in line
    assert 'ca_names="CN=Outside Root CA; CN=Partner Root CA"' in line
    assert "(sent: CN=Outside Root CA; CN=Partner Root CA)" in line  # in the fix
    assert "browsers, Java and many TLS libraries send no certificate" in line
    assert "import NAME.p12 (it carries the intermediate)" in line
    assert "curl: --cert NAME.chain.pem --key NAME.key" in line
    assert "PRIVATE KEY" not in gw.log.getvalue()


@pytest.mark.parametrize(
    "exc",
    [
        SSL.ZeroReturnError(),  # EOF (OP_IGNORE_UNEXPECTED_EOF)
        SSL.SysCallError(104, "ECONNRESET"),  # RST
        ConnectionResetError(104, "reset"),
        SSL.Error([("SSL routines", "", "unexpected eof while reading")]),
    ],
)
def test_a_close_is_benign_only_after_our_certificate_request(exc: BaseException) -> None:
    before = classify_handshake_failure(exc)
    assert (before.code, before.level) == ("connection_reset", "warning")
    after = classify_handshake_failure(exc, after_flight=True)
    assert (after.code, after.level) == ("closed_before_certificate", "info")
    # A refusal is never hidden as benign, whatever the flight.
    refused = SSL.Error([("SSL routines", "", "peer did not return a certificate")])
    failure = classify_handshake_failure(refused, after_flight=True, ca_names=["CN=A", "CN=B"])
    assert failure.code == "no_client_certificate" and failure.level == "warning"
    assert "(sent: CN=A; CN=B)" in failure.fix and "NAME.p12" in failure.fix


@pytest.mark.parametrize(
    ("kind", "code", "fix"),
    [
        ({"key": "rsa:1024"}, "key_too_weak", "new ec-p256 (or RSA-2048+) key"),
        ({"md": "sha1"}, "signature_too_weak", "signed with SHA-256"),
    ],
    ids=["rsa1024", "sha1"],
)
def test_a_client_certificate_below_the_security_level_is_named_with_its_fix(
    gw: Running, outside: OutsidePKI, kind: KeySpec, code: str, fix: str
) -> None:
    pki = OpenSSLPKI(outside.dir / f"weak-{code}")
    issuer = Made("Outside Issuing CA", outside.intermediate, outside.intermediate_key)
    weak = pki.issue(f"weak-{code}", issuer, ext=CLIENT_EXT, **kind)
    chain = pki.bundle(f"weak-{code}.chain", weak, issuer)
    r = openssl(
        "s_client",
        "-connect",
        f"127.0.0.1:{gw.port}",
        "-servername",
        "localhost",
        "-CAfile",
        outside.root,
        "-cert",
        chain,
        "-key",
        weak.key,
        "-cipher",
        "DEFAULT@SECLEVEL=0",
        "-ign_eof",
        stdin="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    assert "HTTP/1.1 200" not in r.stdout
    line = gw.wait_for_log(f"code={code}")
    assert f"CN=weak-{code}" in line and "step 7" in line
    assert fix in line
