"""kyma render for h2c (gRPC) upstreams: the Service port Istio needs to speak HTTP/2 to them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlskit.config import load_gateway_config, read_toml
from mtlskit.export import ExportError, KymaInputs, KymaOptions, render_kyma, to_yaml

from .conftest import Demo, write_gateway_toml
from .validate import assert_valid

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MTLSKIT_UPDATE_GOLDEN") == "1"
_B64_LINE = re.compile(r"^(\s+(?:cacert|tls\.crt|tls\.key): )[A-Za-z0-9+/=]{16,}$", re.M)
POLICY = 'allow_uri = ["spiffe://example.org/ns/shop/sa/web"]'


def _render(demo: Demo, upstream: str, extra: str = "", **options: Any) -> Any:
    toml = write_gateway_toml(demo.dir, policy=POLICY, upstream=upstream, extra=extra)
    config = load_gateway_config(read_toml(toml), base_dir=toml.parent)
    settings: dict[str, Any] = {
        "domain": "mtls.example.com",
        "namespace": "shop",
        "service": "orders",
        "service_port": 9000,
    }
    inputs = KymaInputs(demo.client_ca.read_bytes())
    return render_kyma(config, KymaOptions(**(settings | options)), inputs)


def _services(export: Any) -> list[dict[str, Any]]:
    return [o for o in export.objects if o["kind"] == "Service"]


def test_golden_grpc(demo: Demo) -> None:
    export = _render(demo, "h2c://orders.shop:9000")
    text = _B64_LINE.sub(r"\1<base64>", to_yaml(export.objects, export.warnings))
    golden = GOLDEN / "h2c-grpc.yaml"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"re-run with MTLSKIT_UPDATE_GOLDEN=1 to see {golden}"


@pytest.mark.parametrize("app_protocol", [None, "grpc", "http2"])
def test_h2c_upstream_gets_a_named_service_port_with_app_protocol(
    demo: Demo, app_protocol: str | None
) -> None:
    export = _render(demo, "h2c://orders.shop:9000", app_protocol=app_protocol)
    (service,) = _services(export)
    expected = app_protocol or "grpc"
    assert service["metadata"] == {"name": "orders", "namespace": "shop"}
    assert service["spec"] == {
        "ports": [{"name": expected, "port": 9000, "protocol": "TCP", "appProtocol": expected}]
    }
    # No selector: merged into the workload's Service, it never changes the pods it picks;
    # no labels: it claims no ownership of a Service a chart manages.
    assert "selector" not in service["spec"] and "labels" not in service["metadata"]
    # Before the APIRule that routes to it, and the APIRule names the same Service and port.
    kinds = [o["kind"] for o in export.objects]
    assert kinds.index("Service") < kinds.index("APIRule")
    (rule,) = (o for o in export.objects if o["kind"] == "APIRule")
    assert rule["spec"]["service"] == {"name": "orders", "port": 9000}
    for obj in export.objects:
        assert_valid(obj)


def test_unix_upstream_speaking_h2c_gets_the_service_port_too(demo: Demo) -> None:
    export = _render(demo, "unix:/run/orders.sock", extra='upstream_protocol = "h2c"')
    (service,) = _services(export)
    assert service["spec"]["ports"][0]["appProtocol"] == "grpc"


@pytest.mark.parametrize(
    ("upstream", "extra"),
    [("http://orders.shop:9000", ""), ("unix:/run/orders.sock", 'upstream_protocol = "http/1.1"')],
)
def test_http1_upstream_renders_no_service(demo: Demo, upstream: str, extra: str) -> None:
    assert _services(_render(demo, upstream, extra)) == []


def test_app_protocol_with_an_http1_upstream_is_refused(demo: Demo) -> None:
    with pytest.raises(ExportError, match=r"--app-protocol grpc with an HTTP/1\.1 upstream") as exc:
        _render(demo, "http://orders.shop:9000", app_protocol="grpc")
    assert exc.value.hint and "h2c://" in exc.value.hint


def test_the_yaml_says_how_the_service_is_applied(demo: Demo) -> None:
    text = to_yaml(_render(demo, "h2c://orders.shop:9000").objects)
    service = next(d for d in text.split("---\n") if "kind: Service\n" in d)
    assert re.search(r"^  # kubectl apply merges this.*\n(?:  #.*\n)+  ports:$", service, re.M)
    assert "add the selector" in service


def test_cli_render_of_an_h2c_upstream_passes_kyma_check_strict(
    demo: Demo, kyma_cli: Any, tmp_path: Path
) -> None:
    toml = write_gateway_toml(demo.dir, policy=POLICY, upstream="h2c://orders.shop:9000")
    out = tmp_path / "kyma.yaml"
    argv = ["kyma", "render", "--config", toml, "--domain", "mtls.example.com"]
    result = kyma_cli(*argv, "--namespace", "shop", "--app-protocol", "http2", "--out", out)
    assert result.code == 0, result.err
    docs = list(yaml.safe_load_all(out.read_text()))
    (service,) = (d for d in docs if d["kind"] == "Service")
    # --service defaults to the upstream's host and port
    assert (service["metadata"]["name"], service["spec"]["ports"][0]["port"]) == ("orders", 9000)
    assert service["spec"]["ports"][0]["appProtocol"] == "http2"
    checked = kyma_cli("kyma", "check", "--strict", out)
    assert checked.code == 0, checked.out
    assert checked.out.startswith("ok: no known pitfall")


def test_cli_refuses_app_protocol_for_an_http1_upstream(demo: Demo, kyma_cli: Any) -> None:
    toml = write_gateway_toml(demo.dir, policy=POLICY, upstream="http://orders.shop:9000")
    argv = ["kyma", "render", "--config", toml, "--domain", "mtls.example.com"]
    result = kyma_cli(*argv, "--namespace", "shop", "--app-protocol", "grpc")
    assert result.code == 2
    assert result.err.startswith("error: --app-protocol grpc with an HTTP/1.1 upstream")
    assert "\nhint: " in result.err and "Traceback" not in result.err
