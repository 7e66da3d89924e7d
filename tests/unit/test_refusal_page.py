"""401/403 bodies for people and programs (issue 15): escaped HTML, JSON, gRPC status."""

from __future__ import annotations

import json

import pytest

from mtlskit.gateway.refusal_page import Refusal, negotiate, render

EVIL = Refusal(
    403,
    "route admin: no allow rule matched the client certificate",
    ca_names=("CN=Corp <Issuing> CA",),
    presented='CN=<script>alert("x")</script>',
    why="its OU is not <b>ops</b>",
    route="admin",
)


@pytest.mark.parametrize(
    ("accept", "content_type", "kind"),
    [
        ("text/html,application/xhtml+xml,*/*;q=0.8", "", "html"),
        ("application/json", "", "json"),
        ("*/*", "", "json"),
        ("", "application/grpc+proto", "grpc"),
        ("text/html", "application/grpc", "grpc"),
    ],
)
def test_the_format_follows_accept_and_content_type(
    accept: str, content_type: str, kind: str
) -> None:
    assert negotiate(accept, content_type) == kind


def test_html_escapes_everything_the_client_chose_and_says_how_to_install_the_p12() -> None:
    fields, body = render(EVIL, "html")
    page = body.decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>ops</b>" not in page and "<Issuing>" not in page
    assert "NAME.p12" in page and "Firefox" in page and "Chrome" in page
    assert "route admin" in page
    assert ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'") in fields
    assert ("content-type", "text/html; charset=utf-8") in fields


def test_json_names_the_route_the_cas_and_the_certificate() -> None:
    fields, body = render(EVIL, "json")
    data = json.loads(body)
    assert data["error"] == "forbidden" and data["route"] == "admin"
    assert data["accepted_ca_names"] == ["CN=Corp <Issuing> CA"]
    assert data["presented_certificate"].startswith("CN=<script>")  # JSON-escaped, not HTML
    assert ("content-type", "application/json") in fields


def test_401_says_no_certificate_and_carries_a_challenge() -> None:
    fields, body = render(Refusal(401, "route api needs a client certificate"), "json")
    assert json.loads(body)["error"] == "client_certificate_required"
    assert json.loads(body)["presented_certificate"] is None
    assert any(k == "www-authenticate" for k, _ in fields)
    _, page = render(Refusal(401, "needed"), "html")
    assert b"presented no certificate" in page


@pytest.mark.parametrize(("status", "code"), [(401, "16"), (403, "7")])
def test_grpc_gets_a_status_not_a_page(status: int, code: str) -> None:
    fields, body = render(Refusal(status, "route rpc: 100% refused"), "grpc")
    assert body == b""
    assert ("grpc-status", code) in fields
    assert ("grpc-message", "route rpc: 100%25 refused") in fields
