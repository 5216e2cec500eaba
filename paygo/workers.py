"""`paygo serve`'s processes: the gateway in one process, or in several workers sharing the listening port.

With `WORKERS` (or `--workers`) above 1, the `paygo serve` process becomes a supervisor. It starts N worker
processes, each binding the same host and port with SO_REUSEPORT (the kernel spreads new connections over them),
and, when the scheduler is enabled, one scheduler process: the jobs run in one place, not once per worker. The
processes share nothing but PostgreSQL and Redis; each worker's metrics go to files in one directory
(prometheus-client's multiprocess mode), so a scrape of any worker shows them all. A worker or the scheduler that
dies is started again after a second.

Stopping (SIGTERM or SIGINT) drains: each worker closes its listening socket, lets the requests in flight finish
(up to `SHUTDOWN_TIMEOUT_SECONDS`), ends its live streams, then exits; the supervisor waits for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path

from aiohttp import web

from gateway.app import app_runner, create_app
from paygo import event_loop
from paygo.embedded import exit_with_parent
from paygo.logs import configure_logging
from paygo.metrics import Metrics
from paygo.settings import Settings
from paygo.wiring import intervals, open_runtime
from scheduler.runner import running_scheduler

log = logging.getLogger("paygo")

START_TIMEOUT_SECONDS = 60.0
RESTART_DELAY_SECONDS = 1.0
STOP_MARGIN_SECONDS = 10.0  # beyond the drain, for a process to close its pools and exit
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when a process imports it
GC_YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections (Python's default: 700)


async def wait_for_signal() -> None:
    """Until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def start_gateway(app: web.Application, settings: Settings, *, reuse_port: bool) -> web.AppRunner:
    """The app listening on the configured address; `runner.cleanup()` drains it (sockets closed first, then the
    requests in flight get up to SHUTDOWN_TIMEOUT_SECONDS)."""
    runner = app_runner(app, settings)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.listen_host, settings.listen_port, reuse_port=reuse_port).start()
    except BaseException:
        await runner.cleanup()
        raise
    settle_garbage_collector()
    return runner


def settle_garbage_collector() -> None:
    """Once the app is up: move every object made so far (modules, the app, its pools) out of the collector's
    reach, and collect the young generation less often. Serving allocates fast; under load the cyclic collector
    took 11 % of a worker's CPU, most of it walking start-up objects that live as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


# ------------------------------------------------------------------------------------------ the supervised processes

def _run_worker(settings: Settings, ready: Event) -> None:
    """A worker process: the gateway on the shared port until told to stop."""
    _child_setup(settings)
    event_loop.run(_serve_until_signal(settings, ready))


async def _serve_until_signal(settings: Settings, ready: Event) -> None:
    runner = await start_gateway(create_app(settings), settings, reuse_port=True)
    try:
        ready.set()
        await wait_for_signal()
    finally:
        await runner.cleanup()


def _run_scheduler(settings: Settings, ready: Event) -> None:
    """The scheduler process: every job, timed into the shared metrics, until told to stop."""
    _child_setup(settings)
    event_loop.run(_schedule_until_signal(settings, ready))


async def _schedule_until_signal(settings: Settings, ready: Event) -> None:
    metrics = Metrics(multiprocess_dir=settings.serving.metrics_dir)
    async with (open_runtime(settings, apply_migrations=False) as runtime,
                running_scheduler(runtime.services.jobs, intervals(settings), metrics.observe_tick)):
        ready.set()
        await wait_for_signal()


def _child_setup(settings: Settings) -> None:
    exit_with_parent(signal.SIGTERM)  # a supervisor killed outright takes its processes with it
    configure_logging(settings.operations.log_format, settings.operations.log_level)


# ----------------------------------------------------------------------------------------------------- supervisor

@dataclass
class _Child:
    name: str
    run: Callable[[Settings, Event], None]
    process: BaseProcess | None = None


class Supervisor:
    """Starts the processes, starts again one that dies, and stops them all, draining."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # fresh interpreters: no loop or pool crosses a fork
        self._children = [_Child(f"worker {n}", _run_worker) for n in range(1, settings.serving.workers + 1)]
        if settings.scheduler.enabled:
            self._children.append(_Child("scheduler", _run_scheduler))
        self._stopping = False
        self._restarts: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Every process, each ready (listening, or scheduling) before this returns."""
        await asyncio.gather(*(self._start(child) for child in self._children))

    async def _start(self, child: _Child) -> None:
        ready = self._context.Event()
        process = self._context.Process(target=child.run, args=(self.settings, ready), name=f"paygo {child.name}")
        process.start()
        child.process = process
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_SECONDS
        while not ready.is_set():
            if not process.is_alive():
                raise RuntimeError(f"paygo {child.name} exited with status {process.exitcode} while starting")
            if loop.time() > deadline:
                raise RuntimeError(f"paygo {child.name} did not start within {START_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.05)
        loop.add_reader(process.sentinel, self._exited, child, process)

    def _exited(self, child: _Child, process: BaseProcess) -> None:
        """A process ended on its own (its sentinel became readable): start another in its place."""
        asyncio.get_running_loop().remove_reader(process.sentinel)
        process.join()
        log.error("paygo %s (pid %s) exited with status %s; starting it again", child.name, process.pid,
                  process.exitcode)
        task = asyncio.create_task(self._restart(child))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, child: _Child) -> None:
        await asyncio.sleep(RESTART_DELAY_SECONDS)
        if not self._stopping:
            try:
                await self._start(child)
            except RuntimeError:
                log.exception("paygo %s could not be started again", child.name)

    async def stop(self) -> None:
        """SIGTERM to every process (each drains), then wait; one still running after the drain is killed."""
        self._stopping = True
        for task in list(self._restarts):
            task.cancel()
        loop = asyncio.get_running_loop()
        running = [child.process for child in self._children if child.process is not None]
        for process in running:
            loop.remove_reader(process.sentinel)
            if process.is_alive():
                process.terminate()
        grace = self.settings.serving.shutdown_timeout_seconds + STOP_MARGIN_SECONDS
        for process in running:
            await asyncio.to_thread(process.join, grace)
            if process.is_alive():
                log.error("paygo process %s did not stop within %.0f s: killed", process.pid, grace)
                process.kill()
                await asyncio.to_thread(process.join)


@contextlib.asynccontextmanager
async def running_workers(settings: Settings) -> AsyncIterator[Supervisor]:
    """The workers and the scheduler process, with their metrics directory, stopped (drained) on exit."""
    configured = settings.serving.metrics_dir
    metrics_dir = configured or Path(tempfile.mkdtemp(prefix="paygo-metrics-"))
    if configured is not None:  # a directory kept between runs: last run's files would count again
        for stale in configured.glob("*.db"):
            stale.unlink()
    os.environ[METRICS_DIR_VARIABLE] = str(metrics_dir)  # the spawned processes inherit it before any import
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"metrics_dir": metrics_dir})})
    supervisor = Supervisor(settings)
    try:
        await supervisor.start()
        yield supervisor
    finally:
        await supervisor.stop()
        if configured is None:
            shutil.rmtree(metrics_dir, ignore_errors=True)

