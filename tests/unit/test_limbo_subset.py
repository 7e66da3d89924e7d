"""A fast x509-limbo subset (CLIENT, pathlen, EKU, validity, CRL) through verify_chain."""

from __future__ import annotations

import gzip
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mtlskit.trust import Purpose, ReasonCode, load_crl_set, verify_chain

SUBSET = Path(__file__).resolve().parents[1] / "data" / "limbo-subset.json.gz"

# Cases we deliberately do not match (as cryptography does not); conformance/limbo.py
# gives the full list and the reasons.
UNSUPPORTED = {
    "pathlen::validation-ignores-pathlen-in-leaf": "WebPKI rejects CA:TRUE leaves",
    "pathlen::self-issued-certs-pathlen": "no paths through self-issued intermediates",
    "pathlen::max-chain-depth-1-self-issued": "no paths through self-issued intermediates",
    "crl::issuer-no-keyusage-extension": "WebPKI requires keyUsage on CAs",
    "webpki::eku::ee-anyeku": "anyEKU on a leaf is accepted",
    "webpki::eku::ee-without-eku": "a leaf without EKU is accepted",
    "webpki::eku::root-has-eku": "EKU on a root is accepted",
}


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(gzip.decompress(SUBSET.read_bytes()))["testcases"]
    return cases


def _certs(pems: list[str]) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def _run(case: dict[str, Any]) -> tuple[bool, ReasonCode]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some limbo certificates are odd on purpose
        trusted = _certs(case["trusted_certs"])
        inter = _certs(case["untrusted_intermediates"])
        leaf = _certs([case["peer_certificate"]])[0]
    crls = [
        load_crl_set(x509.load_pem_x509_crl(c.encode()), [*trusted, *inter])
        for c in case["crls"] or []
    ]
    when = case["validation_time"]
    purpose: Purpose = "client" if case["validation_kind"] == "CLIENT" else "server"
    peer = case["expected_peer_name"]
    result = verify_chain(
        leaf,
        inter,
        trusted,
        purpose=purpose,
        now=datetime.fromisoformat(when) if when else datetime.now(UTC),
        host=peer["value"] if peer and purpose == "server" else None,
        crls=crls,
        max_depth=case["max_chain_depth"],
    )
    return result.valid, result.code


def test_subset_covers_the_issue_features() -> None:
    ids = [c["id"] for c in _cases()]
    assert sum(c["validation_kind"] == "CLIENT" for c in _cases()) == 10
    for prefix in ("pathlen::", "rfc5280::eku::", "rfc5280::validity::", "crl::"):
        assert any(i.startswith(prefix) for i in ids), prefix
    assert set(UNSUPPORTED) <= set(ids)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_limbo_case(case: dict[str, Any]) -> None:
    valid, code = _run(case)
    expected = case["expected_result"] == "SUCCESS"
    if case["id"] in UNSUPPORTED:
        assert valid != expected, f"now supported, update UNSUPPORTED: {case['id']}"
        return
    assert valid == expected, f"{case['id']}: {code}"
    assert (code is ReasonCode.OK) == valid
