"""Subject Alternative Names from the strings people type, sorted into DNS/IP/URI/email."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from cryptography import x509

from mtlskit.errors import IssuanceError

__all__ = ["describe_general_name", "parse_san", "parse_sans"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PREFIXES = {"dns": "dns", "ip": "ip", "uri": "uri", "email": "email", "rfc822": "email"}


def _bad(value: str, why: str) -> IssuanceError:
    return IssuanceError(
        f"--san {value!r} is not a valid name: {why}",
        "use a DNS name (api.example.com, *.example.com), an IP (10.0.0.1, ::1), "
        "a URI (spiffe://td/ns/x) or an email (a@b.c); DNS:/IP:/URI:/email: prefixes also work",
    )


def _dns(value: str, original: str) -> x509.DNSName:
    name = value.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as exc:
        raise _bad(original, "not a valid internationalised domain name") from exc
    labels = ascii_name.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            raise _bad(original, "a wildcard needs at least two labels after '*.'")
    if not labels or len(ascii_name) > 253:
        raise _bad(original, "empty or longer than 253 characters")
    for label in labels:
        if not _LABEL.match(label):
            raise _bad(original, f"label {label!r} has characters other than a-z, 0-9 and '-'")
    return x509.DNSName(ascii_name.lower())


def _uri(value: str, original: str) -> x509.UniformResourceIdentifier:
    if any(ch.isspace() for ch in value):
        raise _bad(original, "a URI cannot contain spaces")
    if not value.isascii() or not value.isprintable():
        raise _bad(original, "a URI must be printable ASCII; percent-encode other characters")
    parts = urlsplit(value)
    if not parts.scheme:
        raise _bad(original, "a URI needs a scheme, e.g. spiffe:// or https://")
    if parts.scheme == "spiffe" and (not parts.netloc or parts.query or parts.fragment):
        raise _bad(original, "a SPIFFE ID is spiffe://trust-domain/path, no query or fragment")
    return x509.UniformResourceIdentifier(value)


def _email(value: str, original: str) -> x509.RFC822Name:
    if not _EMAIL.match(value):
        raise _bad(original, "an email is local@domain")
    local, domain = value.rsplit("@", 1)
    if not local.isascii() or not local.isprintable():
        raise _bad(original, "the part before @ must be printable ASCII (rfc822Name is IA5)")
    return x509.RFC822Name(f"{local}@{_dns(domain, original).value}")


def parse_san(text: str) -> x509.GeneralName:
    """Turn one SAN string into a GeneralName.

    Accepts `example.com`, `*.example.com`, `10.0.0.1`, `::1`, `spiffe://td/ns/x`,
    `https://...`, `a@b.c`, and the explicit forms `DNS:`, `IP:`, `URI:`, `email:`.

    Raises:
        IssuanceError: the string is not a valid name of any kind.
    """
    original = text
    value = text.strip()
    if not value:
        raise _bad(original, "it is empty")
    kind = ""
    head, sep, rest = value.partition(":")
    if sep and head.lower() in _PREFIXES and not rest.startswith("//"):
        kind, value = _PREFIXES[head.lower()], rest.strip()
    if not kind:
        if "://" in value:
            kind = "uri"
        elif "@" in value:
            kind = "email"
        else:
            try:
                ipaddress.ip_address(value)
                kind = "ip"
            except ValueError:
                kind = "dns"
    if kind == "ip":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError as exc:
            raise _bad(original, "not an IPv4 or IPv6 address") from exc
    if kind == "uri":
        return _uri(value, original)
    if kind == "email":
        return _email(value, original)
    return _dns(value, original)


def parse_sans(texts: Iterable[str]) -> list[x509.GeneralName]:
    """Parse many SAN strings, keeping order and dropping exact duplicates."""
    out: list[x509.GeneralName] = []
    for text in texts:
        name = parse_san(text)
        if name not in out:
            out.append(name)
    return out


def describe_general_name(name: x509.GeneralName) -> str:
    """Say a GeneralName the way openssl prints it: `DNS:a.example`, `IP:10.0.0.1`."""
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return str(name)
