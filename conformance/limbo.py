"""Run x509-limbo through mtlskit.trust.verify_chain and compare with cryptography's verifier.

Usage: python conformance/limbo.py [--limbo PATH] [--verbose]

For every testcase it records whether cryptography's own verifier (called directly, as
its test suite does) and mtlskit's verify_chain (which wraps it and adds CRL checks)
give the expected result, then prints pass/fail by feature and by namespace, and every
case mtlskit does not match with the reason we deliberately do not support it.

Exit status: 0 when mtlskit matches every case cryptography matches and every other
mismatch has a documented reason; 1 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import ipaddress
import json
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

# The reference: cryptography's verifier called directly (this file is not part of the
# package; inside src/ only mtlskit.trust._verifier imports this module).
from cryptography.x509.verification import PolicyBuilder, Store

from mtlskit.trust import load_crl_set, verify_chain

DEFAULT_LIMBO = Path(__file__).resolve().parents[1] / ".." / "shared" / "limbo" / "limbo.json.gz"

# Why a case is deliberately not supported, by feature tag (from the limbo schema) ...
UNSUPPORTED_FEATURES: dict[str, str] = {
    "pedantic-public-suffix-wildcard": "wildcards on public suffixes are not rejected: it "
    "needs the public suffix list, which cryptography (and most validators) do not use",
    "name-constraint-dn": "directoryName name constraints are not enforced by cryptography",
    "pedantic-webpki-eku": "CA/B EKU pedantry (anyEKU on a leaf, EKU on a root) is accepted "
    "by cryptography, as by most validators",
    "pedantic-rfc5280": "a strict RFC 5280 reading that validators widely ignore",
    "rfc5280-incompatible-with-webpki": "RFC 5280 and CA/B disagree; cryptography follows "
    "the WebPKI (CA/B) rule",
    "pedantic-webpki-subscriber-key": "CA/B subscriber key rules (P-192, DSA, weak or odd "
    "RSA sizes on leaves) are not all enforced by cryptography",
    "pedantic-serial-number": "a zero serial is accepted (cryptography only warns)",
    "has-policy-constraints": "certificate policies and policy constraints are not processed",
}
# ... and by testcase id (fnmatch patterns), for cases without such a tag.
UNSUPPORTED_IDS: dict[str, str] = {
    "rfc5280::aki::intermediate-missing-aki": "intermediates without an AKI are accepted "
    "(as by Go's crypto/x509 and rustls' webpki)",
    "webpki::aki::root-with-aki-*": "AKI contents on a trust anchor are not checked "
    "(as by Go and webpki)",
    "rfc5280::ski::*-missing-ski": "a CA without a subjectKeyIdentifier is accepted",
    "webpki::cn::*": "names are matched against SANs only; a subject CN that disagrees "
    "with the SANs is not rejected",
    "webpki::forbidden-rsa-not-divisible-by-8-in-root": "RSA modulus sizes on trust anchors "
    "are not checked",
    "pathlen::validation-ignores-pathlen-in-leaf": "the WebPKI profile rejects a leaf with "
    "CA:TRUE, which RFC 5280 allows",
    "rfc5280::ca-as-leaf": "the WebPKI profile rejects a leaf with CA:TRUE, which RFC 5280 allows",
    "pathlen::*self-issued*": "cryptography does not build paths through self-issued "
    "(key-rollover) intermediates",
    "crl::issuer-no-keyusage-extension": "the WebPKI profile requires keyUsage on CA "
    "certificates, so the path is rejected before the CRL is read",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One testcase: the expected result and what each verifier said."""

    id: str
    features: tuple[str, ...]
    expected: bool
    reference: bool
    ours: bool
    code: str


def _certs(pems: Iterable[str]) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def _peer(case: dict[str, Any]) -> str | None:
    peer = case["expected_peer_name"]
    return None if peer is None else str(peer["value"])


def _reference(case: dict[str, Any], now: datetime) -> bool:
    try:
        builder = PolicyBuilder().store(Store(_certs(case["trusted_certs"]))).time(now)
        if case["max_chain_depth"] is not None:
            builder = builder.max_chain_depth(case["max_chain_depth"])
        leaf = _certs([case["peer_certificate"]])[0]
        inter = _certs(case["untrusted_intermediates"])
        if case["validation_kind"] == "CLIENT":
            builder.build_client_verifier().verify(leaf, inter)
            return True
        peer = case["expected_peer_name"]
        name: x509.DNSName | x509.IPAddress = (
            x509.DNSName(peer["value"])
            if peer["kind"] == "DNS"
            else x509.IPAddress(ipaddress.ip_address(peer["value"]))
        )
        builder.build_server_verifier(name).verify(leaf, inter)
        return True
    except Exception:  # any refusal (VerificationError, ValueError, bad input) is a FAILURE
        return False


def _ours(case: dict[str, Any], now: datetime) -> tuple[bool, str]:
    try:
        trusted = _certs(case["trusted_certs"])
        inter = _certs(case["untrusted_intermediates"])
        leaf = _certs([case["peer_certificate"]])[0]
        crls = [
            load_crl_set(x509.load_pem_x509_crl(c.encode()), [*trusted, *inter])
            for c in case["crls"] or []
        ]
    except ValueError:
        return False, "load_error"  # the CLI reports this as a CertificateLoadError
    purpose = "client" if case["validation_kind"] == "CLIENT" else "server"
    host = _peer(case) if purpose == "server" else None
    if purpose == "server" and host is None:
        return False, "no_peer_name"
    result = verify_chain(
        leaf,
        inter,
        trusted,
        purpose=purpose,
        now=now,
        host=host,
        crls=crls,
        max_depth=case["max_chain_depth"],
    )
    return result.valid, result.code.value


def run_case(case: dict[str, Any]) -> Outcome:
    """Evaluate one testcase with both verifiers."""
    when = case["validation_time"]
    now = datetime.fromisoformat(when) if when else datetime.now(UTC)
    ours, code = _ours(case, now)
    return Outcome(
        id=case["id"],
        features=tuple(case["features"] or ()),
        expected=case["expected_result"] == "SUCCESS",
        reference=_reference(case, now),
        ours=ours,
        code=code,
    )


def unsupported_reason(outcome: Outcome) -> str:
    """Why mtlskit deliberately does not match this case, or "" when it should."""
    for feature in outcome.features:
        if feature in UNSUPPORTED_FEATURES:
            return f"[{feature}] {UNSUPPORTED_FEATURES[feature]}"
    for pattern, why in UNSUPPORTED_IDS.items():
        if fnmatch.fnmatchcase(outcome.id, pattern):
            return why
    return ""


def load_cases(path: Path) -> list[dict[str, Any]]:
    """Read limbo.json or limbo.json.gz."""
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    cases: list[dict[str, Any]] = json.loads(raw)["testcases"]
    return cases


def _table(title: str, groups: dict[str, list[Outcome]]) -> None:
    print(f"\n{title:<40} {'cases':>6} {'crypto':>7} {'mtlskit':>8} {'lost':>5} {'gained':>7}")
    for key in sorted(groups):
        items = groups[key]
        ref = sum(o.reference == o.expected for o in items)
        ours = sum(o.ours == o.expected for o in items)
        lost = sum(o.reference == o.expected and o.ours != o.expected for o in items)
        gained = sum(o.reference != o.expected and o.ours == o.expected for o in items)
        print(f"{key:<40} {len(items):>6} {ref:>7} {ours:>8} {lost:>5} {gained:>7}")


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the report, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limbo", type=Path, default=DEFAULT_LIMBO, help="limbo.json[.gz]")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if not args.limbo.exists():
        print(f"error: {args.limbo} not found (give --limbo PATH)", file=sys.stderr)
        return 2
    cases = load_cases(args.limbo)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # limbo has certificates with zero or negative serials on purpose
        warnings.simplefilter("ignore")
        outcomes = [run_case(c) for c in cases]
    elapsed = time.perf_counter() - start

    by_feature: dict[str, list[Outcome]] = defaultdict(list)
    by_namespace: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        for feature in o.features or ("(no feature tag)",):
            by_feature[feature].append(o)
        by_namespace[o.id.split("::")[0]].append(o)
        if args.verbose:
            print(f"{o.id}: expected={o.expected} crypto={o.reference} mtlskit={o.ours} {o.code}")

    ref_ok = sum(o.reference == o.expected for o in outcomes)
    ours_ok = sum(o.ours == o.expected for o in outcomes)
    lost = [o for o in outcomes if o.reference == o.expected and o.ours != o.expected]
    gained = [o for o in outcomes if o.reference != o.expected and o.ours == o.expected]
    missed = [o for o in outcomes if o.ours != o.expected]
    print(f"x509-limbo: {len(outcomes)} cases from {args.limbo} in {elapsed:.1f}s")
    print(f"  cryptography {ref_ok} match, mtlskit {ours_ok} match")
    print(f"  lost (cryptography matches, mtlskit does not): {len(lost)}")
    print(f"  gained (mtlskit matches, cryptography does not): {len(gained)}")
    for o in gained:
        print(f"    + {o.id} ({o.code})")
    _table("by feature", by_feature)
    _table("by namespace", by_namespace)

    print(f"\nnot supported ({len(missed)} cases):")
    unexplained = []
    for o in missed:
        why = unsupported_reason(o)
        want = "SUCCESS" if o.expected else "FAILURE"
        print(f"  {o.id}: expected {want}, mtlskit says {o.code}")
        print(f"      why: {why or 'UNEXPLAINED'}")
        if not why:
            unexplained.append(o)
    if lost or unexplained:
        print(f"\nFAIL: {len(lost)} lost, {len(unexplained)} unexplained", file=sys.stderr)
        return 1
    print("\nOK: every case cryptography matches is matched; every other one is explained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
