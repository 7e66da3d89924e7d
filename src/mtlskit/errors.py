"""The mtlskit exception tree: every error a person can see, with a hint and an exit code."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AcmeError",
    "CSRError",
    "CertificateLoadError",
    "ConfigError",
    "DatabaseError",
    "ExportError",
    "GatewayError",
    "HandshakeTimeoutError",
    "IdentityHeaderError",
    "IssuanceError",
    "KeyPasswordError",
    "MtlsKitError",
    "OutputExistsError",
    "PKIError",
    "TLSConfigError",
    "UsageError",
]


class MtlsKitError(Exception):
    """Base of every error mtlskit raises on purpose.

    Attributes:
        message: one line for people: what went wrong, naming the file, key or flag.
        hint: one line saying how to fix it, or an empty string.
        exit_code: 2 for usage and configuration problems, 1 for a failed check.
    """

    exit_code: int = 2

    def __init__(self, message: str, hint: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ConfigError(MtlsKitError):
    """A flag, a config key or a value that cannot be used as given."""


class UsageError(ConfigError):
    """A command line argparse could not read (exit 2)."""


class PKIError(MtlsKitError):
    """Something in the chain of trust (CA directory, keys, certificates) is unusable."""


class CertificateLoadError(PKIError):
    """A certificate, key, CSR or bundle could not be read.

    Attributes:
        path: the file that was read, when there is one.
    """

    def __init__(
        self, path: Path | str | None, message: str, hint: str = "", *, exit_code: int | None = None
    ) -> None:
        self.path = Path(path) if path is not None else None
        where = f"{path}: " if path is not None else ""
        super().__init__(where + message, hint, exit_code=exit_code)


class KeyPasswordError(PKIError):
    """A private key is encrypted and the password is missing or wrong."""


class IssuanceError(PKIError):
    """A certificate cannot be issued as asked (bad SAN, validity, key type, ...)."""


class CSRError(PKIError):
    """A certificate signing request is malformed, badly signed or uses a weak key."""


class OutputExistsError(PKIError):
    """An output file exists and --force was not given."""


class DatabaseError(PKIError):
    """The CA database is missing, locked, read-only or inconsistent."""


class TLSConfigError(MtlsKitError):
    """A TLS context cannot be built (key and certificate mismatch, bad versions)."""


class IdentityHeaderError(MtlsKitError, ValueError):
    """Identity headers are malformed, or an identity value cannot travel in a header.

    Also a ValueError: workloads that read headers catch it as bad input.
    """


class GatewayError(MtlsKitError):
    """Something the gateway met while serving (not a configuration problem)."""


class HandshakeTimeoutError(GatewayError, TimeoutError):
    """A client did not finish its TLS handshake in time (a TimeoutError, too)."""


class ExportError(MtlsKitError):
    """The gateway's settings cannot be turned into cluster manifests as asked (exit 2)."""


class AcmeError(MtlsKitError):
    """The ACME CA could not be reached, refused, or could not validate a domain (exit 1)."""

    exit_code = 1
