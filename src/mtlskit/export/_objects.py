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
    "MUTUAL",
    "SERVER_KEYS",
    "Obj",
    "Server",
    "first",
    "items",
    "mutual_servers",
    "objects",
    "read_certs",
    "secret_data",
    "tls_servers",
]

MUTUAL: Final = ("MUTUAL", "OPTIONAL_MUTUAL")
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


@dataclass(frozen=True, slots=True)
class Server:
    """One `spec.servers[]` entry of an Istio Gateway that has a `tls` block.

    Attributes:
        index: its place in spec.servers.
        mode: tls.mode ("" when absent).
        credentials: credentialName, then credentialNames.
        ca_credential: tls.caCertCredentialName, or None (then Istio reads <name>-cacert).
        hosts: the hosts, without their `namespace/` prefix.
        tls: the tls block as written.
    """

    index: int
    mode: str
    credentials: tuple[str, ...]
    ca_credential: str | None
    hosts: tuple[str, ...]
    tls: Mapping[str, Any]


def tls_servers(gateway: Obj) -> Iterator[Server]:
    """Every server of an Istio Gateway with a tls block."""
    for i, server in enumerate(items((gateway.doc.get("spec") or {}).get("servers"))):
        tls = server.get("tls")
        if not isinstance(tls, Mapping):
            continue
        names = [tls.get("credentialName")]
        listed = tls.get("credentialNames")
        names += listed if isinstance(listed, list) else []
        hosts = server.get("hosts")
        yield Server(
            i,
            str(tls.get("mode") or ""),
            tuple(str(n) for n in names if n),
            str(tls["caCertCredentialName"]) if tls.get("caCertCredentialName") else None,
            tuple(str(h).rpartition("/")[2] for h in hosts) if isinstance(hosts, list) else (),
            tls,
        )


def mutual_servers(gateway: Obj) -> Iterator[tuple[str, list[str]]]:
    """(credential name, hosts without namespace/) of each MUTUAL server of an Istio Gateway."""
    for server in tls_servers(gateway):
        if server.mode in MUTUAL:
            for credential in server.credentials:
                yield credential, list(server.hosts)


def items(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a YAML list; anything else (hand-written files vary) is skipped."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
