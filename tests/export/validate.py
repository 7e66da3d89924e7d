"""Validate rendered objects: vendored CRD schemas (+ their CEL rules), kubernetes-validate."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

SCHEMAS = Path(__file__).parent / "schemas"
KUBERNETES_VERSION = "1.33"
BY_KIND = {
    ("networking.istio.io/v1", "Gateway"): "networking.istio.io_v1_Gateway.schema.json",
    ("gateway.kyma-project.io/v2", "APIRule"): "gateway.kyma-project.io_v2_APIRule.schema.json",
    ("cert.gardener.cloud/v1alpha1", "Certificate"): (
        "cert.gardener.cloud_v1alpha1_Certificate.schema.json"
    ),
    ("dns.gardener.cloud/v1alpha1", "DNSEntry"): "dns.gardener.cloud_v1alpha1_DNSEntry.schema.json",
    ("security.istio.io/v1", "AuthorizationPolicy"): (
        "security.istio.io_v1_AuthorizationPolicy.schema.json"
    ),
}
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _count(*present: bool) -> int:
    return sum(1 for p in present if p)


# Each CEL rule in the vendored schemas, translated by hand. Keys are the rule text with
# whitespace collapsed. A rule missing here makes validation fail (see _cel).
CEL: dict[str, Callable[[Any], bool]] = {
    "(has(self.tlsCertificates) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1": (
        lambda s: _count("tlsCertificates" in s, "credentialNames" in s) <= 1
    ),
    "(has(self.credentialName) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1": (
        lambda s: _count("credentialName" in s, "credentialNames" in s) <= 1
    ),
    "(has(self.credentialNames) ? 1 : 0) + (has(self.tlsCertificates) ? 1 : 0) <= 1": (
        lambda s: _count("credentialNames" in s, "tlsCertificates" in s) <= 1
    ),
    "((has(self.extAuth)?1:0)+(has(self.jwt)?1:0)+((has(self.noAuth)&&self.noAuth==true)?1:0))==1": (  # noqa: E501
        lambda s: _count("extAuth" in s, "jwt" in s, s.get("noAuth") is True) == 1
    ),
    '!self.contains("*")': lambda s: "*" not in s,
    'self.all(key, !key.contains("*"))': lambda s: all("*" not in k for k in s),
    "self.all(key, key.size() != 0)": lambda s: all(k for k in s),
    "self.size() == 0": lambda s: len(s) == 0,
    "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) && "
    "!has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true": (
        lambda s: (
            not ("serviceAccounts" in s or "notServiceAccounts" in s)
            or not any(
                k in s for k in ("principals", "notPrincipals", "namespaces", "notNamespaces")
            )
        )
    ),
    "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : "
    "0) <= 1": lambda s: _count("selector" in s, "targetRef" in s, "targetRefs" in s) <= 1,
}
_MATCHES = re.compile(r"self\.matches\('((?:[^'\\]|\\.)*)'\)")


def _cel(rule: str) -> Callable[[Any], bool]:
    text = " ".join(rule.split())
    if text in CEL:
        return CEL[text]
    match = _MATCHES.fullmatch(text)
    if match:  # CEL matches() is RE2, unanchored: the patterns here anchor themselves
        pattern = re.sub(r"\\(.)", r"\1", match.group(1))
        return lambda s: re.search(pattern, s) is not None
    raise AssertionError(f"CEL rule not translated in tests/export/validate.py: {rule!r}")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def _walk(schema: dict[str, Any], value: Any, where: str, errors: list[str]) -> None:
    """Evaluate CEL rules and report fields the API server would prune."""
    for rule in schema.get("x-kubernetes-validations", []):
        if not _cel(rule["rule"])(value):
            errors.append(f"{where}: CEL rule failed: {rule['message']}")
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for key, item in value.items():
            if props is not None and key in props:
                _walk(props[key], item, f"{where}.{key}", errors)
            elif isinstance(extra, dict):
                _walk(extra, item, f"{where}.{key}", errors)
            elif not preserve and props is not None:
                errors.append(f"{where}.{key}: unknown field (the API server would drop it)")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{where}[{i}]", errors)


def _metadata(meta: Any, errors: list[str]) -> None:
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        errors.append("metadata.name is missing")
        return
    if len(meta["name"]) > 253 or not _SUBDOMAIN.fullmatch(meta["name"]):
        errors.append(f"metadata.name {meta['name']!r} is not an RFC 1123 subdomain")
    if not _LABEL.fullmatch(str(meta.get("namespace", ""))):
        errors.append(f"metadata.namespace {meta.get('namespace')!r} is not an RFC 1123 label")
    for key in ("labels", "annotations"):
        if not all(isinstance(v, str) for v in (meta.get(key) or {}).values()):
            errors.append(f"metadata.{key} values must be strings")


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Every problem with one object; empty when the API server would accept it."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in BY_KIND:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [str(exc).splitlines()[0]]
        except kubernetes_validate.SchemaNotFoundError:
            return [f"no schema for {key}: vendor one into tests/export/schemas"]
        return []
    schema = load_schema(BY_KIND[key])
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(obj)
    ]
    _metadata(obj.get("metadata"), errors)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    _walk(schema, body, key[1] or "", errors)
    return errors


def assert_valid(obj: dict[str, Any]) -> None:
    errors = validation_errors(obj)
    assert not errors, f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {errors}"
