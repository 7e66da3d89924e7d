"""`mtlskit ca token` and POST /sign with curl: single use, expiry, no wider names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509

from mtlskit.caserver.protocol import token_hash
from mtlskit.caserver.service import create_token
from tests.caserver.conftest import OnlineCA, curl, openssl_csr


def _sign(online: OnlineCA, token: str | None, csr: object) -> tuple[int, dict[str, str] | bytes]:
    auth = ("-H", f"Authorization: Bearer {token}") if token else ()
    answer = curl(
        f"{online.url}/sign",
        "--cacert",
        online.root,
        *auth,
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        f"@{csr}",
    )
    return answer.status, answer.json() if answer.status != 200 else answer.body


def test_a_token_enrols_once_for_exactly_its_names(online: OnlineCA, run_cli) -> None:
    result = run_cli(
        "ca", "token", "robot-7", "--dir", online.dir, "--san", "spiffe://example.org/robot-7"
    )
    assert result.code == 0, result.err
    token = result.out.strip()
    assert len(token) >= 40 and "\n" not in token
    assert "shown only once" in result.err and "URI:spiffe://example.org/robot-7" in result.err
    # Only the hash is stored: the database never holds the token itself.
    assert online.ca.store.token_state(token_hash(token)) == "valid"
    assert token.encode() not in (online.dir / "ca.db").read_bytes()

    csr, _ = openssl_csr(online.work, "robot", "/CN=robot-7", "URI:spiffe://example.org/robot-7")
    status, body = _sign(online, token, csr)
    assert status == 200, body
    assert isinstance(body, bytes)
    leaf = x509.load_pem_x509_certificates(body)[0]
    assert leaf.subject.rfc4514_string() == "CN=robot-7"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/robot-7"
    ]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(hours=24, minutes=5)

    status, error = _sign(online, token, csr)  # the same token again
    assert status == 403
    assert isinstance(error, dict) and error["error"] == "token_used"
    events = [r.event for r in online.ca.store.audit_records()]
    for event in ("token_created", "token_used", "issued", "token_refused"):
        assert event in events


def test_expired_unknown_and_missing_tokens_are_refused(online: OnlineCA) -> None:
    old = datetime.now(UTC) - timedelta(minutes=30)
    token, _, _ = create_token(online.ca, "late", [], ttl=timedelta(minutes=10), now=old)
    csr, _ = openssl_csr(online.work, "late", "/CN=late", "DNS:late")
    status, error = _sign(online, token, csr)
    assert status == 403 and isinstance(error, dict)
    assert error["error"] == "token_expired"
    status, error = _sign(online, "not-a-token", csr)
    assert status == 403 and isinstance(error, dict) and error["error"] == "token_unknown"
    status, error = _sign(online, None, csr)
    assert status == 401 and isinstance(error, dict) and error["error"] == "token_missing"


def test_a_token_cannot_widen_its_names(online: OnlineCA) -> None:
    cases = [
        ("/CN=admin", ("DNS:svc.example.org",)),  # another name
        ("/CN=svc.example.org", ("DNS:svc.example.org", "DNS:admin.example.org")),  # more SANs
    ]
    for subject, sans in cases:
        token, _, allowed = create_token(online.ca, "svc.example.org", [])
        assert allowed == ("DNS:svc.example.org",)  # NAME itself when no --san
        csr, _ = openssl_csr(online.work, "svc", subject, *sans)
        status, error = _sign(online, token, csr)
        assert status == 403 and isinstance(error, dict)
        assert error["error"] == "names_widened", error
        # The token is spent: a refused request does not leave it open for another try.
        assert online.ca.store.token_state(token_hash(token)) == "used"


def test_a_malformed_csr_does_not_spend_the_token(online: OnlineCA) -> None:
    token, _, _ = create_token(online.ca, "svc.example.org", [])
    bad = online.work / "bad.csr"
    bad.write_text("not a csr\n")
    status, error = _sign(online, token, bad)
    assert status == 400 and isinstance(error, dict) and error["error"] == "bad_csr"
    assert online.ca.store.token_state(token_hash(token)) == "valid"


def test_token_refuses_names_that_do_not_parse(run_cli, ca, ca_dir) -> None:
    result = run_cli("ca", "token", "Robot Seven", "--dir", ca_dir)
    assert result.code == 2
    assert "error: 'Robot Seven' is not a DNS name" in result.err
    assert "hint: add --san" in result.err
    result = run_cli("ca", "token", "x", "--dir", ca_dir, "--ttl", "30d")
    assert result.code == 2 and "short-lived" in result.err
