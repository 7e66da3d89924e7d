"""Certificate profiles as data: what root, intermediate, server and client certificates carry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

__all__ = ["CLIENT", "INTERMEDIATE", "LEAF_PROFILES", "PROFILES", "ROOT", "SERVER", "Profile"]

ProfileName = Literal["root", "intermediate", "server", "client"]


@dataclass(frozen=True, slots=True)
class Profile:
    """What one kind of certificate carries, independent of who asks for it.

    Attributes:
        name: the profile's name, as typed on the command line.
        is_ca: basicConstraints CA flag (always marked critical).
        path_length: basicConstraints pathLenConstraint, None for "no limit" or leaves.
        key_usage: KeyUsage bits, by cryptography's field names (marked critical).
        rsa_extra_key_usage: bits added only for RSA keys (keyEncipherment for RSA
            key transport, still used by TLS 1.2 RSA suites).
        extended_key_usage: EKU OIDs; empty means the extension is left out.
        default_validity: how long a certificate lives when no --validity is given.
        requires_san: at least one subjectAltName must be present.
    """

    name: ProfileName
    is_ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    rsa_extra_key_usage: frozenset[str]
    extended_key_usage: tuple[ObjectIdentifier, ...]
    default_validity: timedelta
    requires_san: bool


ROOT = Profile(
    name="root",
    is_ca=True,
    path_length=None,
    key_usage=frozenset({"key_cert_sign", "crl_sign"}),
    rsa_extra_key_usage=frozenset(),
    extended_key_usage=(),
    default_validity=timedelta(days=3650),
    requires_san=False,
)

# No EKU on the intermediate: an EKU list there that lacks clientAuth makes every client
# chain below it fail (OpenSSL and cryptography both intersect EKUs down the path).
INTERMEDIATE = Profile(
    name="intermediate",
    is_ca=True,
    path_length=0,
    key_usage=frozenset({"key_cert_sign", "crl_sign"}),
    rsa_extra_key_usage=frozenset(),
    extended_key_usage=(),
    default_validity=timedelta(days=1825),
    requires_san=False,
)

SERVER = Profile(
    name="server",
    is_ca=False,
    path_length=None,
    key_usage=frozenset({"digital_signature"}),
    rsa_extra_key_usage=frozenset({"key_encipherment"}),
    extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,),
    default_validity=timedelta(days=90),
    # Host matching uses SANs only (RFC 6125, CA/B BR); CN alone matches nothing.
    requires_san=True,
)

CLIENT = Profile(
    name="client",
    is_ca=False,
    path_length=None,
    key_usage=frozenset({"digital_signature"}),
    rsa_extra_key_usage=frozenset(),
    # clientAuth only: a client certificate must never be usable as a server identity.
    extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    default_validity=timedelta(days=90),
    # cryptography's client verifier rejects a client leaf without a SAN.
    requires_san=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (ROOT, INTERMEDIATE, SERVER, CLIENT)}
LEAF_PROFILES: dict[str, Profile] = {p.name: p for p in (SERVER, CLIENT)}
