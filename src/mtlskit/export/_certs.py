"""Certificate facts the export and the linter share: is it a CA, does a name cover a host."""

from __future__ import annotations

from cryptography import x509

__all__ = ["dns_covers", "is_ca"]


def is_ca(cert: x509.Certificate) -> bool:
    """True when basicConstraints says CA (RFC 5280 4.2.1.9); absent means not a CA."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def dns_covers(name: str, host: str) -> bool:
    """Whether a certificate DNS name (maybe `*.x`) matches host (RFC 6125 6.4.3: the
    wildcard stands for exactly one whole left-most label). host may itself be `*.x`,
    which only the same wildcard covers."""
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name == host:
        return True
    if not name.startswith("*.") or host.startswith("*."):
        return False
    label, sep, rest = host.partition(".")
    return bool(sep) and bool(label) and rest == name[2:]
