"""What keeps processes that share a PostgreSQL database safe against each other's death, and
their catalogs in step (SCALE-OUT.md section 1).

Every FLOWENGINE_NODE_HEARTBEAT seconds a process:

- renews its heartbeat row (the database's clock); if the row is gone, other processes
  declared it dead and recorded its executions ``interrupted``: it cancels them without
  writing (the store fences their completions) and registers again under a new epoch;
- reaps: processes silent for FLOWENGINE_NODE_TIMEOUT are removed, and their running
  executions recorded ``interrupted`` (the error names the process); the ``WorkflowCompleted``
  of each is published to this process's listeners;
- checks the catalog generation against the one it applied (a missed notification), and
  self-pings its LISTEN connection; when that does not answer it reconnects, subscribes every
  channel again, re-announces its listeners' filters and reads what it may have missed once
  (``on_listening`` callbacks: pgevents.py's ``resync``, the run queue's claim);
- keeps events flowing to and from other processes' listeners (pgevents.py).

A catalog notification makes the process read that workflow again and acknowledge the
generation, which the writing process waits for. With SQLite none of this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from ..core.events import EventBus, serialise, utc_timestamp
from ..errors import StoreUnavailable
from ..lib.metrics import Registry
from .catalog import WorkflowCatalog
from .executions import ExecutionService
from .pgevents import RemoteEvents
from .storage import HistoryStore

__all__ = ["NodeLiveness", "follow_cluster"]

log = logging.getLogger("flowengine.runtime.liveness")


class NodeLiveness:
    def __init__(
        self,
        store: Any,  # a PgStore: the liveness half of its interface
        runs: ExecutionService,
        catalog: WorkflowCatalog,
        bus: EventBus,
        *,
        heartbeat: float,
    ) -> None:
        self.store = store
        self.runs = runs
        self.catalog = catalog
        self.bus = bus
        self.heartbeat = heartbeat
        self.listening = False
        self.declared_dead = 0
        self._following: set[asyncio.Task[None]] = set()
        self._catalog_lock = asyncio.Lock()
        self.events = RemoteEvents(store, bus, runs, answer_timeout=store.node_timeout)
        # Awaited after the LISTEN connection was reopened: what a lost connection may have missed.
        self.on_listening: list[Callable[[], Awaitable[None]]] = [self.events.resync]

    @property
    def degraded(self) -> str | None:
        """Why this process cannot do all it should right now, or None."""
        if not self.store.healthy:
            return self.store.problem or "the database cannot be reached"
        if not self.listening:
            return "the notification connection to the database is down (catalog changes arrive by polling)"
        return None

    async def start(self) -> None:
        self.store.on_catalog_change = self._on_catalog_change
        await self._listen()
        await self.events.start()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.tick()
            except StoreUnavailable as exc:
                log.warning("heartbeat: %s", exc)
            except Exception:
                log.exception("heartbeat failed")

    async def tick(self) -> None:
        store = self.store
        if not await store.beat():
            await self._rejoin()
        for row in await store.reap(utc_timestamp()):
            log.warning(
                "execution %s of workflow %s was running on %s, which stopped answering: recorded interrupted",
                row["id"], row["workflow_id"], row["owner"],
            )  # fmt: skip
            self._publish_interrupted(row)
        # Bounded well below the node timeout: a half-open connection answers nothing, and the
        # next heartbeat must not wait for it long enough to be declared dead.
        if not await store.ping_listener(min(store.node_timeout / 4, max(self.heartbeat, 1.0))):
            if self.listening:
                log.warning("the notification connection to the database was lost: reconnecting")
            self.listening = False
            await self._listen()
            if self.listening:
                store.listener_reconnects += 1
                for resync in self.on_listening:
                    await resync()
        await self._check_catalog()
        await store.oldest_transaction()
        await self.events.tick()

    async def _listen(self) -> None:
        try:
            await self.store.listen()
            self.listening = True
        except Exception as exc:
            self.listening = False
            log.warning("cannot LISTEN for catalog changes: %s", exc)

    async def _rejoin(self) -> None:
        """Declared dead by the others (paused past the timeout, or cut off): what still runs
        here was recorded ``interrupted`` already, so stop it without writing, and register again."""
        self.declared_dead += 1
        fenced = self.store.fence()
        for execution in list(self.runs.engine.running.values()):
            execution.cancel("this process was declared dead by the others while it ran", status="interrupted")
        log.error(
            "this process (%s) missed its heartbeats past FLOWENGINE_NODE_TIMEOUT and was declared dead:"
            " %d execution(s) stopped without being written; registering again",
            self.store.node_id,
            len(fenced),
        )
        await self.store.register_node()
        self.events.forget_announcement()  # the interest row went with the old registration
        await self._check_catalog(force=True)

    def _publish_interrupted(self, row: dict[str, Any]) -> None:
        now = utc_timestamp()
        try:
            started = datetime.fromisoformat(row["started_at"].replace("Z", "+00:00"))
            elapsed_us = max(0, int((datetime.fromisoformat(now.replace("Z", "+00:00")) - started).total_seconds() * 1e6))
        except ValueError:
            elapsed_us = 0
        event = {
            "type": "WorkflowCompleted",
            "execution_id": row["id"],
            "workflow_id": row["workflow_id"],
            "seq": 0,  # its other events were numbered by the process that ran it
            "timestamp": now,
            "success": False,
            "status": "interrupted",
            "duration_ms": elapsed_us // 1000,
            "duration_us": elapsed_us,
        }
        self.bus.publish(serialise(event), "WorkflowCompleted", row["id"], row["workflow_id"])

    # -- the catalog ---------------------------------------------------------------------

    def _on_catalog_change(self, workflow_id: str, generation: int) -> None:
        task = asyncio.get_running_loop().create_task(self._follow(workflow_id, generation))
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def _follow(self, workflow_id: str, generation: int) -> None:
        store = self.store
        try:
            async with self._catalog_lock:
                await self.catalog.follow(workflow_id, lambda: store.load_workflow(workflow_id))
                if store.catalog_generation == generation - 1:
                    store.catalog_generation = generation
                await store.acknowledge_catalog(generation)
        except Exception as exc:  # the periodic check catches up
            log.warning("could not follow the change of workflow %s: %s", workflow_id, exc)

    async def _check_catalog(self, force: bool = False) -> None:
        """Catch up with changes whose notification never arrived."""
        store = self.store
        generation = await store.stored_generation()
        if generation == store.catalog_generation and not force:
            return
        async with self._catalog_lock:
            heads = await store.workflow_heads()
            held = self.catalog.known_versions()
            for workflow_id in set(heads) | set(held):
                if heads.get(workflow_id) != held.get(workflow_id):
                    await self.catalog.follow(workflow_id, functools.partial(store.load_workflow, workflow_id))
            store.catalog_generation = max(store.catalog_generation, generation)
            await store.acknowledge_catalog(generation)

    async def stop(self) -> None:
        for task in list(self._following):
            task.cancel()
        await self.events.stop()
        await self.store.stop_listening()

    def register_metrics(self, registry: Registry) -> None:
        store = self.store
        registry.gauge("flowengine_cluster_processes_alive", "Processes with a live heartbeat on the shared database.", callback=lambda: store.alive_nodes)
        registry.counter("flowengine_cluster_reaped_executions_total", "Running executions of dead processes this process recorded interrupted.", callback=lambda: store.reaped_total)
        registry.counter("flowengine_cluster_listener_reconnects_total", "Reconnections of the database notification connection.", callback=lambda: store.listener_reconnects)
        registry.gauge("flowengine_db_oldest_transaction_seconds", "Age of the oldest open transaction on the database.", callback=lambda: store.oldest_transaction_seconds)
        self.events.register_metrics(registry)


@contextlib.asynccontextmanager
async def follow_cluster(
    store: HistoryStore,
    runs: ExecutionService,
    catalog: WorkflowCatalog,
    bus: EventBus,
    *,
    heartbeat: float,
    registry: Registry | None = None,
) -> AsyncIterator[NodeLiveness | None]:
    """Heartbeats, reaping and catalog following while the block runs, for a shared store;
    None (nothing runs) for SQLite."""
    if store.kind != "postgresql":
        yield None
        return
    liveness = NodeLiveness(store, runs, catalog, bus, heartbeat=heartbeat)
    await liveness.start()
    if registry is not None:
        liveness.register_metrics(registry)
    task = asyncio.get_running_loop().create_task(liveness.run())
    try:
        yield liveness
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await liveness.stop()
