"""The pure mapping: recorded event lists (from real s_server runs) -> nine steps + code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mtlskit.client.codes import FAILURES
from mtlskit.client.trace import TLS13_NOTE, Event, Observation, walk

# Recorded once from real `openssl s_server` runs (events and observations as the probe
# saw them); the expected codes and step statuses were checked by hand.
RECORDED = json.loads((Path(__file__).parent / "data" / "recorded.json").read_text())


def _obs(data: dict[str, Any], **changes: Any) -> Observation:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    fields.update(changes)
    return Observation(**fields)


def _case(name: str) -> tuple[list[Event], dict[str, Any]]:
    case = next(c for c in RECORDED if c["name"] == name)
    return [Event.from_json(e) for e in case["events"]], case["observation"]


@pytest.mark.parametrize("case", RECORDED, ids=[c["name"] for c in RECORDED])
def test_recorded_runs_map_to_their_code_and_steps(case: dict[str, Any]) -> None:
    trace = walk([Event.from_json(e) for e in case["events"]], _obs(case["observation"]))
    assert trace.code == case["code"]
    assert [s.status for s in trace.steps] == case["steps"]
    assert [s.number for s in trace.steps] == list(range(1, 10))
    assert trace.failed_step == FAILURES[case["code"]].step


def test_event_json_round_trips() -> None:
    for case in RECORDED:
        for raw in case["events"]:
            assert Event.from_json(raw).to_json() == raw


def test_tls13_wording_note_only_under_tls13() -> None:
    events, obs = _case("tls13_ok")
    assert walk(events, _obs(obs)).notes == (TLS13_NOTE,)
    events, obs = _case("tls12_ok")
    assert walk(events, _obs(obs)).notes == ()


def test_step_details_name_the_messages() -> None:
    events, obs = _case("tls12_ok")
    steps = walk(events, _obs(obs)).steps
    assert "ServerKeyExchange" in steps[1].detail
    assert "CertificateRequest: 1 acceptable CA name(s)" in steps[2].detail
    assert "CertificateVerify" in steps[3].detail
    events, obs = _case("tls13_ok")
    assert "CertificateVerify" in walk(events, _obs(obs)).steps[1].detail


def test_tls13_required_comes_from_the_post_handshake_alert() -> None:
    events, obs = _case("tls13_no_client_cert")
    assert [e.code for e in events if e.kind == "alert"] == [116]
    trace = walk(events, _obs(obs))
    assert trace.code == "client_cert_required"
    assert "first read" in trace.steps[6].detail
    # without that alert (a server that lets bare clients in) the same run is ok
    quiet = [e for e in events if e.kind != "alert"]
    assert walk(quiet, _obs(obs, after="accepted")).code == "ok"


def test_tls12_handshake_failure_after_empty_certificate_is_required() -> None:
    events, obs = _case("tls12_no_client_cert")
    assert [e.code for e in events if e.kind == "alert"] == [40]
    assert walk(events, _obs(obs)).code == "client_cert_required"


def test_bad_certificate_carries_the_preflight_cause() -> None:
    events, obs = _case("tls13_unknown_ca")
    bad = [
        Event(e.sender, e.kind, "bad_certificate", e.version, 42) if e.kind == "alert" else e
        for e in events
    ]
    trace = walk(bad, _obs(obs, preflight_cause="the issuer was not sent"))
    assert trace.code == "client_cert_bad"
    assert "most likely: the issuer was not sent" in trace.explanation


@pytest.mark.parametrize(
    ("alert", "code"),
    [
        (43, "client_cert_unsupported"),
        (44, "client_cert_revoked"),
        (45, "client_cert_expired"),
        (48, "client_cert_unknown_ca"),
        (116, "client_cert_bad"),
        (80, "handshake_failed"),
    ],
)
def test_server_alerts_after_a_sent_certificate(alert: int, code: str) -> None:
    events, obs = _case("tls13_unknown_ca")
    changed = [
        Event(e.sender, e.kind, "x", e.version, alert) if e.kind == "alert" else e for e in events
    ]
    assert walk(changed, _obs(obs)).code == code


def test_server_failures_come_before_client_ones() -> None:
    events, obs = _case("tls13_unknown_ca")
    for reason, code in [
        ("expired", "server_cert_expired"),
        ("name_mismatch", "server_name_mismatch"),
        ("wrong_purpose", "server_cert_wrong_purpose"),
        ("unknown_issuer", "server_cert_untrusted"),
        ("missing_intermediate", "server_chain_incomplete"),
    ]:
        trace = walk(events, _obs(obs, server_reason=reason, chain_complete=True))
        assert trace.code == code and trace.steps[4].status == "failed"
    incomplete = walk(events, _obs(obs, server_reason="unknown_issuer", chain_complete=False))
    assert incomplete.code == "server_chain_incomplete"


def test_failures_before_any_server_message() -> None:
    hello = [Event("client", "handshake", "ClientHello", "TLSv1.3")]
    assert walk([], Observation(connect="refused")).code == "connection_refused"
    assert walk([], Observation(connect="timeout")).code == "timeout"
    assert walk(hello, Observation(handshake_timeout=True)).code == "timeout"
    not_tls = walk(hello, Observation(handshake_error="WRONG_VERSION_NUMBER"))
    assert not_tls.code == "not_tls" and not_tls.steps[0].status == "ok"
    assert walk(hello, Observation(handshake_error="EOF")).code == "not_tls"
    version = walk(
        [*hello, Event("server", "alert", "protocol_version", "TLSv1.2", 70)],
        Observation(handshake_error="TLSV1_ALERT_PROTOCOL_VERSION"),
    )
    assert version.code == "protocol_version_mismatch"
    refused = walk([], Observation(connect="refused"))
    assert refused.steps[0].status == "failed"
    assert {s.status for s in refused.steps[1:]} == {"not_reached"}


def test_http_403_is_access_denied_with_the_reason() -> None:
    events, obs = _case("tls13_ok")
    trace = walk(events, _obs(obs, http_status=403, http_reason="no allow rule matched"))
    assert trace.code == "access_denied" and trace.failed_step == 9
    assert "no allow rule matched" in trace.explanation
    assert "HTTP 403" in trace.steps[8].detail
    assert walk(events, _obs(obs, http_status=200)).code == "ok"


def test_every_code_has_a_meaning_and_a_fix() -> None:
    for failure in FAILURES.values():
        assert failure.meaning and failure.fix and 0 <= failure.step <= 9


def test_docs_list_every_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| [-0-9]+ \|", doc, flags=re.MULTILINE))
    assert documented == set(FAILURES)
