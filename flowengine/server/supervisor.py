"""``flowengine serve --workers N``: N server processes on one port, supervised by this one.

The supervisor binds the address first (SO_REUSEPORT, without listening, so that no connection
waits on its socket): a bad address fails at once with the usual message, port 0 becomes one
port for every worker, and no other program can take the port while a worker restarts. It then
starts N workers (``python -m flowengine`` with the same arguments and environment, plus
worker.WORKER_ENV), each listening on that port with SO_REUSEPORT, so the kernel spreads new
connections over them. They share the PostgreSQL store; the supervisor never opens it.

- A worker that exits before every worker listens fails the start: the others are stopped and
  the supervisor exits with the worker's status (2 for a configuration, database or address
  problem), as a single process would.
- Afterwards a worker that exits (or is killed) is logged with its status and started again.
  One that ran for less than STABLE_AFTER seconds waits first, twice as long each time in a row
  (RestartBackoff), so a worker that cannot start does not spin.
- SIGTERM or SIGINT stops every worker with SIGTERM (each shuts down gracefully, as a single
  process does) and exits 0; a worker still running STOP_TIMEOUT seconds later is killed.
  Workers run in their own process groups, so that Ctrl-C reaches them through here only.
- ``/metrics``: the worker scraped asks the supervisor, which asks every worker for its
  snapshot at once and merges them (lib/metrics.merge_snapshots) with its own process metrics
  and with the last snapshot of every worker that died. Counters and histograms are summed,
  so a worker's death never makes them go down (the increments it made after the last scrape
  are lost); gauges are those of the live processes, summed unless registered otherwise. A
  deleted workflow's series leave the dead workers' counts too (the workers say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..lib.metrics import Registry, Snapshot, forget_in_snapshot, merge_snapshots
from ..lib.process_metrics import register_process_metrics
from .protocol import bound_sockets
from .telemetry import mark_combines
from .worker import WORKER_ENV
from .workerlink import Link, LinkClosed

__all__ = ["RestartBackoff", "STABLE_AFTER", "Supervisor", "supervise", "refusal"]

log = logging.getLogger("flowengine.workers")

STABLE_AFTER = 10.0  # seconds a worker must have run for its exit not to count as a failed start
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
STOP_TIMEOUT = 30.0  # a worker's own graceful shutdown takes at most about 10 s
SNAPSHOT_TIMEOUT = 2.0  # a worker that does not answer in time counts with its last snapshot


class RestartBackoff:
    """How long to wait before starting a slot's worker again: nothing after a worker that ran
    STABLE_AFTER seconds or more, else FIRST_DELAY doubled for each quick exit in a row, at
    most MAX_DELAY."""

    def __init__(self) -> None:
        self.quick_exits = 0

    def delay(self, ran_for: float) -> float:
        if ran_for >= STABLE_AFTER:
            self.quick_exits = 0
            return 0.0
        self.quick_exits += 1
        return float(min(MAX_DELAY, FIRST_DELAY * 2 ** (self.quick_exits - 1)))


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def refusal(config: Config) -> str | None:
    """Why ``--workers N`` cannot run with this configuration, or None."""
    if config.workers > 1 and not config.uses_postgres:
        return (
            f"--workers {config.workers} (FLOWENGINE_WORKERS) needs a PostgreSQL database: the workers share"
            f" the store, and the SQLite database {config.db!r} (FLOWENGINE_DB) may be opened by one process only."
            " Set FLOWENGINE_DB to a postgresql:// URL (pip install 'flowengine-server[postgres]'), or run one worker"
        )
    if config.workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        return f"--workers {config.workers} (FLOWENGINE_WORKERS) needs SO_REUSEPORT, which this platform lacks; run one worker"
    return None


@dataclass
class _Worker:
    slot: int
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    process: asyncio.subprocess.Process | None = None
    link: Link | None = None
    started_at: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    snapshot: Snapshot | None = None  # the last one this incarnation gave


class Supervisor:
    """Starts, watches and stops the workers; merges their metrics."""

    def __init__(self, argv: Sequence[str], count: int, port: int) -> None:
        self.argv = list(argv)
        self.port = port
        self.workers = [_Worker(slot) for slot in range(1, count + 1)]
        self.stopping = False
        self.serving = False  # every worker listened once: from then on, exits are restarted
        self.failed: tuple[_Worker, int] | None = None  # a worker that exited while starting
        self._stop = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()
        # Counters and histograms of workers that are gone: their last snapshot, summed.
        self._retired: Snapshot = []
        registry = self.registry = Registry()
        register_process_metrics(registry)  # the supervisor's own share of the server's CPU and memory
        registry.gauge(
            "flowengine_workers", "Worker processes of this server running now.",
            callback=lambda: sum(1 for w in self.workers if w.process is not None and w.process.returncode is None),
        )  # fmt: skip
        self.restarts = registry.counter("flowengine_worker_restarts_total", "Worker processes started again after one exited.")

    async def run(self, on_listening: Callable[[list[int]], None]) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop.set)
        try:
            for worker in self.workers:
                await self._start(worker)
            if await self._all_ready():
                self.serving = True
                on_listening([w.process.pid for w in self.workers if w.process is not None])
                await self._stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self._stop_all()
        if self.failed is not None:
            worker, returncode = self.failed
            print(
                f"flowengine: worker {worker.slot} {describe_exit(returncode)} while starting; the server stopped",
                file=sys.stderr,
            )
            return returncode if returncode > 0 else 1
        return 0

    async def _all_ready(self) -> bool:
        """Until every worker listens (True), or one exited or a signal came first (False)."""
        waits = [asyncio.ensure_future(w.ready.wait()) for w in self.workers]
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            pending: set[asyncio.Future[Any]] = {*waits, stop}
            while not stop.done() and not all(w.done() for w in waits):
                _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            return not stop.done() and self.failed is None
        finally:
            for future in (*waits, stop):
                future.cancel()

    async def _start(self, worker: _Worker) -> None:
        ours, theirs = socket.socketpair()
        environment = {**os.environ, WORKER_ENV: f"{worker.slot}:{theirs.fileno()}:{self.port}"}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowengine", *self.argv,
                env=environment, pass_fds=(theirs.fileno(),), process_group=0,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker.process, worker.snapshot = process, None
        worker.started_at = asyncio.get_running_loop().time()
        worker.ready = asyncio.Event()

        async def ready(_message: dict[str, Any]) -> None:
            worker.ready.set()

        worker.link = Link(ours, {"ready": ready, "scrape": self._scrape, "forget": self._forget})
        await worker.link.start()
        watcher = asyncio.get_running_loop().create_task(self._watch(worker, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        returncode = await process.wait()
        ran_for = asyncio.get_running_loop().time() - worker.started_at
        if worker.link is not None:
            await worker.link.close()
        if worker.snapshot is not None:
            self._retired = merge_snapshots([self._retired, [m for m in worker.snapshot if m["kind"] != "gauge"]])
            worker.snapshot = None
        if self.stopping or self._stop.is_set():
            return
        if not self.serving:
            if self.failed is None:  # the server never started: give up, as one process would
                self.failed = (worker, returncode)
            worker.ready.set()
            self._stop.set()
            return
        delay = worker.backoff.delay(ran_for)
        log.warning(
            "worker %d (pid %d) %s after %.1f s; starting a new one%s",
            worker.slot, process.pid, describe_exit(returncode), ran_for, f" in {delay:g} s" if delay else "",
        )  # fmt: skip
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        if self.stopping or self._stop.is_set():
            return
        self.restarts.inc()
        await self._start(worker)

    async def _stop_all(self) -> None:
        self.stopping = True
        self._stop.set()  # a restart waiting out its back-off gives up at once
        # Until no worker runs and no watcher is left: a watcher caught starting a worker
        # finishes that start, and the next round stops the worker it started.
        while True:
            running = [w.process for w in self.workers if w.process is not None and w.process.returncode is None]
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            if running:
                await asyncio.wait([asyncio.ensure_future(p.wait()) for p in running], timeout=STOP_TIMEOUT)
            for process in running:
                if process.returncode is None:
                    log.warning("worker (pid %d) still running %g s after SIGTERM: killed", process.pid, STOP_TIMEOUT)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            watchers = [watcher for watcher in self._watchers if not watcher.done()]
            if not running and not watchers:
                return
            for watcher in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    # -- metrics ------------------------------------------------------------------------------

    async def _scrape(self, _message: dict[str, Any]) -> str:
        # A worker still starting is not asked (it answers once its store is open): it has
        # served nothing yet, and its predecessor's counts are already among the retired.
        live = [w for w in self.workers if w.ready.is_set() and w.link is not None and not w.link.closed]
        await asyncio.gather(*(self._refresh(worker) for worker in live))
        snapshots = [w.snapshot for w in live if w.snapshot is not None]
        own = mark_combines(self.registry.snapshot())
        return Registry.from_snapshot(merge_snapshots([*snapshots, self._retired, own])).render()

    async def _forget(self, message: dict[str, Any]) -> None:
        """A worker dropped a deleted workflow's series: so do the counts of dead workers."""
        label, value = str(message["label"]), str(message["value"])
        self._retired = forget_in_snapshot(self._retired, label, value)
        for worker in self.workers:  # the last snapshots, which a worker's death would retire
            if worker.snapshot is not None:
                worker.snapshot = forget_in_snapshot(worker.snapshot, label, value)

    async def _refresh(self, worker: _Worker) -> None:
        link = worker.link
        assert link is not None
        try:
            answer = await link.request("snapshot", SNAPSHOT_TIMEOUT)
        except (LinkClosed, TimeoutError, RuntimeError) as exc:
            log.warning("worker %d gave no metrics (%s): its last snapshot counts", worker.slot, exc or type(exc).__name__)
            return
        if worker.link is link:  # still the same incarnation
            worker.snapshot = answer


def supervise(argv: Sequence[str], config: Config, announce: Callable[[int, list[int]], None]) -> int:
    """Run the supervisor until a signal; its exit code. OSError if the address cannot be
    bound. ``announce(port, pids)`` is called once every worker listens."""
    reserved = bound_sockets(config.host, config.port, reuse_port=True)
    try:
        port = reserved[0].getsockname()[1]
        supervisor = Supervisor(argv, config.workers, port)
        return asyncio.run(supervisor.run(lambda pids: announce(port, pids)))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were set; the workers see their link close
        return 0
    finally:
        for sock in reserved:
            sock.close()
