"""`mtlskit kyma render` and `mtlskit kyma check`: files in, manifests or findings out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mtlskit.errors import ConfigError

__all__ = ["cmd_check", "cmd_render", "parse_service", "register"]


def register(groups: Any) -> None:
    """Add `mtlskit kyma render` and `mtlskit kyma check`."""
    group = groups.add_parser(
        "kyma",
        help="export the gateway's setup to Kyma/Istio manifests, and lint manifests",
        description="Kyma's 'Configure an mTLS Gateway' procedure as files you can apply.",
    )
    sub = group.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    render = sub.add_parser(
        "render",
        help="render the Secret, Certificate, Gateway, APIRule and AuthorizationPolicy",
        description="Render the manifests that expose the workload behind this gateway "
        "through a Kyma mTLS Gateway: routes become APIRule rules and DENY policy rules, "
        'client_auth = "optional" an OPTIONAL_MUTUAL server, each [[server]] its own '
        "Gateway server, Secrets, APIRule and policy. Rules Istio cannot express are denied "
        "there and named in a warning (stderr and YAML comments).",
    )
    render.add_argument("--config", required=True, metavar="FILE", help="the gateway's TOML")
    render.add_argument("--domain", required=True, help="hosts are *.DOMAIN")
    render.add_argument("--namespace", required=True, metavar="NS", help="the workload's")
    render.add_argument(
        "--service",
        metavar="NAME:PORT",
        help="the Service to expose (default: the upstream's host and port when it is a name)",
    )
    render.add_argument(
        "--server-cert",
        choices=["acme", "files"],
        default="acme",
        help="acme: a Gardener Certificate from Let's Encrypt (default); files: a "
        "kubernetes.io/tls Secret from the gateway's tls.cert and tls.key",
    )
    render.add_argument(
        "--app-protocol",
        choices=["grpc", "http2"],
        help="for an h2c upstream: the Service port's name and appProtocol, so that Istio "
        "speaks HTTP/2 to the workload (default grpc)",
    )
    render.add_argument("--host", metavar="LABEL", help="exposed host LABEL.DOMAIN")
    render.add_argument("--dns-target", metavar="ADDR", help="also render a Gardener DNSEntry")
    render.add_argument("--gateway-name", default="kyma-mtls-gateway", metavar="NAME")
    render.add_argument("--credential-name", default="kyma-mtls-certs", metavar="NAME")
    render.add_argument(
        "--out",
        metavar="PATH",
        help="FILE.yaml for one stream, or a directory for one file per object (default stdout)",
    )
    render.add_argument("--force", action="store_true", help="overwrite existing files")
    render.set_defaults(handler=cmd_render)
    check = sub.add_parser(
        "check",
        help="lint manifests for the known mTLS pitfalls",
        description="Read YAML manifests (files or directories) together and report each "
        "pitfall with its severity, what, why and fix. Exit 1 when there is an error (with "
        "--strict: an error or a warning), else 0; notes never fail.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="YAML files or directories")
    check.add_argument(
        "--strict",
        action="store_true",
        help="fail on warnings too (a credential not in the files, a deprecated form)",
    )
    check.add_argument(
        "--ingress-namespace",
        default="istio-system",
        metavar="NS",
        help="where the ingress gateway runs and reads its Secrets (default istio-system)",
    )
    check.set_defaults(handler=cmd_check)


def parse_service(text: str) -> tuple[str, int]:
    """Read --service NAME:PORT.

    Raises:
        ConfigError: not NAME:PORT.
    """
    name, sep, port = text.rpartition(":")
    if not sep or not name or not port.isdigit():
        raise ConfigError(f"--service {text!r} is not NAME:PORT", "e.g. --service orders:8080")
    return name, int(port)


def _default_service(upstream: Any) -> tuple[str, int]:
    host = str(getattr(upstream, "host", ""))
    if upstream.scheme == "unix" or not host or host == "localhost" or host[0].isdigit():
        raise ConfigError(
            f"the upstream {upstream} is not a Service name",
            "give the Service to expose with --service NAME:PORT",
        )
    return host.split(".")[0], int(upstream.port)


def cmd_render(args: argparse.Namespace) -> int:
    """kyma render."""
    from mtlskit.config import load_gateway_config, read_toml
    from mtlskit.export import (
        KymaInputs,
        KymaOptions,
        ServerInputs,
        object_file_names,
        render_kyma,
        to_yaml,
    )
    from mtlskit.pki.files import CRL_MAX_BYTES, OutputFile, read_file, write_files

    def crls(paths: tuple[Path, ...], where: str) -> tuple[bytes, ...]:
        return tuple(read_file(p, f"a CRL ({where})", max_bytes=CRL_MAX_BYTES) for p in paths)

    path = Path(args.config)
    config = load_gateway_config(read_toml(path), base_dir=path.parent)
    service, port = (
        parse_service(args.service) if args.service else _default_service(config.upstream)
    )
    files = args.server_cert == "files"
    inputs = KymaInputs(
        client_ca_pem=read_file(config.tls.client_ca, "the client CA (tls.client_ca)"),
        server_chain_pem=read_file(config.tls.cert, "the server chain") if files else None,
        server_key_pem=read_file(config.tls.key, "the server key") if files else None,
        servers=tuple(
            ServerInputs(
                client_ca_pem=read_file(s.client_ca, f"server[{i}]'s client CA (client_ca)"),
                chain_pem=read_file(s.chain_path, f"server[{i}]'s chain (cert)"),
                key_pem=read_file(s.key_path, f"server[{i}]'s key (key)"),
                crl=crls(s.crl, f"server[{i}].crl"),
            )
            for i, s in enumerate(config.server, 1)
        ),
        crl=crls(config.tls.crl, "tls.crl"),
    )
    options = KymaOptions(
        domain=args.domain,
        namespace=args.namespace,
        service=service,
        service_port=port,
        host=args.host or "",
        server_cert=args.server_cert,
        gateway_name=args.gateway_name,
        credential_name=args.credential_name,
        dns_target=args.dns_target,
        app_protocol=args.app_protocol,
    )
    export = render_kyma(config, options, inputs)
    for warning in export.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = to_yaml(export.objects, export.warnings)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    # Secrets inside: written 0600 like keys.
    if out.suffix in (".yaml", ".yml"):
        written = write_files([OutputFile(out, text.encode(), 0o600)], force=args.force)
    else:
        out.mkdir(parents=True, exist_ok=True)
        written = write_files(
            [
                OutputFile(out / name, body.encode(), 0o600)
                for name, body in object_file_names(export.objects, export.warnings)
            ],
            force=args.force,
        )
    for item in written:
        print(f"wrote {item}")
    return 0


def _yaml_files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml", ".json"))
        else:
            found.append(p)
    return found


def cmd_check(args: argparse.Namespace) -> int:
    """kyma check."""
    import yaml

    from mtlskit.export import check_manifests
    from mtlskit.export.check import SEVERITIES, failing
    from mtlskit.pki.files import read_file

    docs: list[tuple[str, Any]] = []
    for path in _yaml_files(args.files):
        # One object is at most about 1.5 MiB (etcd's request limit), but a file may hold a
        # whole `helm template` or `kubectl get -o yaml` dump: a few MB, rarely tens.
        text = read_file(path, "Kubernetes manifests (YAML)", max_bytes=64 * 1024 * 1024)
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}", "fix the YAML syntax") from exc
        docs += [(f"{path}#{i}", doc) for i, doc in enumerate(loaded, 1) if doc is not None]
    findings = check_manifests(docs, ingress_namespace=args.ingress_namespace)
    for f in findings:
        print(f"{f.source}: {f.severity}: {f.obj}: [{f.code}] {f.what}")
        print(f"  why: {f.why}")
        print(f"  fix: {f.fix}")
    objects = len(docs)
    if not findings:
        print(f"ok: no known pitfall in {objects} object(s)")
        return 0
    counts = ", ".join(
        f"{n} {sev}(s)" for sev in SEVERITIES if (n := sum(f.severity == sev for f in findings))
    )
    failed = failing(findings, strict=args.strict)
    if failed:
        print(f"{len(findings)} finding(s) in {objects} object(s): {counts}")
        return 1
    failing_kinds = "errors or warnings" if args.strict else "errors (--strict: warnings too)"
    print(f"ok: no {failing_kinds} in {objects} object(s); {counts}")
    return 0
