"""Benchmark: load a 1,000,000-entry CRL into a RevocationList and time serial lookups.

Usage: .venv/bin/python bench/crl_lookup.py [--entries N] [--lookups N] [--cache DIR]

The CRL is built once with cryptography and cached (DER) under /tmp, since signing a
million entries takes a while; later runs reuse it.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mtlskit.pki.builder import build_certificate, make_name, plan_validity
from mtlskit.pki.profiles import INTERMEDIATE
from mtlskit.trust import load_crl_set

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _issuer(cache: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key_path, cert_path = cache / "issuer.key", cache / "issuer.crt"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_certificate(
        profile=INTERMEDIATE,
        subject=make_name("Bench Issuing CA"),
        public_key=key.public_key(),
        issuer=None,
        issuer_key=key,
        validity=plan_validity(NOW, timedelta(days=3650), None),
        serial=x509.random_serial_number(),
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _crl(cache: Path, entries: int) -> tuple[bytes, x509.Certificate, list[int]]:
    issuer, key = _issuer(cache)
    rng = random.Random(1)  # the same serials every run, so the cache stays valid
    serials = [rng.getrandbits(127) | 1 for _ in range(entries)]
    path = cache / f"crl-{entries}.der"
    if not path.exists():
        start = time.perf_counter()
        revoked = [
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
            for serial in serials
        ]
        # The constructor takes the whole list: add_revoked_certificate() copies the list
        # on every call (immutable builder), which is quadratic for a million entries.
        builder = (
            x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
            .issuer_name(issuer.subject)
            .last_update(NOW)
            .next_update(NOW + timedelta(days=7))
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        crl = builder.sign(key, hashes.SHA256())
        path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
        print(f"built and signed a {entries:,}-entry CRL in {time.perf_counter() - start:.1f}s")
    return path.read_bytes(), issuer, serials


def main() -> None:
    """Build or reuse the CRL, then time load_crl_set and lookups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1_000_000)
    cache = Path(tempfile.gettempdir()) / "mtlskit-bench-crl"
    parser.add_argument("--cache", type=Path, default=cache)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    der, issuer, serials = _crl(args.cache, args.entries)
    print(f"CRL: {args.entries:,} entries, {len(der) / 1e6:.1f} MB DER")

    start = time.perf_counter()
    crl = x509.load_der_x509_crl(der)
    parsed = time.perf_counter()
    revocation = load_crl_set(crl, [issuer])
    loaded = time.perf_counter()
    assert revocation.problem == "", revocation.problem
    assert len(revocation.serials) == args.entries
    print(f"parse DER: {parsed - start:.2f}s")
    print(f"load_crl_set (signature check + set of serials): {loaded - parsed:.2f}s")

    rng = random.Random(2)
    probes = [rng.choice(serials) if i % 2 else rng.getrandbits(127) for i in range(args.lookups)]
    start = time.perf_counter()
    hits = sum(revocation.is_revoked(p) for p in probes)
    elapsed = time.perf_counter() - start
    print(
        f"{args.lookups:,} lookups ({hits:,} revoked): {elapsed:.3f}s, "
        f"{elapsed / args.lookups * 1e9:.0f} ns per lookup"
    )
    # Only a hit reads the entry (date and reason) for the explanation.
    start = time.perf_counter()
    entry = revocation.entry(serials[-1])
    print(f"one revoked entry's date and reason: {time.perf_counter() - start:.4f}s {entry}")


if __name__ == "__main__":
    main()
