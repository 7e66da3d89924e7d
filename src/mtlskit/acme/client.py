"""Server certificates from an ACME CA over HTTP-01 (the `acme` library), kept current."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import requests
from acme import challenges, crypto_util, messages
from acme import client as acme_client
from acme import errors as acme_errors
from acme.standalone import HTTP01RequestHandler, HTTP01Server
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC
from requests.adapters import HTTPAdapter

from mtlskit.acme.renewal import RENEW_AT, covers, renew_due, renewal_time
from mtlskit.errors import AcmeError, CertificateLoadError
from mtlskit.pki.files import PRIVATE, PUBLIC, OutputFile, read_file, write_files
from mtlskit.pki.pem import certs_to_pem, load_certificates, load_private_key, private_key_to_pem

__all__ = [
    "AcmeCertificate",
    "AcmeError",
    "AcmeSettings",
    "EnsureResult",
    "ensure_certificate",
    "load_or_create_account_key",
    "obtain_certificate",
]

log = logging.getLogger("mtlskit.acme")
USER_AGENT: Final = "mtlskit-acme"


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    """Where to get the certificate and for which names.

    Attributes:
        directory: the ACME directory URL (Let's Encrypt's, Pebble's, ...).
        domains: DNS names for the certificate; the first is the subject's CN.
        email: account contact, or None.
        http01: where the HTTP-01 responder listens; the CA connects to port 80 of each
            domain (Pebble: its httpPort), so this must be where that traffic arrives.
        ca_bundle: CA certificates to verify the ACME server's TLS with (None: the system's).
        timeout: how long to wait for validation and issuance.
    """

    directory: str
    domains: tuple[str, ...]
    email: str | None = None
    http01: tuple[str, int] = ("0.0.0.0", 80)  # noqa: S104 - the CA connects from outside
    ca_bundle: Path | None = None
    timeout: dt.timedelta = dt.timedelta(seconds=90)


@dataclass(frozen=True, slots=True)
class AcmeCertificate:
    """An issued server certificate: key, leaf and the chain the CA sent (root excluded)."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]

    def output_files(self, out_dir: Path, name: str) -> list[OutputFile]:
        """NAME.key (0600), NAME.crt (leaf) and NAME.chain.pem (leaf + intermediates)."""
        return [
            OutputFile(out_dir / f"{name}.key", private_key_to_pem(self.private_key), PRIVATE),
            OutputFile(out_dir / f"{name}.crt", certs_to_pem([self.certificate]), PUBLIC),
            OutputFile(
                out_dir / f"{name}.chain.pem",
                certs_to_pem([self.certificate, *self.intermediates]),
                PUBLIC,
            ),
        ]

    def write(self, out_dir: Path | str, name: str, *, force: bool = False) -> list[Path]:
        """Write the files as `ca issue` does: each atomically, the key 0600.

        Raises:
            OutputExistsError: a file exists and force is False (nothing is written).
        """
        return write_files(self.output_files(Path(out_dir), name), force=force)


# -- the HTTP-01 responder --------------------------------------------------------------------
@contextlib.contextmanager
def _responder(
    address: tuple[str, int], resources: set[HTTP01RequestHandler.HTTP01Resource]
) -> Iterator[HTTP01Server]:
    """acme's own HTTP-01 server (the one certbot's standalone plugin uses), in a thread."""
    try:
        server = HTTP01Server(address, resources, ipv6=":" in address[0])
    except OSError as exc:
        raise AcmeError(
            f"cannot listen on {address[0]}:{address[1]} for HTTP-01: {exc.strerror}",
            "port 80 needs root or CAP_NET_BIND_SERVICE; or pass --http-01 HOST:PORT where "
            "the CA's validation traffic arrives",
        ) from exc
    thread = threading.Thread(target=server.serve_forever, name="acme-http01", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- talking to the CA ------------------------------------------------------------------------
class _BundleAdapter(HTTPAdapter):
    """requests' transport adapter, verifying the ACME server's TLS against a given bundle.

    acme's ClientNetwork passes verify=True on every request, which would win over a
    session-level setting (and requests swaps in $REQUESTS_CA_BUNDLE for True); a
    transport adapter is requests' public seam below both.
    """

    def __init__(self, bundle: Path) -> None:
        super().__init__()
        self._bundle = str(bundle)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        # True, or the REQUESTS_CA_BUNDLE path requests substitutes for it: use ours.
        if kwargs.get("verify") is not False:
            kwargs["verify"] = self._bundle
        return super().send(request, *args, **kwargs)


def load_or_create_account_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The ACME account key at path, created (EC P-256, 0600) when missing.

    Reusing one account across renewals keeps within the CA's account rate limits.

    Raises:
        CertificateLoadError: the file exists but holds no EC private key.
    """
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        write_files([OutputFile(path, private_key_to_pem(key), PRIVATE)])
        return key
    key_any = load_private_key(read_file(path, "the ACME account key"), path)
    if not isinstance(key_any, ec.EllipticCurvePrivateKey):
        raise CertificateLoadError(path, "is not an EC account key", "remove it to make a new one")
    return key_any


def _problem(exc: BaseException) -> str:
    if isinstance(exc, acme_errors.ValidationError):
        details = [
            f"{a.body.identifier.value}: {c.error.detail or c.error.typ}"
            for a in exc.failed_authzrs
            for c in a.body.challenges
            if c.error is not None
        ]
        return "; ".join(details)
    if isinstance(exc, messages.Error):
        return f"{exc.typ}: {exc.detail}"
    if isinstance(exc, acme_errors.IssuanceError):
        return _problem(exc.error)
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def _mapped(settings: AcmeSettings) -> Iterator[None]:
    """Translate requests' and acme's exceptions into AcmeError, once, at this seam."""
    url = settings.directory
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise AcmeError(
            f"cannot verify the TLS certificate of {url}: {exc}",
            "pass --ca-bundle with the CA that signed the ACME server's certificate",
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise AcmeError(
            f"cannot reach the ACME directory {url}: {type(exc).__name__}",
            "check --directory (e.g. https://acme-v02.api.letsencrypt.org/directory) and "
            "that this machine can reach it",
        ) from exc
    except acme_errors.ValidationError as exc:
        raise AcmeError(
            f"the ACME server could not validate over HTTP-01: {_problem(exc)}",
            f"each domain must resolve to this machine and its port 80 must reach the "
            f"responder on {settings.http01[0]}:{settings.http01[1]} (--http-01)",
        ) from exc
    except acme_errors.TimeoutError as exc:
        raise AcmeError(
            f"the ACME server did not finish within {settings.timeout.total_seconds():.0f}s",
            "try again later; the CA may be busy",
        ) from exc
    except (messages.Error, acme_errors.Error) as exc:
        raise AcmeError(f"the ACME server refused: {_problem(exc)}", "") from exc


def _directory(url: str, net: acme_client.ClientNetwork) -> messages.Directory:
    try:
        return acme_client.ClientV2.get_directory(url, net)
    except (acme_errors.ClientError, messages.Error, ValueError, DeserializationError) as exc:
        raise AcmeError(
            f"{url} did not answer as an ACME directory: {_problem(exc)}",
            "give the directory URL itself (it returns JSON with newAccount, newOrder, ...)",
        ) from exc


def _network(key: ec.EllipticCurvePrivateKey, bundle: Path | None) -> acme_client.ClientNetwork:
    net = acme_client.ClientNetwork(JWKEC(key=key), alg=ES256, user_agent=USER_AGENT)
    if bundle is not None:
        adapter = _BundleAdapter(bundle)
        net.session.mount("https://", adapter)
    return net


def obtain_certificate(
    settings: AcmeSettings, account_key: ec.EllipticCurvePrivateKey
) -> AcmeCertificate:
    """Register (or find) the account, prove each domain over HTTP-01, and get the chain.

    A fresh EC P-256 key is made for the certificate. The HTTP-01 responder runs only
    while the CA validates.

    Raises:
        AcmeError: unreachable or non-ACME directory, TLS not verified, a refused order,
            a failed challenge (with the CA's reason), or a timeout.
    """
    if not settings.domains:
        raise AcmeError("no domain to certify", "pass --domain NAME (repeatable)", exit_code=2)
    if settings.ca_bundle is not None and not settings.ca_bundle.is_file():
        raise AcmeError(f"--ca-bundle {settings.ca_bundle}: no such file", "", exit_code=2)
    net = _network(account_key, settings.ca_bundle)
    cert_key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = crypto_util.make_csr(private_key_to_pem(cert_key), list(settings.domains))
    resources: set[HTTP01RequestHandler.HTTP01Resource] = set()
    with contextlib.closing(net.session), _mapped(settings):
        acme = acme_client.ClientV2(_directory(settings.directory, net), net)
        contact = (f"mailto:{settings.email}",) if settings.email else ()
        registration = messages.NewRegistration.from_data(terms_of_service_agreed=True)
        registration = registration.update(contact=contact)
        try:
            acme.new_account(registration)
        except acme_errors.ConflictError as exc:  # this key already has an account
            existing = messages.RegistrationResource(uri=exc.location, body=registration)
            acme.query_registration(existing)
        order = acme.new_order(csr_pem)
        with _responder(settings.http01, resources):
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # the CA reused an earlier validation
                challb = _http01(authz)
                response, validation = challb.response_and_validation(net.key)
                resources.add(
                    HTTP01RequestHandler.HTTP01Resource(challb.chall, response, validation)
                )
                acme.answer_challenge(challb, response)
            deadline = dt.datetime.now() + settings.timeout  # naive local: acme compares so
            order = acme.poll_and_finalize(order, deadline)
    chain = load_certificates(order.fullchain_pem.encode(), "the ACME server's chain")
    leaf = chain[0]
    if not covers(leaf, settings.domains):
        raise AcmeError(f"the ACME server issued a certificate without {settings.domains}", "")
    log.info("acme: issued %s until %s", ", ".join(settings.domains), leaf.not_valid_after_utc)
    return AcmeCertificate(cert_key, leaf, tuple(chain[1:]))


def _http01(authz: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challb in authz.body.challenges:
        if isinstance(challb.chall, challenges.HTTP01):
            return challb
    raise AcmeError(
        f"the ACME server offers no HTTP-01 challenge for {authz.body.identifier.value}",
        "wildcard names need DNS-01, which mtlskit does not do; list each name",
    )


# -- keep a certificate current (for the CLI and the gateway) ---------------------------------
@dataclass(frozen=True, slots=True)
class EnsureResult:
    """What ensure_certificate did.

    Attributes:
        renewed: a new certificate was obtained and written.
        certificate: the leaf now on disk.
        next_renewal: when the certificate becomes due (call ensure_certificate again then).
        paths: the files written (empty when nothing was renewed).
    """

    renewed: bool
    certificate: x509.Certificate
    next_renewal: dt.datetime
    paths: tuple[Path, ...] = ()


def _current(path: Path) -> x509.Certificate | None:
    try:
        return load_certificates(path.read_bytes(), path)[0]
    except (OSError, CertificateLoadError, IndexError):
        return None


def ensure_certificate(
    settings: AcmeSettings,
    out_dir: Path,
    name: str = "server",
    *,
    now: dt.datetime,
    fraction: float = RENEW_AT,
    account_key: Path | None = None,
) -> EnsureResult:
    """Obtain a certificate when NAME.crt is missing, due, or lacks a domain; else nothing.

    New files replace the old ones one by one (each atomically): key, leaf, chain. A
    reader that catches the key and chain of different generations sees a mismatch and
    must keep its old state and look again (the gateway's reload contract does).

    Args:
        settings: the CA and the names.
        out_dir: where NAME.key, NAME.crt and NAME.chain.pem live.
        name: the file stem.
        now: the current time (aware).
        fraction: renew at this fraction of the lifetime.
        account_key: the account key file (default out_dir/acme-account.key).

    Raises:
        AcmeError: obtaining failed; the files on disk were not touched.
    """
    current = _current(out_dir / f"{name}.crt")
    if (
        current is not None
        and covers(current, settings.domains)
        and not renew_due(current, now, fraction)
        and now < current.not_valid_after_utc
    ):
        return EnsureResult(False, current, renewal_time(current, fraction))
    key = load_or_create_account_key(account_key or out_dir / "acme-account.key")
    issued = obtain_certificate(settings, key)
    paths = issued.write(out_dir, name, force=True)
    return EnsureResult(
        True, issued.certificate, renewal_time(issued.certificate, fraction), tuple(paths)
    )
