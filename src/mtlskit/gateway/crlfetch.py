"""CRLs fetched over HTTP(S) for the gateway: refreshed before nextUpdate, the last good kept.

`[tls] crl_urls` and, with `crl_from_cdp`, the CRL Distribution Points of the client CA
certificates. Each CRL is fetched in a thread (never on the event loop), bounded in size and
time, verified against the client CAs as a CRL file is, and kept only when it is at least as
new as the one held. A changed CRL reloads the gateway: new connections get a new state (TLS
context and CRLs), open ones keep theirs. The fetched CRLs live here, not in files, so every
reload builds its state from the files plus `CrlFetcher.fetched`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol

from cryptography import x509

from mtlskit import __version__
from mtlskit.config import GatewayConfig
from mtlskit.errors import ConfigError, GatewayError, MtlsKitError
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.sitebuild import server_files
from mtlskit.pki.files import CRL_MAX_BYTES
from mtlskit.pki.pem import load_crl
from mtlskit.tlsconfig import client_context, load_client_cas
from mtlskit.trust import RevocationList, load_crl_set

if TYPE_CHECKING:
    from mtlskit.gateway.state import GatewayState

__all__ = ["CrlFetcher", "FetchedCrls", "cdp_urls", "check_crl_urls", "crl_number", "fetch_bytes"]

FETCH_TIMEOUT: Final = 10.0  # seconds per fetch, connect to last byte
_START_TIMEOUT: Final = 5.0  # the first fetch delays start-up by at most this, per URL
_MIN_WAIT: Final = 1.0
_MAX_BACKOFF: Final = 300.0
_STALE_RETRY: Final = 30.0
_TICK: Final = 60.0  # the warnings are checked at least this often
_MAX_LEARNED: Final = 16  # CRL URLs learned from client leaves (crl_from_cdp), at most
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FetchedCrls:
    """What a state is built with besides its files.

    Attributes:
        lists: (URL, CRL) of every URL that gave a good CRL, the last good one of each.
        pending: URLs that never gave one yet; with crl_stale = "deny" a client whose CA
            has no CRL is refused meanwhile (its CRL may be the missing one).
    """

    lists: tuple[tuple[str, RevocationList], ...] = ()
    pending: tuple[str, ...] = ()


def crl_number(rl: RevocationList) -> int:
    """The CRL number (load_crl_set has checked it is there), -1 if it is not."""
    try:
        return rl.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (x509.ExtensionNotFound, ValueError):
        return -1


def cdp_urls(cas: Iterable[x509.Certificate]) -> list[str]:
    """The http(s) URLs in the CRL Distribution Points of the given certificates."""
    urls: list[str] = []
    for cert in cas:
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except (x509.ExtensionNotFound, ValueError):
            continue
        for point in points:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) and _is_http(name.value):
                    urls.append(name.value)  # ldap:// and others: not fetched
    return urls


def check_crl_urls(config: GatewayConfig) -> None:
    """Refuse a CRL URL that is not http(s) (load_state calls it: the supervisor fails fast).

    Raises:
        ConfigError: naming the URL.
    """
    for url in config.tls.crl_urls:
        if not _is_http(url):
            raise ConfigError(
                f"tls.crl_urls: {url!r} is not an http:// or https:// URL",
                "give the URL the CA publishes its CRL at, e.g. http://ca.example/crl",
            )


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def fetch_bytes(
    url: str, *, timeout: float, max_bytes: int, trust: ssl.SSLContext | None = None
) -> bytes:
    """GET url (http or https; redirects followed within those), at most max_bytes.

    Args:
        url: the CRL's URL.
        timeout: seconds for the whole fetch (and each socket operation).
        max_bytes: the largest body accepted.
        trust: an ssl.SSLContext for https URLs.

    Raises:
        GatewayError: unreachable, an HTTP error status, too big or too slow.
    """
    opener = urllib.request.OpenerDirector()  # no file:, ftp: or data: handlers
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=trust),
        urllib.request.HTTPRedirectHandler(),  # refuses schemes other than http(s)/ftp
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked: http(s) only
        url,
        headers={"Accept": "application/pkix-crl, */*", "User-Agent": f"mtlskit/{__version__}"},
    )
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise GatewayError(f"{url}: {length} bytes, more than the {max_bytes} accepted")
            data = bytearray()
            # In pieces: read(max_bytes + 1) would allocate the whole bound (256 MiB).
            while chunk := response.read(min(_CHUNK, max_bytes + 1 - len(data))):
                data += chunk
                if len(data) > max_bytes:
                    raise GatewayError(f"{url}: more than the {max_bytes} bytes accepted")
                if time.monotonic() > deadline:
                    raise GatewayError(f"{url}: not fetched within {timeout:.0f} s")
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response (and its socket)
        raise GatewayError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise GatewayError(f"{url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, a bad redirect target
        raise GatewayError(f"{url}: {exc}") from exc
    return bytes(data)


class CrlHost(Protocol):
    """What the fetcher needs of the gateway (server.Gateway has it)."""

    state: GatewayState

    def reload(self, why: str = "SIGHUP") -> bool:
        """Build a new state (files + fetched CRLs) and swap it in."""


@dataclass
class _Source:
    url: str
    held: RevocationList | None = None
    failures: int = 0
    due: float = 0.0  # time.monotonic() of the next fetch


@dataclass
class CrlFetcher:
    """The fetched CRLs of one gateway (one per worker process) and the task refreshing them.

    Args:
        config: the gateway's config (crl_urls, crl_from_cdp, the client CA files).
        log: the gateway's event log.
    """

    config: GatewayConfig
    log: EventLog
    sources: list[_Source] = field(default_factory=list)
    _warned: set[tuple[str, str, str, int]] = field(default_factory=set)
    _dirty: bool = False  # a new CRL whose reload failed: retried
    _learned: int = 0
    _wake: asyncio.Event | None = None  # set when a URL was learned: fetch it now

    @classmethod
    def at_start(cls, config: GatewayConfig, log: EventLog) -> CrlFetcher:
        """Make the fetcher and fetch each URL once (blocking, before the gateway listens).

        A URL that fails here does not stop the gateway: it is retried in the background.

        Raises:
            ConfigError: a CRL URL that is not http:// or https://.
        """
        fetcher = cls(config, log)
        check_crl_urls(config)
        urls = list(config.tls.crl_urls)
        if config.tls.crl_from_cdp:
            urls += cdp_urls(fetcher._client_cas())
        fetcher.sources = [_Source(url) for url in dict.fromkeys(urls)]
        for source in fetcher.sources:
            got = fetcher._download_or_error(source, _START_TIMEOUT)
            fetcher._settle(source, got, time.monotonic())
        return fetcher

    @property
    def fetched(self) -> FetchedCrls:
        """The last good CRL of each URL, and the URLs still without one."""
        return FetchedCrls(
            tuple((s.url, s.held) for s in self.sources if s.held is not None),
            tuple(s.url for s in self.sources if s.held is None),
        )

    def start(self, host: CrlHost) -> list[asyncio.Task[None]]:
        """The refresh task (cancelled by the gateway's shutdown), or none without CRLs."""
        crls = any(st.crls for st in (host.state, *host.state.servers))
        if not self.sources and not crls and not self.config.tls.crl_from_cdp:
            return []
        self._wake = asyncio.Event()
        return [asyncio.get_running_loop().create_task(self._run(host))]

    def learn(self, leaf: x509.Certificate) -> None:
        """With crl_from_cdp, fetch the CRL a verified client leaf's CDP names (once per URL).

        Client CAs rarely name their own CRL (a CA's CDP points at its issuer's); the leaves
        they issue do. The URL comes from a certificate our CA signed; at most 16 are learned.
        """
        if not self.config.tls.crl_from_cdp or self._learned >= _MAX_LEARNED:
            return
        known = {source.url for source in self.sources}
        for url in cdp_urls([leaf]):
            if url not in known and self._learned < _MAX_LEARNED:
                self._learned += 1
                known.add(url)
                self.sources.append(_Source(url))
                self.log.event("crl_source_learned", f"fetching the CRL at {url} (from a CDP)")
                if self._wake is not None:
                    self._wake.set()

    def _client_cas(self) -> list[x509.Certificate]:
        cas: list[x509.Certificate] = []
        for files in server_files(self.config):
            cas += [c for c in load_client_cas(files.client_ca) if c not in cas]
        return cas

    def _settle(self, source: _Source, got: RevocationList | MtlsKitError, now: float) -> bool:
        """Keep a good CRL, or log the failure and schedule a retry (on the loop's thread)."""
        if isinstance(got, MtlsKitError):
            source.failures += 1
            wait = min(_MIN_WAIT * 2 ** (source.failures - 1), _MAX_BACKOFF)
            source.due = now + wait
            kept = "keeping the last good CRL" if source.held else "no CRL from it yet"
            self.log.event(
                "crl_fetch_failed",
                f"{got.message}; {kept}",
                level="error",
                url=source.url,
                retry_in=f"{wait:.0f}s",
                **({"hint": got.hint} if got.hint else {}),
            )
            return False
        source.failures = 0
        source.due = now + self._wait(got)
        if got is source.held:
            return False
        source.held = got
        assert got.next_update is not None  # noqa: S101 - load_crl_set requires one
        self.log.event(
            "crl_updated",
            f"CRL {crl_number(got)} of {got.issuer.rfc4514_string()} from {source.url}: "
            f"{len(got.serials)} revoked, next update {got.next_update:%Y-%m-%d %H:%M:%S}Z",
            url=source.url,
        )
        return True

    def _download_or_error(self, source: _Source, timeout: float) -> RevocationList | MtlsKitError:
        """The thread's part: fetch, parse and verify; never raises."""
        try:
            return self._download(source, timeout)
        except MtlsKitError as exc:
            return exc

    def _download(self, source: _Source, timeout: float) -> RevocationList:
        tls = self.config.tls
        https = source.url.lower().startswith("https:")
        trust = client_context(ca=tls.ca_trust or tls.client_ca) if https else None
        data = fetch_bytes(source.url, timeout=timeout, max_bytes=CRL_MAX_BYTES, trust=trust)
        new = load_crl_set(load_crl(data, source.url), self._client_cas())
        if new.signer is None or new.problem:
            raise GatewayError(
                f"{source.url}: the CRL cannot be trusted: {new.problem}",
                "the CRL must be signed by a CA in the client_ca bundle (append the "
                "intermediate that signs it)",
            )
        held = source.held
        if held is not None:
            if (crl_number(new), new.this_update) == (crl_number(held), held.this_update):
                return held  # the same CRL again
            if crl_number(new) < crl_number(held) or new.this_update < held.this_update:
                raise GatewayError(
                    f"{source.url}: CRL {crl_number(new)} is older than CRL "
                    f"{crl_number(held)} held (a stale cache or mirror?)",
                )
        return new

    def _wait(self, rl: RevocationList) -> float:
        """Half the time left before nextUpdate, at most crl_refresh, at least a second."""
        assert rl.next_update is not None  # noqa: S101 - load_crl_set requires one
        left = (rl.next_update - datetime.now(UTC)).total_seconds()
        refresh = self.config.tls.crl_refresh.total_seconds()
        if left <= 0:  # the CA has not published a fresh one yet: ask again soon, not in a loop
            return min(refresh, _STALE_RETRY)
        return max(min(left / 2, refresh), _MIN_WAIT)

    async def _run(self, host: CrlHost) -> None:
        while True:
            try:
                await self._round(host)
            except Exception as exc:  # a bug here must not end revocation for good
                self.log.event("crl_refresh_error", f"{type(exc).__name__}: {exc}", level="error")
            now = time.monotonic()
            due = min((s.due for s in self.sources), default=now + _TICK)
            tick = _MIN_WAIT * 5 if self._dirty else _TICK  # a failed reload: try it again soon
            wake = self._wake
            if wake is None:
                await asyncio.sleep(min(max(due - now, 0.05), tick))
                continue
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(max(due - now, 0.05), tick))

    async def _round(self, host: CrlHost) -> None:
        """Fetch the URLs that are due, reload on a new CRL, then say what is near its end."""
        changed = self._dirty
        for source in self.sources:
            if source.due <= time.monotonic():
                got = await asyncio.to_thread(self._download_or_error, source, FETCH_TIMEOUT)
                changed = self._settle(source, got, time.monotonic()) or changed
        if changed:
            self._dirty = not host.reload("a new CRL was fetched")
        self._check(host.state, datetime.now(UTC))

    def _check(self, state: GatewayState, now: datetime) -> None:
        """Log, once per CRL, one that nears its nextUpdate with no fresh one, or is past it.

        "Nears": less than crl_warning left, and less than a quarter of the CRL's validity,
        so that a CRL valid for less than crl_warning does not warn as soon as it comes.
        """
        warn_before = self.config.tls.crl_warning
        for st in (state, *state.servers):
            for rl, source in zip(st.crls, st.crl_sources, strict=True):
                if rl.next_update is None:
                    continue
                issuer = rl.issuer.rfc4514_string()
                when = f"{rl.next_update:%Y-%m-%d %H:%M:%S}Z"
                stale = now > rl.next_update
                key = ("stale" if stale else "expiring", source, issuer, crl_number(rl))
                if key in self._warned:
                    continue
                if stale:
                    self._warned.add(key)
                    deny = st.crl_stale == "deny"
                    self.log.event(
                        "crl_stale",
                        f"the CRL of {issuer} ({source}) is past its nextUpdate {when}: "
                        + (
                            "its clients are refused until a fresh CRL comes (crl_stale = deny)"
                            if deny
                            else "its clients are admitted without a current CRL "
                            "(crl_stale = allow)"
                        ),
                        level="error" if deny else "warning",
                        issuer=issuer,
                        source=source,
                        fix="publish a fresh CRL ('mtlskit ca crl'); check the CRL URL",
                    )
                elif now + min(warn_before, (rl.next_update - rl.this_update) / 4) > rl.next_update:
                    self._warned.add(key)
                    self.log.event(
                        "crl_expiring",
                        f"the CRL of {issuer} ({source}) reaches its nextUpdate {when} and no "
                        "fresher one has come",
                        level="warning",
                        issuer=issuer,
                        source=source,
                        fix="publish a fresh CRL before then ('mtlskit ca crl')",
                    )
