"""Several processes issuing from one CA at once: unique serials, no lost records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from mtlskit.pki import CertificateAuthority

WORKER = """
import sys
from mtlskit.pki import CertificateAuthority
ca_dir, out, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with CertificateAuthority.load(ca_dir, lock_timeout=30) as ca:
    for i in range(count):
        name = f"{prefix}-{i}"
        ca.issue_client(name, deliver=lambda c, n=name: c.write(out, n))
"""


def test_parallel_issuers_never_collide(
    ca: CertificateAuthority, ca_dir: Path, out_dir: Path
) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(ca_dir), str(out_dir), f"w{w}", "15"])
        for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    issued = [x509.load_pem_x509_certificate(p.read_bytes()) for p in out_dir.glob("*.crt")]
    assert len(issued) == 60
    serials = {c.serial_number for c in issued}
    assert len(serials) == 60
    listed = subprocess.run(
        [sys.executable, "-m", "mtlskit", "ca", "list", "--dir", str(ca_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [r for r in json.loads(listed.stdout) if r["profile"] == "client"]
    assert {int(r["serial"], 16) for r in rows} == serials
