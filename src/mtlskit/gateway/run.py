"""Run the gateway: one process, or a supervisor with N SO_REUSEPORT workers; signals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from mtlskit.config import GatewayConfig
from mtlskit.gateway.acme import obtain_at_start, renew_forever
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.metrics import Metrics
from mtlskit.gateway.server import Gateway, bind_listener
from mtlskit.gateway.state import load_state
from mtlskit.gateway.status import StatusServer

__all__ = ["run_gateway_process"]


def _new_loop(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop
        except ImportError:
            pass
    return asyncio.new_event_loop


async def _serve_one(
    config: GatewayConfig, *, reuse_port: bool, status: bool, manage_acme: bool = True
) -> None:

    log = EventLog(fmt=config.log_format)
    gateway = Gateway(config, metrics=Metrics(), log=log, manage_acme=manage_acme)
    host, port = config.listen
    await gateway.start(bind_listener(host, port, reuse_port=reuse_port))
    status_server = None
    if status and config.status is not None:
        status_server = StatusServer(lambda: gateway.ready, gateway.metrics.render)
        shost, sport = await status_server.start(*config.status)
        log.event("status", f"status on http://{shost}:{sport}/ (healthz, readyz, metrics)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, gateway.reload, "SIGHUP")
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    log.event("stopping", "draining connections")
    if status_server is not None:
        await status_server.close()
    await gateway.shutdown()


def _worker_main(config: GatewayConfig) -> None:
    with asyncio.Runner(loop_factory=_new_loop(config.uvloop)) as runner:
        runner.run(_serve_one(config, reuse_port=True, status=False, manage_acme=False))


def run_gateway_process(config: GatewayConfig) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads certificates. Returns the exit code.

    Configuration problems (files, port in use) raise before anything listens.
    """
    if config.workers <= 1:
        with asyncio.Runner(loop_factory=_new_loop(config.uvloop)) as runner:
            runner.run(_serve_one(config, reuse_port=False, status=True))
        return 0
    return _supervise(config)


def _supervise(config: GatewayConfig) -> int:

    log = EventLog(fmt=config.log_format)
    # Fail fast, in the supervisor, on bad files and a port in use (without SO_REUSEPORT,
    # so even another SO_REUSEPORT group on the port is noticed).
    if config.tls.acme is not None:
        obtain_at_start(config.tls.acme, log)
    load_state(config, datetime.now(UTC))
    probe = bind_listener(*config.listen)
    port = probe.getsockname()[1]
    probe.close()
    config = dataclasses.replace(config, listen=(config.listen[0], port))
    metrics_dir = tempfile.mkdtemp(prefix="mtlskit-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    ctx = multiprocessing.get_context("spawn")

    def spawn() -> Any:
        proc = ctx.Process(target=_worker_main, args=(config,), daemon=False)
        proc.start()
        return proc

    workers = [spawn() for _ in range(config.workers)]
    log.event("supervisor", f"{config.workers} workers on {config.listen[0]}:{port} (SO_REUSEPORT)")

    async def supervise() -> None:

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
        status_server = None
        if config.status is not None:
            status_server = StatusServer(
                lambda: all(w.is_alive() for w in workers), lambda: generate_latest(registry)
            )
            shost, sport = await status_server.start(*config.status)
            log.event("status", f"status on http://{shost}:{sport}/ (healthz, readyz, metrics)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)

        def forward_hup() -> None:
            for worker in workers:
                if worker.pid:
                    os.kill(worker.pid, signal.SIGHUP)

        loop.add_signal_handler(signal.SIGHUP, forward_hup)
        if config.tls.acme is not None:  # one renewer; workers follow the files
            renewal = asyncio.create_task(renew_forever(config.tls.acme, log, forward_hup))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await stop.wait()
            for i, worker in enumerate(workers):
                if not worker.is_alive() and not stop.is_set():
                    log.event(
                        "worker_restart",
                        f"worker {worker.pid} exited ({worker.exitcode})",
                        level="warning",
                    )
                    await asyncio.sleep(0.2)  # do not spin on a worker that dies at once
                    workers[i] = spawn()
        if config.tls.acme is not None:
            renewal.cancel()
        for worker in workers:
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(config.limits.drain_timeout.total_seconds() + 5)
        if status_server is not None:
            await status_server.close()

    try:
        asyncio.run(supervise())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
