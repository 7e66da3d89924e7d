"""kyma render with CRLs: the `-cacert` Secret's `ca.crl`, its 1 MiB limit, what Envoy needs."""

from __future__ import annotations

import base64
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtlskit.config import load_gateway_config, read_toml
from mtlskit.errors import ExportError
from mtlskit.export import KymaExport, KymaInputs, KymaOptions, ServerInputs, render_kyma, to_yaml
from mtlskit.pki import CertificateAuthority
from mtlskit.pki.crl import Revocation, build_crl
from mtlskit.pki.pem import load_private_key

from .conftest import Demo, write_gateway_toml
from .validate import assert_valid

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MTLSKIT_UPDATE_GOLDEN") == "1"
_B64_LINE = re.compile(r"^(\s+(?:cacert|ca\.crl|tls\.crt|tls\.key): )[A-Za-z0-9+/=]{16,}$", re.M)
# Fixed dates: the warnings name the CRL's nextUpdate.
AT = datetime(2030, 1, 1, tzinfo=UTC)
PEM = serialization.Encoding.PEM


def _root_crl(ca: CertificateAuthority, revoked: int = 0) -> x509.CertificateRevocationList:
    """A CRL signed by the root (our CA signs only the intermediate's): it may be empty."""
    key = load_private_key((ca.directory / "root.key").read_bytes(), "root.key")
    return build_crl(
        issuer=ca.root,
        issuer_key=key,
        # Serials of 16 bytes, as CAs issue them: about 40 bytes per entry.
        revoked=[Revocation(2**126 + n, AT, "unspecified") for n in range(revoked)],
        number=1,
        this_update=AT,
        next_update=AT + timedelta(days=30),
    )


def _render(demo: Demo, crls: tuple[bytes, ...], tls_extra: str = "") -> tuple[str, KymaExport]:
    toml = write_gateway_toml(demo.dir, policy='allow_ou = ["demo"]')
    text = toml.read_text().replace(
        'client_ca = "client-ca.pem"\n', f'client_ca = "client-ca.pem"\n{tls_extra}'
    )
    toml.write_text(text)
    config = load_gateway_config(read_toml(toml), base_dir=toml.parent)
    opts = KymaOptions(
        domain="mtls.example.com", namespace="shop", service="orders", service_port=8080
    )
    export = render_kyma(config, opts, KymaInputs(demo.client_ca.read_bytes(), crl=crls))
    return to_yaml(export.objects, export.warnings), export


def _cacert(export: KymaExport) -> dict[str, bytes]:
    (secret,) = [o for o in export.objects if o["metadata"]["name"].endswith("-cacert")]
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_golden_with_the_crls_in_the_cacert_secret(ca: CertificateAuthority, demo: Demo) -> None:
    intermediate = ca.crl(next_update=timedelta(days=7), now=AT)
    crls = (intermediate.public_bytes(serialization.Encoding.DER), _root_crl(ca).public_bytes(PEM))
    text, export = _render(demo, crls, 'crl = ["intermediate.crl", "root.crl"]\n')
    normalised = _B64_LINE.sub(r"\1<base64>", text)
    golden = GOLDEN / "crl.yaml"
    if UPDATE:
        golden.write_text(normalised)
    assert normalised == golden.read_text(), f"re-run with MTLSKIT_UPDATE_GOLDEN=1 to see {golden}"
    for obj in export.objects:
        assert_valid(obj)
    data = _cacert(export)
    assert data["cacert"] == demo.client_ca.read_bytes()
    # Both CRLs, as PEM (the DER one re-encoded), in the order given.
    assert data["ca.crl"] == intermediate.public_bytes(PEM) + crls[1]
    blocks = data["ca.crl"].split(b"-----END X509 CRL-----\n")[:-1]
    assert [x509.load_pem_x509_crl(b + b"-----END X509 CRL-----\n").issuer for b in blocks] == [
        ca.intermediate.subject,
        ca.root.subject,
    ]
    assert "revocation lists are not exported" not in text
    assert "has no CRL in ca.crl" not in text  # root and intermediate both have one


def test_a_ca_without_a_crl_is_named_envoy_would_refuse_its_chain(
    ca: CertificateAuthority, demo: Demo
) -> None:
    only = ca.crl(next_update=timedelta(days=7), now=AT).public_bytes(PEM)
    _, export = _render(demo, (only,), 'crl = ["intermediate.crl"]\n')
    messages = [str(w) for w in export.warnings]
    (missing,) = [m for m in messages if "has no CRL in ca.crl" in m]
    assert "CN=Test Root CA" in missing and "Envoy requires a CRL for every CA" in missing
    (expiry,) = [m for m in messages if m.startswith("tls.crl: is exported as it is now")]
    assert "2030-01-08 00:00Z" in expiry and "re-render and apply" in expiry


def test_fetched_crls_are_said_not_to_be_exported(ca: CertificateAuthority, demo: Demo) -> None:
    text, export = _render(demo, (), 'crl_urls = ["http://ca.example/crl"]\n')
    assert "ca.crl" not in _cacert(export)
    assert "CRLs fetched from URLs are not exported" in text


def test_a_cacert_secret_over_1_mib_is_an_error_with_what_to_do(
    ca: CertificateAuthority, demo: Demo
) -> None:
    big = _root_crl(ca, revoked=25_000).public_bytes(PEM)
    assert len(big) > 1024 * 1024
    with pytest.raises(ExportError) as caught:
        _render(demo, (big,), 'crl = ["root.crl"]\n')
    assert "more than the 1 MiB Kubernetes allows in one Secret" in caught.value.message
    hint = caught.value.hint or ""
    assert "split the clients over several intermediates" in hint and "no OCSP" in hint


def test_an_unreadable_crl_is_an_export_error(ca: CertificateAuthority, demo: Demo) -> None:
    with pytest.raises(ExportError, match="not a readable CRL"):
        _render(demo, (b"not a crl",), 'crl = ["root.crl"]\n')


def test_a_servers_crl_goes_into_its_own_cacert_secret(tmp_path: Path) -> None:
    from .sites_setup import write_site

    made = [
        CertificateAuthority.create(tmp_path / n, name=t)
        for n, t in (("ca", "Test Root CA"), ("ca2", "Partner Root CA"), ("ca3", "Web CA"))
    ]
    try:
        ca, partner, web = made
        toml = write_site(tmp_path / "site", ca, partner, web, case="two-servers")
        config = load_gateway_config(read_toml(toml), base_dir=toml.parent)
        partner_crl = partner.crl(next_update=timedelta(days=7), now=AT).public_bytes(PEM)
        servers = tuple(
            ServerInputs(
                s.client_ca.read_bytes(),
                s.chain_path.read_bytes(),
                s.key_path.read_bytes(),
                crl=(partner_crl,) if s.name == "partners" else (),
            )
            for s in config.server
        )
        opts = KymaOptions(
            domain="mtls.example.com", namespace="shop", service="orders", service_port=8080
        )
        export = render_kyma(config, opts, KymaInputs(ca.root_pem(), servers=servers))
    finally:
        for authority in made:
            authority.close()
    secrets = {o["metadata"]["name"]: o for o in export.objects if o["kind"] == "Secret"}
    assert "ca.crl" not in secrets["kyma-mtls-certs-api-cacert"]["data"]
    crl = base64.b64decode(secrets["kyma-mtls-certs-partners-cacert"]["data"]["ca.crl"])
    assert crl == partner_crl
    for obj in export.objects:
        assert_valid(obj)
    messages = [str(w) for w in export.warnings]
    # Only the partner's intermediate has a CRL: its root is named.
    assert any(
        m.startswith("server[2].client_ca (CN=Partner Root CA") and "has no CRL" in m
        for m in messages
    ), messages
