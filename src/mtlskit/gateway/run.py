"""Run the gateway: one process, or a supervisor with N SO_REUSEPORT workers; signals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import shlex
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from mtlskit.config import GatewayConfig, acme_configs
from mtlskit.gateway.acme import obtain_at_start, renew_forever
from mtlskit.gateway.carenew import renew_from_ca
from mtlskit.gateway.listen import bind_listener
from mtlskit.gateway.logs import EventLog
from mtlskit.gateway.metrics import Metrics
from mtlskit.gateway.server import Gateway
from mtlskit.gateway.state import load_state
from mtlskit.gateway.status import StatusServer

__all__ = ["Supervisor", "run_gateway_process"]


def _new_loop(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop
        except ImportError:
            pass
    return asyncio.new_event_loop


# What the status listener serves, as its start-up line says.
_PATHS = "(status page, status.json, healthz, readyz, metrics)"

# A worker whose supervisor died lets open requests finish for this long, then exits:
# the deadline for freeing the port is 2 s, and interpreter exit needs some of it.
_ORPHAN_DRAIN_SECONDS = 0.5


def _warn_if_key_exposed(config: GatewayConfig, log: EventLog) -> None:
    """Warn (once, in the process that logs start-up) when others may read the key."""
    path = config.tls.key
    try:
        # stat, not lstat: Kubernetes mounts a secret's key through a ..data symlink.
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:  # load_state just read it; a file swapped away since is the watcher's
        return
    if mode & 0o077:
        log.event(
            "key_permissions",
            f"private key {path} is {'readable' if mode & 0o044 else 'writable'} by group "
            f"or others (mode {mode:04o})",
            level="warning",
            fix=f"chmod 600 {shlex.quote(str(path))}",
        )


def _watch_parent(loop: asyncio.AbstractEventLoop, on_death: Callable[[], None]) -> None:
    """Call on_death once when the supervisor dies, even by SIGKILL.

    A spawned process's `parent_process().sentinel` is the read end of a pipe whose write
    end only the parent holds (multiprocessing docs, BaseProcess.sentinel): the kernel
    closes it when the parent dies however it dies, and the fd becomes readable (EOF).
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by a supervisor: nobody to outlive
        return
    fd = parent.sentinel

    def fired() -> None:
        loop.remove_reader(fd)  # EOF stays readable: fire once
        on_death()

    loop.add_reader(fd, fired)


async def _serve_one(config: GatewayConfig, *, worker: bool) -> None:
    """One gateway on this loop until a signal; a worker shares the port and follows its parent.

    Only the single process (worker=False) renews ACME certificates, serves the status
    port and warns about the key: under a supervisor those belong to the supervisor.
    """
    log = EventLog(fmt=config.log_format)
    gateway = Gateway(config, metrics=Metrics(), log=log, manage_acme=not worker)
    status_server = None
    if not worker:
        _warn_if_key_exposed(config, log)
        if config.status is not None:
            status_server = StatusServer.for_gateway(gateway)
            status_server.bind(*config.status)  # a busy status port fails before we listen
    host, port = config.listen
    try:
        sock = bind_listener(host, port, reuse_port=worker, backlog=config.limits.backlog)
        await gateway.start(sock)
    except BaseException:
        if status_server is not None:
            await status_server.close()
        raise
    if status_server is not None:
        shost, sport = await status_server.start()
        log.event("status", f"status on {status_server.scheme}://{shost}:{sport}/ {_PATHS}")
    stop = asyncio.Event()
    orphaned = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, gateway.reload, "SIGHUP")
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if worker:

        def parent_died() -> None:
            orphaned.set()
            stop.set()

        _watch_parent(loop, parent_died)
    await stop.wait()
    if orphaned.is_set():
        # Nobody will restart or reap us, and a restarted gateway needs the port: stop
        # accepting now, give open requests a moment, then close what is left.
        log.event("orphaned", "the supervisor is gone; stopping", level="warning")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ORPHAN_DRAIN_SECONDS):
                await gateway.shutdown()
        for conn in list(gateway.connections):
            conn.close()
        return
    log.event("stopping", "draining connections")
    if status_server is not None:
        await status_server.close()
    await gateway.shutdown()


def _worker_main(config: GatewayConfig) -> None:
    with asyncio.Runner(loop_factory=_new_loop(config.uvloop)) as runner:
        runner.run(_serve_one(config, worker=True))


def run_gateway_process(config: GatewayConfig) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads certificates. Returns the exit code.

    Configuration problems (files, ports in use) raise before anything listens.
    """
    if config.workers <= 1:
        with asyncio.Runner(loop_factory=_new_loop(config.uvloop)) as runner:
            runner.run(_serve_one(config, worker=False))
        return 0
    return _supervise(config)


def _supervise(config: GatewayConfig) -> int:
    supervisor = Supervisor(config)
    try:
        asyncio.run(supervisor.run())
    finally:
        supervisor.cleanup()
    return 0


class Supervisor:
    """N worker processes sharing the port (SO_REUSEPORT): start, watch, restart, stop.

    Lifecycle, as uvicorn's supervisors: the constructor checks everything that can fail
    (files, the ports) before any worker exists; `run()` spawns the workers, serves the
    status port with metrics summed over them, forwards SIGHUP, restarts a worker that dies,
    and on SIGTERM/SIGINT stops them all; `cleanup()` removes the metrics directory.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.log = EventLog(fmt=config.log_format)
        # Fail fast, in the supervisor and before any worker exists, on bad files and ports
        # in use (--listen probed without SO_REUSEPORT, so even another SO_REUSEPORT group
        # on the port is noticed; --status bound for good, so a busy one starts nothing).
        for acme in acme_configs(config):
            obtain_at_start(acme, self.log)
        load_state(config, datetime.now(UTC))
        _warn_if_key_exposed(config, self.log)
        probe = bind_listener(*config.listen)
        self.port = probe.getsockname()[1]
        probe.close()
        self.config = dataclasses.replace(config, listen=(config.listen[0], self.port))
        self.workers: list[Any] = []
        self.registry = CollectorRegistry()
        self.status: StatusServer | None = None
        if config.status is not None:
            self.status = StatusServer.for_supervisor(self.config, self._ready, self.registry)
            self.status.bind(*config.status)
        self.metrics_dir = tempfile.mkdtemp(prefix="mtlskit-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        MultiProcessCollector(self.registry, path=self.metrics_dir)  # type: ignore[no-untyped-call]
        self._mp = multiprocessing.get_context("spawn")
        self._stop = asyncio.Event()

    def _ready(self) -> bool:
        return bool(self.workers) and all(w.is_alive() for w in self.workers)

    def _spawn(self) -> Any:
        proc = self._mp.Process(target=_worker_main, args=(self.config,), daemon=False)
        proc.start()
        return proc

    def _forward_hup(self) -> None:
        for worker in self.workers:
            if worker.pid and worker.is_alive():
                os.kill(worker.pid, signal.SIGHUP)

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT; always stops the workers, even after an error."""
        config = self.config
        renewals: list[asyncio.Task[None]] = []
        try:
            self.workers.extend(self._spawn() for _ in range(config.workers))
            self.log.event(
                "supervisor",
                f"{config.workers} workers on {config.listen[0]}:{self.port} (SO_REUSEPORT)",
            )
            if self.status is not None:
                shost, sport = await self.status.start()
                self.log.event(
                    "status", f"status on {self.status.scheme}://{shost}:{sport}/ {_PATHS}"
                )
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, self._stop.set)
            loop.add_signal_handler(signal.SIGINT, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._forward_hup)
            lock = asyncio.Lock()  # one renewer per certificate; workers follow the files
            for acme in acme_configs(config):
                renew = renew_forever(acme, self.log, self._forward_hup, lock)
                renewals.append(asyncio.create_task(renew))
            if config.tls.ca_url:  # from an mtlskit ca serve, then SIGHUP to the workers
                ca_renew = renew_from_ca(config, self.log, self._forward_hup)
                renewals.append(asyncio.create_task(ca_renew))
            await self._watch()
        finally:
            for renewal in renewals:
                renewal.cancel()
            self._stop_workers()
            if self.status is not None:
                await self.status.close()

    async def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self._stop.wait()
            for i, worker in enumerate(self.workers):
                if not worker.is_alive() and not self._stop.is_set():
                    self.log.event(
                        "worker_restart",
                        f"worker {worker.pid} exited ({worker.exitcode})",
                        level="warning",
                    )
                    # Its live gauges (connections, handshakes in progress) end with it.
                    mark_process_dead(worker.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
                    await asyncio.sleep(0.2)  # do not spin on a worker that dies at once
                    self.workers[i] = self._spawn()

    def _stop_workers(self) -> None:
        # Also after an error: multiprocessing joins non-daemon workers at exit, so a
        # worker left running would keep this process (and the port) forever.
        for worker in self.workers:
            if worker.pid and worker.is_alive():  # never signal a reaped (reusable) pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            worker.join(self.config.limits.drain_timeout.total_seconds() + 5)

    def cleanup(self) -> None:
        """Remove the metrics directory the workers wrote into."""
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
