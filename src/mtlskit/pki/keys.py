"""Key types mtlskit issues and accepts: generation, naming, strength checks, signing hash."""

from __future__ import annotations

from typing import Literal, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from mtlskit.errors import ConfigError

__all__ = [
    "DEFAULT_KEY_TYPE",
    "KEY_TYPES",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "check_public_key",
    "describe_public_key",
    "generate_key",
    "parse_key_type",
    "signing_hash",
]

KeyType = Literal["ec-p256", "ec-p384", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_TYPES: tuple[str, ...] = get_args(KeyType)
DEFAULT_KEY_TYPE: KeyType = "ec-p256"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# RSA below 2048 bits is breakable within reach of a motivated attacker (NIST SP 800-131A).
MIN_RSA_BITS = 2048
# Curves OpenSSL, browsers and Envoy all accept in TLS certificates.
_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def parse_key_type(text: str, *, flag: str = "--key-type") -> KeyType:
    """Validate a key type name such as "ec-p256" or "rsa-3072".

    Raises:
        ConfigError: an unknown or too weak key type (rsa-1024).
    """
    value = text.strip().lower()
    for known in get_args(KeyType):
        if value == known:
            return known  # type: ignore[no-any-return]
    why = "too weak (RSA needs 2048 bits or more)" if value.startswith("rsa-") else "not supported"
    raise ConfigError(f"{flag} {text!r} is {why}", f"choose one of: {', '.join(KEY_TYPES)}")


def generate_key(key_type: KeyType) -> PrivateKey:
    """Create a fresh private key of the given type."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    bits = int(key_type.split("-")[1])
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def signing_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    """The hash to sign with this key: SHA-384 for P-384, none for Ed25519, else SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def describe_public_key(key: object) -> str:
    """Say a public key's type and size: "EC P-256", "RSA 3072", "Ed25519"."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}"
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__.removeprefix("_")


def check_public_key(key: object) -> str | None:
    """Return why a public key may not be certified, or None when it may."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"RSA {key.key_size} is too weak; {MIN_RSA_BITS} bits or more are required"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ACCEPTED_CURVES):
            return f"curve {key.curve.name} is not accepted by TLS peers; use P-256 or P-384"
        return None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return f"{describe_public_key(key)} keys are not supported; use EC P-256, P-384, Ed25519 or RSA"
