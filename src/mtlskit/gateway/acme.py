"""Server certificates from an ACME CA for the gateway: obtained at start, renewed in time.

The gateway's side of mtlskit.acme: it reads the [acme] settings, logs to the gateway's
event log and runs on its event loop, so it lives with the gateway, not in acme/ (which
knows nothing of the gateway).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from mtlskit.acme.client import AcmeSettings, EnsureResult, ensure_certificate
from mtlskit.acme.renewal import backoff
from mtlskit.config import AcmeConfig
from mtlskit.errors import AcmeError
from mtlskit.gateway.logs import EventLog

__all__ = ["obtain_at_start", "renew_forever"]


def _settings(acme: AcmeConfig) -> AcmeSettings:
    return AcmeSettings(
        directory=acme.directory,
        domains=acme.domains,
        email=acme.email,
        http01=acme.http01,
        ca_bundle=acme.ca_bundle,
    )


def obtain_at_start(acme: AcmeConfig, log: EventLog) -> EnsureResult:
    """Get the certificate if it is missing, due, or lacks a domain (blocking).

    Raises:
        AcmeError: the CA could not be reached or could not validate (exit 1).
    """
    acme.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = ensure_certificate(_settings(acme), acme.dir, "server", now=datetime.now(UTC))
    if result.renewed:
        log.event(
            "acme_issued",
            f"new certificate for {', '.join(acme.domains)}",
            next_renewal=f"{result.next_renewal:%Y-%m-%dT%H:%MZ}",
        )
    return result


async def renew_forever(
    acme: AcmeConfig,
    log: EventLog,
    on_renewed: Callable[[], object],
    lock: asyncio.Lock | None = None,
) -> None:
    """Renew at 2/3 of the lifetime; on failure retry with back-off, old certificate kept.

    `on_renewed` runs after new files are in place (the gateway reloads: open
    connections keep their state, new ones get the new certificate). Several servers'
    renewals share `lock`: one HTTP-01 responder on the port at a time.
    """
    settings = _settings(acme)
    failures = 0
    lock = lock or asyncio.Lock()
    while True:
        now = datetime.now(UTC)
        try:
            async with lock:
                result = await asyncio.to_thread(
                    ensure_certificate, settings, acme.dir, "server", now=now
                )
        except AcmeError as exc:
            failures += 1
            wait = backoff(failures).total_seconds()
            log.event(
                "acme_failed",
                f"{exc.message}; still serving the current certificate",
                level="error",
                retry_in=f"{wait:.0f}s",
                hint=exc.hint,
            )
        else:
            failures = 0
            if result.renewed:
                log.event("acme_renewed", f"renewed the certificate for {', '.join(acme.domains)}")
                on_renewed()
            wait = (result.next_renewal - datetime.now(UTC)).total_seconds()
        await asyncio.sleep(min(max(wait, 1.0), 86400.0))  # wake at least daily: clocks drift
