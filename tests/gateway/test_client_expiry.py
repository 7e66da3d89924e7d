"""Client certificates' remaining lifetime: the histogram, and one `client_expiring` warning."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtlskit.demo.echo import EchoServer
from mtlskit.gateway import expiry
from mtlskit.gateway.expiry import observe_client
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.metrics import Metrics
from mtlskit.identity import PeerIdentity
from tests.gateway.harness import config_for, running_gateway
from tests.integration.peers import curl
from tests.opensslpki import CA_EXT, CLIENT_EXT, OpenSSLPKI, server_ext

HISTOGRAM = "mtlskit_client_certificate_remaining_seconds"
WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> OpenSSLPKI:
    """With the openssl command: a root, a server, and clients with 2, 6 and 60 days left."""
    pki = OpenSSLPKI(Path(tmp_path_factory.mktemp("expiry")))
    root = pki.root("expiry-root", ext=CA_EXT)
    pki.issue("localhost", root, ext=server_ext("localhost", "127.0.0.1"))
    for name, days in (("soon", 2), ("week", 6), ("months", 60)):
        pki.issue(name, root, ext=CLIENT_EXT, days=days)
    return pki


def _identity(pki: OpenSSLPKI, name: str) -> PeerIdentity:
    cert = (pki.dir / f"{name}.crt").read_bytes()
    return PeerIdentity.from_der(x509.load_pem_x509_certificate(cert).public_bytes(Encoding.DER))


def _events(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def _bucket(metrics: Metrics, le: str) -> float:
    value = metrics.registry.get_sample_value(f"{HISTOGRAM}_bucket", {"le": le})
    assert value is not None
    return value


def test_each_connection_is_observed_in_day_buckets(made: OpenSSLPKI) -> None:
    metrics, log = Metrics(), io.StringIO()
    events = EventLog(log, fmt="json")
    now = datetime.now(UTC)
    for name in ("soon", "week", "months", "months", "months"):
        observe_client(metrics, events, _identity(made, name), now, WEEK, "127.0.0.1:5000")
    assert _bucket(metrics, "3600.0") == 0
    assert _bucket(metrics, "86400.0") == 0
    assert _bucket(metrics, "604800.0") == 2  # soon (2d) and week (6d)
    assert _bucket(metrics, "2.592e+06") == 2  # 30d (labels as Prometheus prints them)
    assert _bucket(metrics, "7.776e+06") == 5  # 90d
    assert _bucket(metrics, "3.1536e+07") == 5  # 1y
    assert _bucket(metrics, "+Inf") == 5
    assert metrics.registry.get_sample_value(f"{HISTOGRAM}_count") == 5
    total = metrics.registry.get_sample_value(f"{HISTOGRAM}_sum")
    assert total is not None and 187 * 86400 < total <= 188 * 86400  # 2 + 6 + 3 x 60 days
    assert HISTOGRAM in metrics.render().decode()


def test_a_client_expiring_soon_is_warned_about_once_per_certificate(made: OpenSSLPKI) -> None:
    metrics, log = Metrics(), io.StringIO()
    events = EventLog(log, fmt="json")
    now = datetime.now(UTC)
    soon = _identity(made, "soon")
    for _ in range(3):  # a client that reconnects
        observe_client(metrics, events, soon, now, WEEK, "127.0.0.1:5000")
    observe_client(metrics, events, _identity(made, "months"), now, WEEK, "127.0.0.1:5001")
    lines = _events(log)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["event"] == "client_expiring" and line["level"] == "warning"
    assert line["subject"] == "CN=soon" and line["serial"] == soon.serial
    assert line["client"] == "127.0.0.1:5000"
    assert 1.9 < line["days_left"] <= 2.0
    assert line["not_after"] == f"{soon.not_after:%Y-%m-%dT%H:%M:%SZ}"
    assert "renew" in line["fix"] and "mtlskit renew" in line["fix"]
    assert "CN=soon" in line["msg"] and "expires in 1d 23h" in line["msg"]
    # another gateway (another Metrics) in the same process warns on its own
    other = io.StringIO()
    observe_client(Metrics(), EventLog(other, fmt="json"), soon, now, WEEK, "127.0.0.1:5002")
    assert [e["event"] for e in _events(other)] == ["client_expiring"]


def test_the_window_is_the_configured_one_and_zero_turns_it_off(made: OpenSSLPKI) -> None:
    now = datetime.now(UTC)
    week = _identity(made, "week")  # 6 days left
    for window, warned in ((timedelta(days=5), False), (WEEK, True), (timedelta(0), False)):
        log = io.StringIO()
        observe_client(Metrics(), EventLog(log, fmt="json"), week, now, window, "c")
        assert bool(log.getvalue()) is warned, window


def test_text_log_line(made: OpenSSLPKI) -> None:
    log = io.StringIO()
    soon = _identity(made, "soon")
    observe_client(Metrics(), EventLog(log), soon, datetime.now(UTC), WEEK, "127.0.0.1:9")
    text = log.getvalue()
    assert "WARNING client_expiring: client certificate CN=soon" in text
    assert f"serial={soon.serial}" in text and "days_left=" in text


def test_the_warned_set_is_bounded(made: OpenSSLPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expiry, "WARNED_LIMIT", 1)
    metrics, log = Metrics(), io.StringIO()
    events = EventLog(log, fmt="json")
    now = datetime.now(UTC)
    soon, week = _identity(made, "soon"), _identity(made, "week")
    for identity in (soon, week, soon):  # the set holds one: soon is forgotten, warned again
        observe_client(metrics, events, identity, now, WEEK, "c")
    assert [e["subject"] for e in _events(log)] == ["CN=soon", "CN=week", "CN=soon"]


# -- through the real gateway ---------------------------------------------------------------
# For the lead: Gateway._verified (gateway/server.py) must call, after admission succeeded,
#     observe_client(self.metrics, self.log, admission.identity, now,
#                    self.config.limits.client_expiry_warning, _client(stream.peer))
# This test enables itself once server.py calls observe_client.
def test_the_gateway_warns_about_and_measures_its_clients(made: OpenSSLPKI) -> None:
    d = made.dir
    with EchoServer() as echo:
        config = config_for(
            d / "localhost.crt",
            d / "localhost.key",
            d / "expiry-root.crt",
            echo.url,
            {"allow_all": True},
            log_format="json",
        )
        with running_gateway(config) as gw:
            for name in ("soon", "soon", "months"):
                got = curl(
                    "--cacert",
                    d / "expiry-root.crt",
                    "--cert",
                    d / f"{name}.crt",
                    "--key",
                    d / f"{name}.key",
                    f"https://localhost:{gw.port}/",
                )
                assert got.returncode == 0, got.stderr
            line = json.loads(gw.wait_for_log('"client_expiring"'))
            metrics = gw.gateway.metrics
            count = gw.call(lambda: metrics.registry.get_sample_value(f"{HISTOGRAM}_count"))
            week = gw.call(
                lambda: metrics.registry.get_sample_value(f"{HISTOGRAM}_bucket", {"le": "604800.0"})
            )
            warned = [x for x in gw.lines() if "client_expiring" in x]
    assert line["subject"] == "CN=soon" and "renew" in line["fix"]
    assert len(warned) == 1  # soon connected twice, warned once; months not at all
    assert count == 3 and week == 2
