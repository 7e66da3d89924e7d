"""`mtlskit gateway` start-up faults (issue 10): one `error:` line, a `hint:`, exit 2.

Each case here used to end in a traceback, a hang or a silently wrong value. The server
is replaced by what it does before it listens (read every file: load_state), so a
regression fails the exit-code assertion at once instead of serving forever (pytest's
timeout cannot stop a running uvloop: the loop logs the exception and carries on).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import mtlskit.gateway.run
from mtlskit.config import GatewayConfig
from mtlskit.gateway.state import load_state
from tests.gateway.harness import PKI, gateway_argv, make_pki

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(Path(tmp_path_factory.mktemp("faultpki")))


@pytest.fixture(autouse=True)
def started(monkeypatch: pytest.MonkeyPatch) -> list[GatewayConfig]:
    """Stop `mtlskit gateway` short of listening; the configs that got that far."""
    configs: list[GatewayConfig] = []

    def start_up_only(config: GatewayConfig) -> int:
        load_state(config, datetime.now(UTC))  # the gateway's first step: read every file
        configs.append(config)
        return 0

    monkeypatch.setattr(mtlskit.gateway.run, "run_gateway_process", start_up_only)
    return configs


def _gateway(run_cli, pki: PKI, *extra: str | Path, **replace: str | Path):
    return run_cli(*gateway_argv(pki, *extra, **replace))


def _one_error(result, *needles: str) -> None:
    """Exit 2, `error:` first, a `hint:` line, the needles named, and no traceback."""
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 2, result.err
    assert lines[0].startswith("error: "), result.err
    assert lines[1].startswith("hint: "), result.err
    for needle in needles:
        assert needle in result.err, (needle, result.err)


def test_the_base_command_line_is_accepted(run_cli, pki: PKI, started: list[GatewayConfig]) -> None:
    # The faults below change one flag each; this proves the rest is a valid start-up.
    r = _gateway(run_cli, pki)
    assert r.code == 0, r.err
    assert len(started) == 1


# -- addresses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("upstream", "needle"),
    [
        ("http://127.0.0.1:99999", "port 99999 is out of range"),
        ("tcp://127.0.0.1:65536", "port 65536 is out of range"),
        ("http://[::1]:99999", "port 99999 is out of range"),
        ("http://127.0.0.1:abc", "port 'abc' is not a number"),
        ("http://[::1:8080", "is not a URL"),  # urlsplit's own ValueError
    ],
)
def test_upstream_port_out_of_range(
    run_cli, pki: PKI, started: list[GatewayConfig], upstream: str, needle: str
) -> None:
    # urllib's .port raised ValueError here: a traceback.
    r = _gateway(run_cli, pki, upstream=upstream)
    _one_error(r, "--upstream", upstream, needle)
    assert not started


@pytest.mark.parametrize("upstream", ["http://127.0.0.1:0", "tcp://127.0.0.1:0"])
def test_upstream_port_zero(run_cli, pki: PKI, started: list[GatewayConfig], upstream: str) -> None:
    # http://host:0 silently became port 80 (0 is falsy); nothing listens on port 0.
    r = _gateway(run_cli, pki, upstream=upstream)
    _one_error(r, "--upstream", upstream, "port 0")
    assert not started


@pytest.mark.parametrize(("flag", "value"), [("listen", "127.0.0.1:99999"), ("status", ":70000")])
def test_listen_and_status_port_out_of_range(
    run_cli, pki: PKI, started: list[GatewayConfig], flag: str, value: str
) -> None:
    r = _gateway(run_cli, pki, **{flag: value})
    _one_error(r, f"--{flag}", value, "out of range")
    assert not started


# -- the config file ---------------------------------------------------------------------------
def test_config_naming_a_directory(run_cli, pki: PKI, tmp_path: Path) -> None:
    # read_toml let IsADirectoryError through: a traceback.
    r = _gateway(run_cli, pki, config=tmp_path)
    _one_error(r, "--config", str(tmp_path), "is a directory")


def test_config_under_a_file_is_not_a_traceback(run_cli, pki: PKI, tmp_path: Path) -> None:
    # NotADirectoryError is an OSError read_toml did not catch (and, unlike a permission
    # error, it also happens to root).
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "gw.toml"
    r = _gateway(run_cli, pki, config=path)
    _one_error(r, "--config", str(path), "cannot read")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_config_unreadable(run_cli, pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('listen = "127.0.0.1:0"\n')
    path.chmod(0)
    r = _gateway(run_cli, pki, config=path)
    _one_error(r, "--config", str(path), "cannot read")


def test_config_that_is_not_utf8(run_cli, pki: PKI, tmp_path: Path) -> None:
    # e.g. a DER certificate given as --config: tomllib raised UnicodeDecodeError.
    path = tmp_path / "gw.toml"
    path.write_bytes(b'listen = "\xff"\n')
    r = _gateway(run_cli, pki, config=path)
    _one_error(r, "--config", str(path), "UTF-8")


# -- certificate and key files -----------------------------------------------------------------
# These errors name the file and what belongs there (tlsconfig.py says which), not the flag.
@pytest.mark.timeout(10)  # before the fix, opening the FIFO waited for a writer forever
def test_cert_naming_a_fifo(run_cli, pki: PKI, tmp_path: Path) -> None:
    fifo = tmp_path / "chain.pem"
    os.mkfifo(fifo)
    r = _gateway(run_cli, pki, cert=fifo)
    _one_error(r, str(fifo), "is a FIFO", "the server certificate chain")


def test_key_naming_a_device(run_cli, pki: PKI) -> None:
    # /dev/null rather than /dev/zero: before the fix /dev/zero was read until memory ran
    # out. tests/unit/test_files_and_pem.py covers /dev/zero against read_file itself.
    r = _gateway(run_cli, pki, key="/dev/null")
    _one_error(r, "/dev/null", "is a character device", "the server private key")


def test_cert_over_the_size_limit(run_cli, pki: PKI, tmp_path: Path) -> None:
    # A real chain padded to 2 MiB: it loads, so only the size can refuse it.
    big = tmp_path / "chain.pem"
    chain = pki["server.chain.pem"].read_bytes()
    big.write_bytes(chain + b"\n" * (2 * MiB - len(chain)))
    r = _gateway(run_cli, pki, cert=big)
    _one_error(r, str(big), "2097152 bytes", "1 MiB limit", "the server certificate chain")


# -- limits ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "key", "minimum"),
    [
        ("max_header_bytes", "limits.max_header_bytes", "1024"),
        ("max_connections", "limits.max_connections", "1"),
        ("backlog", "limits.backlog", "1"),
    ],
)
def test_zero_limits_as_flags(
    run_cli, pki: PKI, started: list[GatewayConfig], flag: str, key: str, minimum: str
) -> None:
    # 0 was accepted: the gateway started and then refused every request or connection.
    r = _gateway(run_cli, pki, **{flag: "0"})
    _one_error(r, key, "--" + flag.replace("_", "-"), f"at least {minimum}")
    assert not started


@pytest.mark.parametrize(
    ("key", "value", "minimum"),
    [
        ("max_header_bytes", 0, "1024"),
        ("max_header_bytes", 100, "1024"),
        ("max_connections", 0, "1"),
        ("backlog", 0, "1"),
    ],
)
def test_zero_limits_in_toml(
    run_cli,
    pki: PKI,
    started: list[GatewayConfig],
    tmp_path: Path,
    key: str,
    value: int,
    minimum: str,
) -> None:
    toml = tmp_path / "gw.toml"
    toml.write_text(f"[limits]\n{key} = {value}\n")
    r = _gateway(run_cli, pki, config=toml)
    _one_error(r, f"limits.{key}", f"at least {minimum}", f"not {value}")
    assert not started
