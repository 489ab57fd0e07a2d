"""Executions as the server runs them: recorded in the history, in the foreground or the
background, cancellable, and stopped as ``interrupted`` when the server shuts down.

Durable acknowledgement: with ``durable`` (FLOWENGINE_HISTORY_ACK=commit, the default) callers
that answer a client first wait for the record they answer about to be committed
(``acknowledge_start`` before a 202, ``run(..., acknowledge=True)`` before a result), so nothing
a client was told survives only in memory. New executions wait while the history writer is
behind (``admit``).

Executions nobody waits on that find no free slot here (``dispatch``) move to the cluster's run
queue on a PostgreSQL store (pgqueue.py), which hands this service the executions it claims
(``take_slots``, ``adopt``, ``run_claimed``); on SQLite they wait here for a slot."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.engine import Engine, Execution, ExecutionResult
from ..core.events import serialise, utc_timestamp
from ..core.model import Workflow
from ..core.records import durations_of, node_records, with_integer_durations
from ..core.redaction import reusable_outputs
from ..errors import Conflict, HistoryUnavailable, Overloaded, ValidationError
from ..values import Value, decode_value, encode_values
from .storage import HistoryStore

__all__ = [
    "ExecutionService",
    "HistoryUnavailable",
    "Overloaded",
    "MANUAL_TRIGGER_JSON",
    "decode_recorded_inputs",
    "decode_recorded_outputs",
]

log = logging.getLogger("flowengine.runtime.executions")

MANUAL_TRIGGER_JSON = serialise({"type": "manual", "id": None})  # what an API call starts


class _Slots:
    """At most ``limit`` executions hold a slot; the others wait in arrival order.

    Not an asyncio.Semaphore: every execution takes a slot and gives it back, and the
    semaphore's locked(), acquire() and release() are a measurable share of a small execute request;
    taking a free slot here is a counter decrement, with no coroutine."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Take a free slot at once, if there is one nobody queues for."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    def take_many(self, most: int) -> int:
        """Take up to ``most`` free slots nobody queues for; how many were taken."""
        taken = max(0, min(most, self.free)) if not self._waiters else 0
        self.free -= taken
        return taken

    def queue(self) -> asyncio.Future[None]:
        """A place in the queue: done when a slot is handed to it."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def leave(self, waiter: asyncio.Future[None]) -> None:
        """Give up a place in the queue; a slot handed to it in the meantime is given back."""
        if waiter.done():
            self.give_back()
        else:
            waiter.cancel()
            self._waiters.remove(waiter)

    def give_back(self) -> None:
        """Hand the slot to the first in the queue, or free it."""
        if self._waiters:
            self._waiters.popleft().set_result(None)
        else:
            self.free += 1


class ExecutionService:
    """Admits executions (at most ``max_concurrent`` run, ``max_queued`` more wait), records
    them, and runs them in the foreground or the background."""

    def __init__(
        self,
        engine: Engine,
        store: HistoryStore,
        *,
        max_executions: int,
        max_concurrent: int = 64,
        max_queued: int = 1000,
        durable: bool = True,
        record_limit: int = 10_000,
        room_wait: float = 10.0,
    ) -> None:
        self.room_wait = room_wait  # seconds a new execution waits for the history writer before 503
        self.engine = engine
        self.store = store
        self.durable = durable
        self.record_limit = record_limit
        self.max_executions = max_executions
        self.capacity = max_concurrent + max_queued
        self._slots = _Slots(max_concurrent)
        self._admitted: dict[str, Execution] = {}  # started and not yet finished, queued included
        self._background: set[asyncio.Task[Any]] = set()
        self._since_prune = 0
        self._prune_every = store.prune_interval(max_executions)  # finished executions between passes
        self.on_finished: list[Callable[[ExecutionResult], None]] = []
        self.closing = False  # set by shutdown(): no new executions from then on
        # The shared run queue (pgqueue.RunQueue) on a PostgreSQL store, set while it serves.
        self.queue: Any = None

    @property
    def running_count(self) -> int:
        return len(self.engine.running)

    @property
    def queued_count(self) -> int:
        return len(self._admitted) - len(self.engine.running)

    def get(self, execution_id: str) -> Execution | None:
        """An execution that is queued or running."""
        return self._admitted.get(execution_id)

    def waits_for_slot(self, execution_id: str) -> bool:
        """Whether this execution was admitted here and waits for a slot (shown ``queued``)."""
        return execution_id in self._admitted and execution_id not in self.engine.running

    # -- reading the history -------------------------------------------------------------

    async def node_records(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-node records of an execution: live statuses while it runs; once finished, those
        stored with the row (when it ended before every node ran), else folded from its events."""
        running = self.get(row["id"])
        if running is not None:
            return [
                {"node_id": node_id, "node_type": node_type, "status": status}
                for node_id, node_type, status in running.node_statuses()
            ]
        if row["nodes"] is not None:
            return with_integer_durations(json.loads(row["nodes"]))
        return node_records(json.loads(row["events"] or "[]"), await self._workflow_nodes(row))

    async def _workflow_nodes(self, row: dict[str, Any]) -> list[tuple[str, str]] | None:
        """(id, node type) of every node of the workflow version the execution ran, in document
        order; None when that document is gone, or is another workflow's: a version whose
        document is younger than the execution (an id deleted before deleted workflows kept
        their executions' versions, and re-created since, started again at version 1)."""
        kept = await self.store.workflow_version(row["workflow_id"], row["workflow_version"])
        if kept is None or kept["created_at"] > row["started_at"]:
            return None
        return [(node["id"], node["node_type"]) for node in json.loads(kept["document"]).get("nodes", ())]

    async def events_json(self, execution_id: str) -> str | None:
        """The recorded events as a JSON array: from memory while it runs, else from the store;
        None for an unknown execution."""
        running = self.get(execution_id)
        if running is not None and running.events.recorded is not None:
            return running.events.recorded_json()
        return await self.store.get_execution_events(execution_id)

    async def retry(self, row: dict[str, Any], workflow: Workflow, *, from_failure: bool) -> Execution:
        """Admit a new execution of ``workflow`` with the inputs recorded in ``row``. With
        ``from_failure`` the nodes that succeeded keep their recorded outputs, except those
        that held a secret (``reusable_outputs``). Conflict if the record cannot be replayed."""
        try:
            inputs = decode_recorded_inputs(row["inputs"])
            cached = None
            if from_failure:
                cached = reusable_outputs(workflow, _succeeded_outputs(await self.node_records(row)))
        except ValidationError as exc:  # only if the stored record was tampered with
            raise Conflict(f"the recorded execution cannot be replayed: {exc}") from None
        return await self.admit(workflow, inputs, retry_of=row["id"], cached_outputs=cached)

    async def admit(self, workflow: Workflow, inputs: dict[str, Value], **options: Any) -> Execution:
        """``start``, once the history writer has room for more (Overloaded if it has none
        after ``room_wait`` seconds): under a load the disk cannot follow, executions wait here
        rather than pile up in memory."""
        # The room check is a plain call: there is room almost always, and awaiting the store's
        # coroutine for it cost two coroutines per request.
        if not self.store.has_room() and not await self.store.wait_for_room(self.room_wait):
            raise Overloaded(
                f"the history writer is {self.store.uncommitted_bytes} bytes behind"
                " (FLOWENGINE_HISTORY_QUEUE_BYTES): try again later"
            )
        return self.start(workflow, inputs, **options)

    def start(
        self,
        workflow: Workflow,
        inputs: dict[str, Value],
        *,
        trigger: dict[str, Any] | None = None,
        retry_of: str | None = None,
        cached_outputs: dict[str, dict[str, Value]] | None = None,
    ) -> Execution:
        """Create an execution and record it as running; ``run`` or ``run_in_background`` it.
        Raises Overloaded when the queue is full."""
        if self.closing:
            raise Overloaded("the server is shutting down")
        if len(self._admitted) >= self.capacity:
            raise Overloaded(
                f"{len(self.engine.running)} executions are running and {self.queued_count} are queued"
                " (FLOWENGINE_MAX_CONCURRENT_EXECUTIONS, FLOWENGINE_MAX_QUEUED_EXECUTIONS): try again later"
            )
        trigger_json = MANUAL_TRIGGER_JSON if trigger is None else serialise(trigger)
        execution = self.engine.start(
            workflow,
            inputs,
            record=True,
            record_limit=self.record_limit,
            trigger_json=trigger_json,
            cached_outputs=cached_outputs,
        )
        self._admitted[execution.id] = execution
        self.store.execution_started(
            execution.id,
            workflow.id,
            workflow.version,
            trigger_json,
            serialise(encode_values(inputs)),
            utc_timestamp(),
            retry_of,
        )
        return execution

    async def acknowledge_start(self, execution: Execution) -> None:
        """Wait until the execution's start is committed (when ``durable``), so a 202 for it
        survives a crash. HistoryUnavailable (and the execution cancelled) if it cannot be."""
        try:
            await self._committed()
        except HistoryUnavailable:
            execution.cancel("its record could not be written")
            raise

    async def _committed(self) -> None:
        if not self.durable:
            return
        outcome = await self.store.committed()
        if outcome is not None:
            raise HistoryUnavailable(f"the execution's record could not be written: {outcome}")

    async def wait_recorded(self, execution: Execution) -> None:
        """Once ``execution.finished`` is done, wait (when ``durable``) until its final record is
        committed: for answers about how it ended. ``run`` queues that record in the same step
        in which the execution's result is set, before anyone awaiting ``finished`` resumes."""
        await self._committed()

    async def run(self, execution: Execution, *, acknowledge: bool = False, holds_slot: bool = False) -> ExecutionResult:
        """Run the execution and queue its final record; with ``acknowledge`` also wait (when
        ``durable``) until that record is committed, for a caller about to answer with it.
        ``holds_slot``: the caller took a slot for it."""
        try:
            if not holds_slot:
                if execution.stop_reason is None and self._slots.take():
                    holds_slot = True
                else:
                    holds_slot = await self._wait_for_slot(execution)
            try:
                result = await execution.run()
            finally:
                if holds_slot:
                    self._give_back()
        finally:
            self._admitted.pop(execution.id, None)
        for listener in self.on_finished:
            listener(result)
        nodes_json = None
        if "pending" in result.node_statuses:
            # It ended before every node ran, so the events do not name every node, and the
            # workflow's document may be gone by the time someone reads the record: store it.
            nodes_json = serialise(node_records(json.loads(execution.events.recorded_json()), _node_list(execution)))
        elif execution.events.dropped:
            # The record lost events in the middle, so folding it may miss nodes: store the
            # records, with each node's final status and duration from the result.
            nodes_json = serialise(_records_of(execution, result, execution.events.recorded_json()))
        self.store.execution_finished(result, execution.events.record(), nodes_json)
        self._since_prune += 1
        if self._since_prune >= self._prune_every:
            self._since_prune = 0
            self.store.prune_executions(self.max_executions)
        if acknowledge:
            await self._committed()
        return result

    async def _wait_for_slot(self, execution: Execution) -> bool:
        """Wait for a slot (none is free now), or give up when the execution is cancelled while queued (it
        then runs without one, which stops it at once). Whether a slot was taken."""
        if execution.stop_reason is not None:
            return False  # cancelled before it was even queued
        stopped = asyncio.get_running_loop().create_future()
        execution.stop_waiters.append(stopped)
        waiter = self._slots.queue()
        try:
            await asyncio.wait((waiter, stopped), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._slots.leave(waiter)
            raise
        if waiter.done():  # handed a slot, perhaps in the same turn as the stop: run (and stop)
            return True
        self._slots.leave(waiter)
        return False

    def _give_back(self) -> None:
        self._slots.give_back()
        if self.queue is not None:
            self.queue.slot_freed()

    def run_in_background(self, execution: Execution, *, holds_slot: bool = False) -> asyncio.Task[ExecutionResult]:
        task = asyncio.get_running_loop().create_task(self.run(execution, holds_slot=holds_slot))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def dispatch(self, execution: Execution) -> str:
        """Run a started execution in the background for a client that does not wait
        (``?wait=false``), once its start is acknowledged: ``running`` when a slot is free here.
        Otherwise ``queued``: on a shared store it moves to the cluster's run queue, where any
        process with a free slot claims it (Overloaded when that queue is full); alone, it
        waits here for a slot."""
        if execution.stop_reason is None and self._slots.take():
            self.run_in_background(execution, holds_slot=True)
            await self.acknowledge_start(execution)
            return "running"
        if self.queue is None or self.closing:
            self.run_in_background(execution)
            await self.acknowledge_start(execution)
            return "queued"
        # Its running row must be committed before it is turned into a queued one, even when
        # answers do not wait for commits (FLOWENGINE_HISTORY_ACK=async).
        problem = await self.store.committed()
        if problem is not None:
            execution.cancel("its record could not be written")
            self.run_in_background(execution)  # cancelled: it ends at once, recorded so
            raise HistoryUnavailable(f"the execution's record could not be written: {problem}")
        try:
            await self.queue.hand_off(execution, execution.cached_outputs)
        except Overloaded:
            self._admitted.pop(execution.id, None)  # its row is gone: it never existed
            raise
        except Exception as exc:
            # The database failed in the middle: the running row stays this process's, so it
            # waits here for a slot as on a store of its own.
            log.warning("execution %s could not be queued for the cluster (%s): it waits for a slot here", execution.id, exc)
            self.run_in_background(execution)
            return "queued"
        self._admitted.pop(execution.id, None)
        return "queued"

    def take_slots(self, most: int) -> int:
        """Take up to ``most`` free slots for executions claimed from the run queue."""
        if self.closing:
            return 0
        return self._slots.take_many(min(most, self.capacity - len(self._admitted)))

    def give_back_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.give_back()

    def adopt(
        self,
        workflow: Workflow,
        execution_id: str,
        inputs: dict[str, Value],
        *,
        trigger_json: str,
        cached_outputs: dict[str, dict[str, Value]] | None = None,
    ) -> Execution:
        """An execution claimed from the run queue, whose row the claim made running here."""
        execution = self.engine.start(
            workflow,
            inputs,
            execution_id=execution_id,
            record=True,
            record_limit=self.record_limit,
            trigger_json=trigger_json,
            cached_outputs=cached_outputs,
        )
        self._admitted[execution.id] = execution
        return execution

    def run_claimed(self, execution: Execution) -> asyncio.Task[ExecutionResult]:
        """Run an adopted execution on the slot taken for it by ``take_slots``."""
        return self.run_in_background(execution, holds_slot=True)

    async def shutdown(self) -> None:
        """Stop what still runs (recorded as ``interrupted``) and wait for it to be recorded.
        From now on nothing new starts (triggers included)."""
        self.closing = True
        for execution in list(self._admitted.values()):
            execution.cancel("the server shut down while the execution ran", status="interrupted")
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        # Synchronous callers' executions finish on their own request tasks; give them a turn.
        for _ in range(3):
            if not self._admitted:
                break
            await asyncio.sleep(0.05)
        self.store.prune_executions(self.max_executions)


def _node_list(execution: Execution) -> list[tuple[str, str]]:
    return [(node.id, node.node_type) for node in execution.plan.nodes]


def _records_of(execution: Execution, result: ExecutionResult, events_json: str) -> list[dict[str, Any]]:
    """Per-node records of an execution whose record dropped events: folded from what was kept,
    with the status and duration of each node taken from the result."""
    records = node_records(json.loads(events_json), _node_list(execution))
    for record, status, duration_us in zip(records, result.node_statuses, result.node_durations_us):
        record["status"] = status
        record["duration_ms"], record["duration_us"] = durations_of(None, duration_us)
    return records


def decode_recorded_inputs(text: str) -> dict[str, Value]:
    """An execution's inputs as the history stores them (JSON text of typed values), decoded
    strictly: the record was written by us, so anything else means it was tampered with
    (ValidationError)."""
    return {name: decode_value(item, f"inputs.{name}", strict=True) for name, item in json.loads(text).items()}


def decode_recorded_outputs(node_id: str, outputs: dict[str, Any]) -> dict[str, Value]:
    """One node's recorded outputs (typed JSON by port), decoded strictly, as for the inputs."""
    return {port: decode_value(value, f"nodes.{node_id}.outputs.{port}", strict=True) for port, value in outputs.items()}


def _succeeded_outputs(records: list[dict[str, Any]]) -> dict[str, dict[str, Value]]:
    return {
        record["node_id"]: decode_recorded_outputs(record["node_id"], record["outputs"])
        for record in records
        if record["status"] == "succeeded" and record["outputs"] is not None
    }
