"""Issue -> verify contract: our CA's chains verify for their purpose, never for the other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtlskit.pki import CertificateAuthority, KeyType
from mtlskit.pki.builder import BACKDATE
from mtlskit.trust import Purpose, ReasonCode, verify_chain

OTHER: dict[Purpose, Purpose] = {"client": "server", "server": "client"}


@pytest.fixture(scope="module")
def shared_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertificateAuthority]:
    authority = CertificateAuthority.create(tmp_path_factory.mktemp("prop") / "ca", name="Prop CA")
    yield authority
    authority.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    purpose=st.sampled_from(["client", "server"]),
    key_type=st.sampled_from(["ec-p256", "ec-p384"]),
    days=st.integers(min_value=1, max_value=400),
    issued_after=st.integers(min_value=0, max_value=3600 * 24 * 365),
    fraction=st.floats(min_value=0.0, max_value=1.0),
    send_chain=st.booleans(),
)
def test_issued_chain_verifies_only_for_its_purpose(
    shared_ca: CertificateAuthority,
    purpose: Purpose,
    key_type: KeyType,
    days: int,
    issued_after: int,
    fraction: float,
    send_chain: bool,
) -> None:
    # Issue at or after the CA's creation (as in real use): a leaf issued with a `now`
    # before its CA existed would start before its issuer does (see the report).
    issued_at = shared_ca.intermediate.not_valid_before_utc + BACKDATE
    issued_at += timedelta(seconds=issued_after)
    issue = shared_ca.issue_client if purpose == "client" else shared_ca.issue_server
    issued = issue(
        "peer.example.com",
        validity=timedelta(days=days),
        key_type=key_type,
        now=issued_at,
    )
    cert = issued.certificate
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    at = start + (end - start) * fraction  # any instant inside [notBefore, notAfter]
    sent = list(issued.intermediates) if send_chain else []
    hints = [] if send_chain else [shared_ca.intermediate]
    host = "peer.example.com"
    ok = verify_chain(
        cert,
        sent,
        [shared_ca.root],
        purpose=purpose,
        now=at,
        host=host if purpose == "server" else None,
        hints=hints,
    )
    if send_chain:
        assert ok.valid, ok.explanation
        assert ok.path[0] == "CN=peer.example.com"
    else:
        assert ok.code is ReasonCode.MISSING_INTERMEDIATE
    other = OTHER[purpose]
    wrong = verify_chain(
        cert,
        list(issued.intermediates),
        [shared_ca.root],
        purpose=other,
        now=at,
        host=host if other == "server" else None,
    )
    assert not wrong.valid
    assert wrong.code is ReasonCode.WRONG_PURPOSE
    assert wrong.subject == "CN=peer.example.com"
