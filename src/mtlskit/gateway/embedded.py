"""The gateway on a background thread, for the demo, tests and programs that embed it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from mtlskit.config import GatewayConfig
from mtlskit.gateway.listen import bind_listener
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.server import Gateway

__all__ = ["EmbeddedGateway", "embedded_gateway"]

T = TypeVar("T")


@dataclass
class EmbeddedGateway:
    """A running gateway and the loop it runs on."""

    gateway: Gateway
    loop: asyncio.AbstractEventLoop

    @property
    def port(self) -> int:
        """The bound TLS port."""
        return self.gateway.address[1]

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the gateway's loop (its state is not thread-safe) and return."""

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)


@contextmanager
def embedded_gateway(
    config: GatewayConfig, log: EventLog | None = None
) -> Iterator[EmbeddedGateway]:
    """Start the gateway on its own thread and loop; on exit, drain and stop it.

    Configuration errors (files, port in use) are raised here, in the caller's thread.
    """
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        try:
            gateway = Gateway(config, log=log)
            await gateway.start(bind_listener(*config.listen))
        except BaseException as exc:
            box["error"] = exc
            started.set()
            return
        box["running"] = EmbeddedGateway(gateway, asyncio.get_running_loop())
        started.set()
        await stop.wait()
        await gateway.shutdown()

    thread = threading.Thread(
        target=lambda: asyncio.run(main()), name="mtlskit-gateway", daemon=True
    )
    thread.start()
    started.wait(30)
    if "error" in box:
        thread.join(5)
        raise box["error"]
    running: EmbeddedGateway = box["running"]
    try:
        yield running
    finally:
        running.loop.call_soon_threadsafe(box["stop"].set)
        thread.join(config.limits.drain_timeout.total_seconds() + 10)
