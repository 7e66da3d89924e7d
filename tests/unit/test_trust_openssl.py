"""Checks as wide as OpenSSL's, on chains made with the openssl command (issue 13).

One table of cases: each builds a chain with OpenSSLPKI and names the expected reason
code, the certificate at fault and a piece of its fix. `cert verify` (verify_chain) and
the preflight must agree on code and certificate; `openssl verify -auth_level 2 -purpose
sslclient|sslserver` must reject every case called an error (our checks are as wide as
OpenSSL's). Add a column (probe/request) by reading CASES.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Unpack

import pytest

from mtlskit.client.preflight import preflight
from mtlskit.trust import Purpose, ReasonCode, verify_chain
from tests.opensslpki import CA_EXT, CLIENT_EXT, KeySpec, Made, OpenSSLPKI, RootSpec, server_ext

SUB_CA = CA_EXT + "authorityKeyIdentifier=keyid\n"
SERVER = server_ext("localhost")


@dataclass(frozen=True)
class Chain:
    """What a case built: the leaf, the intermediates it sends, the trusted root."""

    leaf: Made
    sent: tuple[Made, ...]
    root: Made


@dataclass(frozen=True)
class Case:
    """One broken (or fine) chain and what every checker must say about it.

    Attributes:
        id: the test id.
        build: makes the chain in a fresh OpenSSLPKI.
        code: the reason code expected from cert verify and the preflight.
        at_fault: the CN of the certificate named.
        fix: a piece of the fix for that certificate.
        purpose: client or server.
        openssl_rejects: `openssl verify -auth_level 2` refuses it too.
        preflight_sees: the certificate at fault is one the client sends (not the root).
    """

    id: str
    build: Callable[[OpenSSLPKI], Chain]
    code: ReasonCode
    at_fault: str
    fix: str
    purpose: Purpose = "client"
    openssl_rejects: bool = True
    preflight_sees: bool = True


def _leaf(name: str, ext: str = CLIENT_EXT, **kw: Unpack[KeySpec]) -> Callable[[OpenSSLPKI], Chain]:
    """A leaf under a sound P-256 root and intermediate."""

    def build(pki: OpenSSLPKI) -> Chain:
        root = pki.root("Root")
        sub = pki.issue("Sub", root, ext=SUB_CA)
        return Chain(pki.issue(name, sub, ext=ext, **kw), (sub,), root)

    return build


def _under(
    sub_ext: str = SUB_CA,
    leaf_ext: str = CLIENT_EXT,
    *,
    root_kw: RootSpec | None = None,
    **sub_kw: Unpack[KeySpec],
) -> Callable[[OpenSSLPKI], Chain]:
    """A sound leaf under an intermediate (and root) made with the given options."""

    def build(pki: OpenSSLPKI) -> Chain:
        root = pki.root("Root", **(root_kw or {}))
        sub = pki.issue("Sub", root, ext=sub_ext, **sub_kw)
        return Chain(pki.issue("leaf", sub, ext=leaf_ext), (sub,), root)

    return build


NO_DS = CLIENT_EXT.replace("digitalSignature", "keyEncipherment")
CASES = [
    # Security level: keys (every certificate's, the root's too) and signature hashes.
    Case(
        "rsa1024-server-leaf",
        _leaf("srv", SERVER, key="rsa:1024"),
        ReasonCode.KEY_TOO_WEAK,
        "srv",
        "ec-p256",
        purpose="server",
    ),
    Case(
        "rsa1024-client-leaf",
        _leaf("alice", key="rsa:1024"),
        ReasonCode.KEY_TOO_WEAK,
        "alice",
        "ec-p256",
    ),
    Case(
        "secp192k1-client-leaf",
        _leaf("alice", key="ec:secp192k1"),
        ReasonCode.KEY_UNSUPPORTED,
        "alice",
        "ec-p256",
    ),
    Case(
        "p192-client-leaf",
        _leaf("alice", key="ec:prime192v1"),
        ReasonCode.KEY_TOO_WEAK,
        "alice",
        "ec-p256",
    ),
    Case(
        "rsa1024-intermediate",
        _under(key="rsa:1024"),
        ReasonCode.KEY_TOO_WEAK,
        "Sub",
        "reissue the CA CN=Sub with a new ec-p256 key",
    ),
    Case(
        "rsa1024-root",
        _under(root_kw={"key": "rsa:1024"}),
        ReasonCode.KEY_TOO_WEAK,
        "Root",
        "then reissue every certificate below it",
        preflight_sees=False,
    ),
    Case(
        "sha1-client-leaf",
        _leaf("alice", md="sha1"),
        ReasonCode.SIGNATURE_TOO_WEAK,
        "alice",
        "signed with SHA-256",
    ),
    Case(
        "sha1-intermediate",
        _under(md="sha1"),
        ReasonCode.SIGNATURE_TOO_WEAK,
        "Sub",
        "re-sign it with SHA-256",
    ),
    Case(
        "sha1-server-leaf",
        _leaf("srv", SERVER, md="sha1"),
        ReasonCode.SIGNATURE_TOO_WEAK,
        "srv",
        "signed with SHA-256",
        purpose="server",
    ),
    # TLS 1.3 has no signature scheme for the curve; openssl verify takes it.
    Case(
        "secp256k1-client-leaf",
        _leaf("alice", key="ec:secp256k1"),
        ReasonCode.KEY_UNSUPPORTED,
        "alice",
        "ec-p256",
        openssl_rejects=False,
    ),
    # Key usage and EKU on every certificate of the chain.
    Case(
        "client-leaf-without-digitalSignature",
        _leaf("alice", NO_DS),
        ReasonCode.WRONG_PURPOSE,
        "alice",
        "issue a client certificate",
    ),
    Case(
        "intermediate-eku-serverAuth-only",
        _under(SUB_CA + "extendedKeyUsage=serverAuth\n"),
        ReasonCode.WRONG_PURPOSE,
        "Sub",
        "reissue the CA CN=Sub with clientAuth",
    ),
    Case(
        "intermediate-eku-clientAuth-only-for-a-server",
        _under(SUB_CA + "extendedKeyUsage=clientAuth\n", SERVER),
        ReasonCode.WRONG_PURPOSE,
        "Sub",
        "reissue the CA CN=Sub with serverAuth",
        purpose="server",
    ),
    Case(
        "root-eku-serverAuth-only",
        _under(root_kw={"ext": CA_EXT + "extendedKeyUsage=serverAuth\n"}),
        ReasonCode.WRONG_PURPOSE,
        "Root",
        "reissue the CA CN=Root",
        preflight_sees=False,
    ),
    Case(
        "intermediate-without-keyCertSign",
        _under(SUB_CA.replace("keyCertSign,cRLSign", "cRLSign,digitalSignature")),
        ReasonCode.ISSUER_NOT_CA,
        "Sub",
        "keyCertSign",
    ),
    # openssl verify takes a CA:TRUE leaf; the WebPKI (and cryptography) do not.
    Case(
        "client-leaf-is-a-ca",
        _leaf("alice", CLIENT_EXT.replace("CA:FALSE", "CA:TRUE")),
        ReasonCode.WRONG_PURPOSE,
        "alice",
        "issue a client certificate",
        openssl_rejects=False,
    ),
    # Fine: the anchor's own SHA-1 self-signature is not checked, by OpenSSL or by us.
    Case(
        "sha1-self-signed-root",
        _under(root_kw={"md": "sha1"}),
        ReasonCode.OK,
        "leaf",
        "nothing",
        openssl_rejects=False,
    ),
    Case(
        "rsa2048-client-leaf",
        _leaf("alice", key="rsa:2048"),
        ReasonCode.OK,
        "alice",
        "nothing",
        openssl_rejects=False,
    ),
]


@pytest.fixture(params=CASES, ids=lambda c: c.id)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Case, Chain]:
    c: Case = request.param
    return c, c.build(OpenSSLPKI(tmp_path / "pki"))


def _now() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=2)  # past every notBefore just written


def test_cert_verify_names_the_code_the_certificate_and_its_fix(case: tuple[Case, Chain]) -> None:
    c, chain = case
    result = verify_chain(
        chain.leaf.x509,
        [m.x509 for m in chain.sent],
        [chain.root.x509],
        purpose=c.purpose,
        now=_now(),
        host="localhost" if c.purpose == "server" else None,
    )
    assert result.code is c.code, result.explanation
    assert result.valid is (c.code is ReasonCode.OK)
    if c.code is not ReasonCode.OK:
        assert result.subject == f"CN={c.at_fault}"
        assert f"CN={c.at_fault}" in result.explanation
    assert c.fix in result.fix, result.fix
    assert "does not match" not in result.explanation


@pytest.mark.parametrize("c", [c for c in CASES if c.purpose == "client"], ids=lambda c: c.id)
def test_preflight_agrees_with_cert_verify(c: Case, tmp_path: Path) -> None:
    chain = c.build(OpenSSLPKI(tmp_path / "pki"))
    pre = preflight([chain.leaf.x509, *(m.x509 for m in chain.sent)], None, now=_now())
    if not c.preflight_sees or c.code is ReasonCode.OK:
        assert pre.code == "ok" and pre.problems == ()
        return
    assert pre.code == c.code.value
    assert pre.at_fault == f"CN={c.at_fault}"
    assert c.fix in pre.fix
    assert f"CN={c.at_fault}" in pre.problems[0]


def test_openssl_verify_rejects_every_case_called_an_error(case: tuple[Case, Chain]) -> None:
    c, chain = case
    argv = ["openssl", "verify", "-auth_level", "2", "-purpose", f"ssl{c.purpose}"]
    argv += ["-CAfile", str(chain.root.cert)]
    if chain.sent:
        argv += ["-untrusted", str(chain.sent[0].cert)]
    proc = subprocess.run([*argv, str(chain.leaf.cert)], capture_output=True, text=True)
    assert (proc.returncode != 0) is c.openssl_rejects, proc.stdout + proc.stderr
