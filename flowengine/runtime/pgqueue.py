"""The run queue of processes that share a PostgreSQL database (SCALE-OUT.md section 1), and
what makes triggers fire once and cancels reach the process that runs an execution.

- Work nobody waits on goes into ``run_queue``: cron ticks, event-triggered starts, and
  ``?wait=false`` executions that find no free local slot. A queued execution is a row of
  ``executions`` with status ``queued`` (no owner) plus a queue row, both written in one
  transaction committed with ``synchronous_commit=on`` before anyone is told about it.
- Every process with free slots claims up to that many queue rows (``FOR UPDATE SKIP LOCKED``)
  in one statement that deletes them and makes the executions ``running`` under its own
  registration, so queue rows leave at the claim and a claim is never half done. Claims are
  woken by ``NOTIFY`` and by a slot freed here, with a poll every POLL_INTERVAL as the fallback.
- A cron tick is queued by whichever process first inserts (trigger, scheduled instant) into
  ``trigger_fires``, in the transaction that queues it: no leader. An event trigger's start is
  claimed the same way per (source execution, trigger) in ``event_starts``, which also carries
  the chain's root and depth; ``event_chains`` counts each chain's starts. So the depth limit
  and the budget per chain hold whichever processes run the chain.
- The queue is bounded cluster-wide (FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS): queuing beyond
  it is refused with Overloaded (503).
- A cancel of a queued execution is done in the database; of one running elsewhere, it sets
  ``cancel_requested`` and notifies the owner, which also looks for such rows every heartbeat
  in case the notification was lost.

asyncpg is not imported here: connections come from the store's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..core.engine import new_execution_id
from ..core.events import serialise, utc_timestamp
from ..core.model import Trigger, Workflow
from ..errors import Overloaded, StoreUnavailable, ValidationError
from ..lib.logthrottle import ThrottledLog
from ..lib.metrics import Registry
from ..values import Value, encode_values, to_value
from .catalog import WorkflowCatalog
from .executions import ExecutionService, decode_recorded_inputs, decode_recorded_outputs

__all__ = ["QUEUE_CHANNEL", "CANCEL_CHANNEL", "RunQueue", "serve_queue", "trigger_key"]

log = logging.getLogger("flowengine.runtime.pgqueue")

QUEUE_CHANNEL = "flowengine_queue"
CANCEL_CHANNEL = "flowengine_cancel"
POLL_INTERVAL = 1.0  # seconds between two claim attempts when no notification arrives
CLAIM_BATCH = 32  # the most queue rows one claim takes
FIRES_KEPT = "1 hour"  # how long tick and event-start claims are kept (longer than any clock skew)
CHAINS_KEPT = "1 day"  # how long a chain's budget counter outlives its last start

_FULL = "SELECT count(*) >= $1 FROM (SELECT 1 FROM run_queue LIMIT $1) AS queued"
_INSERT_QUEUED = (
    "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, retry_of, status, started_at,"
    " trigger_key) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8)"
)
_CLAIM = (
    "WITH picked AS (SELECT execution_id FROM run_queue ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED),"
    " gone AS (DELETE FROM run_queue q USING picked WHERE q.execution_id = picked.execution_id"
    " RETURNING q.execution_id, q.cached_outputs)"
    " UPDATE executions e SET status = 'running', owner = $2, epoch = $3, started_at = $4"
    " FROM gone WHERE e.id = gone.execution_id AND e.status = 'queued'"
    " RETURNING e.id, e.workflow_id, e.workflow_version, e.trigger, e.inputs, gone.cached_outputs"
)
_FAIL = (
    "UPDATE executions SET status = 'failed', finished_at = $2, duration_ms = 0, duration_us = 0, error = $3"
    " WHERE id = $1"
)


def trigger_key(kind: str, workflow_id: str, trigger_id: str) -> str:
    """How a trigger is named in ``trigger_fires``, ``event_starts`` and ``executions``."""
    return f"{kind}:{workflow_id}:{trigger_id}"


class RunQueue:
    """One process's side of the shared run queue; ``start`` it, ``stop`` it before the store closes."""

    def __init__(
        self,
        store: Any,  # a PgStore
        runs: ExecutionService,
        catalog: WorkflowCatalog,
        *,
        limit: int,
        heartbeat: float,
        poll: float = POLL_INTERVAL,
    ) -> None:
        self.store = store
        self.runs = runs
        self.catalog = catalog
        self.limit = limit
        self.heartbeat = heartbeat
        self.poll = min(poll, heartbeat)
        self.throttled_log = ThrottledLog(log)
        self.queued_total = 0  # executions this process put into the queue
        self.claimed_total = 0  # executions this process took from it
        self.remote_cancels_total = 0  # executions this process stopped for a cancel asked elsewhere
        self._wake = asyncio.Event()
        self._more = True  # the queue may hold work: a freed slot should look
        self._task: asyncio.Task[None] | None = None
        self._spawned: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self.store.listen_to(QUEUE_CHANNEL, self._notified)
        await self.store.listen_to(CANCEL_CHANNEL, self._cancel_here)
        self.runs.queue = self
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        self.runs.queue = None
        tasks = [task for task in (self._task, *self._spawned) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def spawn(self, work: Any) -> None:
        """Run a coroutine in the background (trigger starts), kept until done."""
        task = asyncio.get_running_loop().create_task(work)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    # -- queuing -----------------------------------------------------------------------------

    async def _insert(
        self,
        connection: Any,
        execution_id: str,
        workflow: Workflow,
        trigger_json: str,
        inputs_json: str,
        key: str | None,
    ) -> None:
        await connection.execute(
            _INSERT_QUEUED, execution_id, workflow.id, workflow.version, trigger_json, inputs_json, None, utc_timestamp(), key
        )
        await connection.execute("INSERT INTO run_queue (execution_id) VALUES ($1)", execution_id)
        await connection.execute("SELECT pg_notify($1, '')", QUEUE_CHANNEL)

    async def hand_off(self, execution: Any, cached_outputs: dict[str, dict[str, Value]] | None = None) -> None:
        """Move an execution this process started (its running row committed) into the queue;
        Overloaded (its row removed) when the queue is full. The caller drops the execution."""
        store = self.store
        cached = (
            serialise({node: encode_values(ports) for node, ports in cached_outputs.items()})
            if cached_outputs
            else None
        )

        async def work(connection: Any) -> bool:
            async with connection.transaction():
                if await connection.fetchval(_FULL, self.limit):
                    await connection.execute(
                        "DELETE FROM executions WHERE id = $1 AND owner = $2 AND status = 'running'", execution.id, store.node_id
                    )
                    return False
                moved = await connection.execute(
                    "UPDATE executions SET status = 'queued', owner = NULL, epoch = NULL"
                    " WHERE id = $1 AND owner = $2 AND status = 'running'",
                    execution.id,
                    store.node_id,
                )
                if moved != "UPDATE 1":
                    raise StoreUnavailable("this process lost its registration while queuing the execution: try again")
                await connection.execute(
                    "INSERT INTO run_queue (execution_id, cached_outputs) VALUES ($1, $2)", execution.id, cached
                )
                await connection.execute("SELECT pg_notify($1, '')", QUEUE_CHANNEL)
                return True

        queued = await store._run(work)
        store.disown(execution.id)
        if not queued:
            raise Overloaded(self._full_message())
        self.queued_total += 1

    def _full_message(self) -> str:
        return (
            f"the cluster's run queue holds {self.limit} executions"
            " (FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS): try again later"
        )

    async def fire_cron(self, workflow: Workflow, trigger: Trigger, scheduled_at: str) -> str:
        """Queue this tick unless another process did: ``queued``, ``taken`` (another process
        fired it), ``busy`` (the trigger's previous run still goes) or ``full``."""
        key = trigger_key("cron", workflow.id, trigger.id)
        execution_id = new_execution_id()
        trigger_json = serialise({"type": "cron", "id": trigger.id})
        inputs_json = serialise({"scheduled_at": Value("String", scheduled_at).to_json()})

        async def work(connection: Any) -> str:
            async with connection.transaction():
                # One tick of one trigger at a time, so "skip while the previous run goes" sees
                # the previous tick's execution even when its transaction has only just ended.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
                won = await connection.fetchval(
                    "INSERT INTO trigger_fires (trigger_key, scheduled_at, execution_id) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    key,
                    scheduled_at,
                    execution_id,
                )
                if not won:
                    return "taken"
                outcome = await self._refusal(connection, key)
                if outcome is not None:
                    await connection.execute(
                        "UPDATE trigger_fires SET execution_id = NULL WHERE trigger_key = $1 AND scheduled_at = $2",
                        key,
                        scheduled_at,
                    )
                    return outcome
                await self._insert(connection, execution_id, workflow, trigger_json, inputs_json, key)
                # Old claims go now and then (a tick is never fired again after its time).
                if not hash(scheduled_at) % 64:
                    await connection.execute(f"DELETE FROM trigger_fires WHERE fired_at < now() - interval '{FIRES_KEPT}'")
                return "queued"

        outcome = await self.store._run(work)
        if outcome == "queued":
            self.queued_total += 1
        return outcome

    async def _refusal(self, connection: Any, key: str) -> str | None:
        if await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM executions WHERE trigger_key = $1 AND status IN ('queued', 'running'))", key
        ):
            return "busy"
        if await connection.fetchval(_FULL, self.limit):
            return "full"
        return None

    async def start_event(
        self,
        workflow: Workflow,
        trigger: Trigger,
        event: dict[str, Any],
        *,
        max_depth: int,
        max_chain: int,
    ) -> str:
        """Queue the start of an event trigger by this event, once whichever processes see the
        event: ``queued``, ``taken`` (already started, or refused, elsewhere), ``deep`` (the
        chain is ``max_depth`` long), ``budget`` (the chain started ``max_chain``) or ``full``."""
        key = trigger_key("event", workflow.id, trigger.id)
        source = event["execution_id"]
        execution_id = new_execution_id()
        inputs_json = serialise({name: _plain_value(value) for name, value in event.items()})

        async def work(connection: Any) -> tuple[str, int]:
            async with connection.transaction():
                chain = await connection.fetchrow(
                    "SELECT root_execution_id, depth FROM event_starts WHERE execution_id = $1 LIMIT 1", source
                )
                root, depth = (chain["root_execution_id"], chain["depth"]) if chain is not None else (source, 0)
                won = await connection.fetchval(
                    "INSERT INTO event_starts (source_execution_id, trigger_key, execution_id, root_execution_id, depth)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                    source, key, execution_id, root, depth + 1,
                )  # fmt: skip
                if not won:
                    return "taken", depth
                outcome = None
                if depth + 1 > max_depth:
                    outcome = "deep"
                else:
                    started = await connection.fetchval(
                        "INSERT INTO event_chains (root_execution_id, started) VALUES ($1, 1)"
                        " ON CONFLICT (root_execution_id) DO UPDATE SET started = event_chains.started + 1,"
                        " updated_at = now() WHERE event_chains.started < $2 RETURNING started",
                        root,
                        max_chain,
                    )
                    if started is None:
                        outcome = "budget"
                    elif await connection.fetchval(_FULL, self.limit):
                        outcome = "full"
                if outcome is not None:
                    # Refused for good: the claim stays (no other process retries it) but names
                    # no execution, so the chain does not continue from it.
                    await connection.execute(
                        "UPDATE event_starts SET execution_id = NULL WHERE source_execution_id = $1 AND trigger_key = $2",
                        source,
                        key,
                    )
                    return outcome, depth
                trigger_json = serialise(
                    {"type": "event", "id": trigger.id, "source_execution_id": source, "depth": depth + 1}
                )
                await self._insert(connection, execution_id, workflow, trigger_json, inputs_json, key)
                if not hash(execution_id) % 256:
                    await connection.execute(f"DELETE FROM event_starts WHERE started_at < now() - interval '{CHAINS_KEPT}'")
                    await connection.execute(f"DELETE FROM event_chains WHERE updated_at < now() - interval '{CHAINS_KEPT}'")
                return "queued", depth

        outcome, _ = await self.store._run(work)
        if outcome == "queued":
            self.queued_total += 1
        return outcome

    # -- claiming ----------------------------------------------------------------------------

    def _notified(self, _payload: str) -> None:
        self._more = True
        self._wake.set()

    async def resync(self) -> None:
        """The LISTEN connection was reopened: notifications of queued work may have been lost
        meanwhile, so claim once now rather than at the next poll."""
        self._notified("")

    def slot_freed(self) -> None:
        """A local slot was given back: claim if the queue may hold work."""
        if self._more:
            self._wake.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        next_cancel_check = loop.time() + self.heartbeat
        while True:
            self._wake.clear()
            try:
                await self.claim_all()
                if loop.time() >= next_cancel_check:
                    next_cancel_check = loop.time() + self.heartbeat
                    await self._check_cancels()
            except StoreUnavailable as exc:
                self.throttled_log.warning(("queue unavailable",), "run queue: %s", exc)
            except Exception:
                log.exception("run queue: claiming failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def claim_all(self) -> int:
        """Claim while this process has free slots and the queue has work; how many were claimed."""
        claimed = 0
        while not self.runs.closing:
            wanted = self.runs.take_slots(CLAIM_BATCH)
            if not wanted:
                return claimed
            try:
                started = await self._claim(wanted)
            except BaseException:
                self.runs.give_back_slots(wanted)
                raise
            self.runs.give_back_slots(wanted - started)
            claimed += started
            if started < wanted:
                self._more = False
                return claimed
        return claimed

    async def _claim(self, wanted: int) -> int:
        """Claim up to ``wanted`` queued executions and run them (each holding a slot the caller
        took); how many run."""
        store = self.store
        epoch = store.epoch
        failed: list[tuple[str, str]] = []
        ready: list[tuple[Workflow, dict[str, Any], dict[str, Value], dict[str, dict[str, Value]] | None]] = []

        async def work(connection: Any) -> None:
            async with connection.transaction():
                rows = await connection.fetch(_CLAIM, wanted, store.node_id, epoch, utc_timestamp())
                for record in rows:
                    row = dict(record)
                    workflow = self.catalog.get(row["workflow_id"])
                    if workflow is None:
                        failed.append((row["id"], f"workflow {row['workflow_id']} no longer exists"))
                        continue
                    try:
                        inputs = decode_recorded_inputs(row["inputs"])
                        cached = _decode_cached(row["cached_outputs"])
                    except (ValidationError, ValueError) as exc:
                        failed.append((row["id"], f"the queued execution's record cannot be run: {exc}"))
                        continue
                    if workflow.version != row["workflow_version"]:
                        # Run what a new execute would run: the version current now.
                        await connection.execute(
                            "UPDATE executions SET workflow_version = $2 WHERE id = $1", row["id"], workflow.version
                        )
                    ready.append((workflow, row, inputs, cached))
                now = utc_timestamp()
                for execution_id, error in failed:
                    await connection.execute(_FAIL, execution_id, now, error)

        await store._run(work)
        for execution_id, error in failed:
            log.warning("queued execution %s not run: %s", execution_id, error)
        for workflow, row, inputs, cached in ready:
            execution = self.runs.adopt(
                workflow, row["id"], inputs, trigger_json=row["trigger"], cached_outputs=cached
            )
            store.adopt(execution.id, epoch)
            self.runs.run_claimed(execution)
        self.claimed_total += len(ready)
        return len(ready)

    # -- cancelling --------------------------------------------------------------------------

    async def cancel(self, execution_id: str) -> str | None:
        """Cancel an execution this process does not run: a queued one here (``dequeued``: it
        is recorded cancelled); a running one by asking its owner (``running``: the caller
        waits for the record). Otherwise its (final) status; None if unknown."""

        async def work(connection: Any) -> str | None:
            async with connection.transaction():
                if await connection.fetchval("DELETE FROM run_queue WHERE execution_id = $1 RETURNING true", execution_id):
                    await connection.execute(
                        "UPDATE executions SET status = 'cancelled', finished_at = $2, duration_ms = 0, duration_us = 0,"
                        " error = 'execution cancelled' WHERE id = $1",
                        execution_id,
                        utc_timestamp(),
                    )
                    return "dequeued"
                status = await connection.fetchval(
                    "UPDATE executions SET cancel_requested = true WHERE id = $1 AND status = 'running' RETURNING status",
                    execution_id,
                )
                if status is not None:
                    await connection.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, execution_id)
                    return "running"
                return await connection.fetchval("SELECT status FROM executions WHERE id = $1", execution_id)

        return await self.store._run(work)

    async def wait_finished(self, execution_id: str, timeout: float) -> str | None:
        """The execution's status once it is no longer running (its owner recorded it, or the
        reaper did), or ``running`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            status = await self.store._run(
                lambda connection: connection.fetchval("SELECT status FROM executions WHERE id = $1", execution_id)
            )
            if status != "running" or loop.time() >= deadline:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _cancel_here(self, execution_id: str) -> None:
        execution = self.runs.get(execution_id)
        if execution is not None and execution.cancel():
            self.remote_cancels_total += 1

    async def _check_cancels(self) -> None:
        """Cancels whose notification never arrived (the listener was down)."""
        if not self.runs.running_count:
            return
        rows = await self.store._run(
            lambda connection: connection.fetch(
                "SELECT id FROM executions WHERE owner = $1 AND status = 'running' AND cancel_requested", self.store.node_id
            )
        )
        for row in rows:
            self._cancel_here(row["id"])

    def register_metrics(self, registry: Registry) -> None:
        registry.counter(
            "flowengine_cluster_queue_queued_total",
            "Executions this process put into the cluster run queue.",
            callback=lambda: self.queued_total,
        )
        registry.counter(
            "flowengine_cluster_queue_claimed_total",
            "Executions this process claimed from the cluster run queue and ran.",
            callback=lambda: self.claimed_total,
        )
        registry.counter(
            "flowengine_cluster_remote_cancels_total",
            "Executions this process stopped because a cancel was asked on another process.",
            callback=lambda: self.remote_cancels_total,
        )


def _plain_value(value: Any) -> Any:
    """An event field as execution inputs hold it (what ``to_value`` makes, in wire form)."""
    return to_value(value).to_json()


def _decode_cached(text: str | None) -> dict[str, dict[str, Value]] | None:
    if text is None:
        return None
    return {node: decode_recorded_outputs(node, ports) for node, ports in json.loads(text).items()}


@contextlib.asynccontextmanager
async def serve_queue(
    store: Any,
    runs: ExecutionService,
    catalog: WorkflowCatalog,
    *,
    limit: int,
    heartbeat: float,
    registry: Registry | None = None,
) -> AsyncIterator[RunQueue | None]:
    """The run queue while the block runs, for a shared store; None (nothing runs) for SQLite."""
    if store.kind != "postgresql":
        yield None
        return
    queue = RunQueue(store, runs, catalog, limit=limit, heartbeat=heartbeat)
    await queue.start()
    if registry is not None:
        queue.register_metrics(registry)
    try:
        yield queue
    finally:
        await queue.stop()
