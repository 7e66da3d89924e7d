"""Manifests as the linter reads them: objects, secret data, certificates, MUTUAL servers (pure).

Hand-written files vary, so every reader here skips what it cannot read instead of failing:
a check then reports the missing piece ("no certificate") rather than crashing the lint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509

from mtlskit.errors import CertificateLoadError
from mtlskit.pki.pem import load_certificates

__all__ = [
    "CA_KEYS",
    "SERVER_KEYS",
    "Obj",
    "first",
    "items",
    "mutual_servers",
    "objects",
    "read_certs",
    "secret_data",
]

_MUTUAL: Final = ("MUTUAL", "OPTIONAL_MUTUAL")
SERVER_KEYS: Final = ("tls.crt", "cert")
CA_KEYS: Final = ("ca.crt", "cacert")


@dataclass(frozen=True, slots=True)
class Obj:
    """One manifest object, with where it was read and its kind, namespace and name."""

    source: str
    kind: str
    namespace: str
    name: str
    doc: Mapping[str, Any]

    @property
    def label(self) -> str:
        """The object as findings name it: "Kind namespace/name"."""
        return f"{self.kind} {self.namespace}/{self.name}"


def objects(manifests: Sequence[tuple[str, Any]]) -> Iterator[Obj]:
    """Every object in (source, document) pairs: non-mappings skipped, `kind: List` expanded."""
    for source, doc in manifests:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") == "List":
            yield from objects([(source, item) for item in doc.get("items") or []])
            continue
        meta = doc.get("metadata") or {}
        if not isinstance(meta, Mapping):
            meta = {}
        yield Obj(
            source,
            str(doc.get("kind", "")),
            str(meta.get("namespace") or "default"),
            str(meta.get("name", "")),
            doc,
        )


def secret_data(obj: Obj) -> dict[str, bytes]:
    """A Secret's data (base64-decoded) and stringData, by key."""
    out: dict[str, bytes] = {}
    for key, value in (obj.doc.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            out[str(key)] = b""  # unreadable: the checks then report "no certificate"
    for key, value in (obj.doc.get("stringData") or {}).items():
        out[str(key)] = str(value).encode()
    return out


def read_certs(data: bytes) -> list[x509.Certificate]:
    """The PEM certificates in data; none when it holds none or is unreadable."""
    try:
        return load_certificates(data) if data else []
    except CertificateLoadError:
        return []


def first(data: Mapping[str, bytes], keys: Sequence[str]) -> tuple[str, bytes] | None:
    """The first of keys present in data, with its value."""
    for key in keys:
        if key in data:
            return key, data[key]
    return None


def mutual_servers(gateway: Obj) -> Iterator[tuple[str, list[str]]]:
    """(credentialName, hosts without namespace/) of each MUTUAL server of an Istio Gateway."""
    for server in (gateway.doc.get("spec") or {}).get("servers") or []:
        tls = server.get("tls") or {}
        if tls.get("mode") in _MUTUAL and tls.get("credentialName"):
            hosts = [str(h).rpartition("/")[2] for h in server.get("hosts") or []]
            yield str(tls["credentialName"]), hosts


def items(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a YAML list; anything else (hand-written files vary) is skipped."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
