"""The gateway's server certificate renewed from `mtlskit ca serve` ([tls] ca_url), then reloaded.

The gateway's side of mtlskit.caserver, as gateway/acme.py is of mtlskit.acme: it reads
[tls], logs to the gateway's event log and runs on its event loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime

from mtlskit.acme.renewal import backoff
from mtlskit.caserver.renewal import due_at, renew_once
from mtlskit.config import GatewayConfig
from mtlskit.errors import MtlsKitError
from mtlskit.gateway.logs import EventLog

__all__ = ["renew_from_ca"]

_MAX_SLEEP = 3600.0  # wake at least hourly: clocks drift, hosts sleep


async def renew_from_ca(
    config: GatewayConfig,
    log: EventLog,
    on_renewed: Callable[[], object],
    *,
    jitter: Callable[[], float] = random.random,
) -> None:
    """Renew [tls] cert and key from [tls] ca_url at 2/3 of the lifetime; never returns.

    The CA server is verified with [tls] ca_trust (default: client_ca). The current
    certificate authenticates the renewal over mTLS; a new key is made each time. On
    failure the old files stay and the attempt is repeated with back-off (1 min doubling
    to 1 h). After new files are in place `on_renewed` runs (the gateway reloads: open
    connections keep their state, new ones get the new certificate). Returns at once when
    ca_url is not set.
    """
    tls = config.tls
    if tls.ca_url is None:
        return
    trust = tls.ca_trust or tls.client_ca
    received: datetime | None = None
    failures = 0
    announced: datetime | None = None
    spread = jitter()  # drawn once per certificate, so the due time stays put
    while True:
        try:
            due = await asyncio.to_thread(due_at, tls.cert, received, spread)
        except MtlsKitError as exc:
            due = datetime.now(UTC)  # unreadable: try to renew (which says why) and back off
            log.event("ca_renew_failed", exc.message, level="error", hint=exc.hint)
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            if due != announced:
                announced = due
                log.event(
                    "ca_renew_scheduled",
                    f"server certificate renewal due {due:%Y-%m-%dT%H:%M:%SZ}",
                    ca_url=tls.ca_url,
                )
            await asyncio.sleep(min(wait, _MAX_SLEEP))
            if (due - datetime.now(UTC)).total_seconds() > 0:
                continue
        try:
            renewed = await asyncio.to_thread(
                renew_once, tls.cert, tls.key, tls.ca_url, trust=trust
            )
        except MtlsKitError as exc:
            failures += 1
            retry = backoff(failures).total_seconds()
            log.event(
                "ca_renew_failed",
                f"{exc.message}; still serving the current certificate",
                level="error",
                retry_in=f"{retry:.0f}s",
                hint=exc.hint,
            )
            await asyncio.sleep(retry)
            continue
        failures = 0
        received, spread = renewed.received_at, jitter()
        log.event(
            "ca_renewed",
            f"renewed the server certificate {renewed.leaf.subject.rfc4514_string()}",
            serial=f"{renewed.leaf.serial_number:X}",
            not_after=f"{renewed.leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
        )
        on_renewed()
