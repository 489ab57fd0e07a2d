"""Executions as the server runs them: recorded in the history, in the foreground or the
background, cancellable, and stopped as ``interrupted`` when the server shuts down."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from .engine import Engine, Execution, ExecutionResult
from .events import serialise, utc_timestamp
from .model import Workflow
from .store import Store
from .values import Value

__all__ = ["ExecutionService", "Overloaded", "MANUAL_TRIGGER_JSON", "PRUNE_EVERY"]

log = logging.getLogger("flowengine.runs")

MANUAL_TRIGGER_JSON = serialise({"type": "manual", "id": None})  # what an API call starts
PRUNE_EVERY = 100  # finished executions between two retention passes


class Overloaded(Exception):
    """Every execution slot and queue place is taken; try again later."""


class ExecutionService:
    """Admits executions (at most ``max_concurrent`` run, ``max_queued`` more wait), records
    them, and runs them in the foreground or the background."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        *,
        max_executions: int,
        max_concurrent: int = 64,
        max_queued: int = 1000,
    ) -> None:
        self.engine = engine
        self.store = store
        self.max_executions = max_executions
        self.capacity = max_concurrent + max_queued
        self._slots = asyncio.Semaphore(max_concurrent)
        self._admitted: dict[str, Execution] = {}  # started and not yet finished, queued included
        self._background: set[asyncio.Task[Any]] = set()
        self._since_prune = 0
        self.on_finished: list[Callable[[ExecutionResult], None]] = []
        self.closing = False  # set by shutdown(): no new executions from then on

    @property
    def running_count(self) -> int:
        return len(self.engine.running)

    @property
    def queued_count(self) -> int:
        return len(self._admitted) - len(self.engine.running)

    def get(self, execution_id: str) -> Execution | None:
        """An execution that is queued or running."""
        return self._admitted.get(execution_id)

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
            workflow, inputs, record=True, trigger_json=trigger_json, cached_outputs=cached_outputs
        )
        self._admitted[execution.id] = execution
        self.store.execution_started(
            execution.id,
            workflow.id,
            workflow.version,
            trigger_json,
            serialise({name: value.to_json() for name, value in inputs.items()}),
            utc_timestamp(),
            retry_of,
        )
        return execution

    async def run(self, execution: Execution) -> ExecutionResult:
        try:
            if execution.stop_reason is None and not self._slots.locked():
                holds_slot = await self._slots.acquire()  # a slot is free: no wait
            else:
                holds_slot = await self._wait_for_slot(execution)
            try:
                result = await execution.run()
            finally:
                if holds_slot:
                    self._slots.release()
        finally:
            self._admitted.pop(execution.id, None)
        for listener in self.on_finished:
            listener(result)
        self.store.execution_finished(result, execution.events.recorded_json())
        self._since_prune += 1
        # Prune in passes, but often enough that a small limit is never far exceeded.
        if self._since_prune >= min(PRUNE_EVERY, max(1, self.max_executions // 10)):
            self._since_prune = 0
            self.store.prune_executions(self.max_executions)
        return result

    async def _wait_for_slot(self, execution: Execution) -> bool:
        """Wait for a slot (none is free now), or give up when the execution is cancelled while queued (it
        then runs without one, which stops it at once). Whether a slot was taken."""
        if execution.stop_reason is not None:
            return False  # cancelled before it was even queued
        stopped = asyncio.get_running_loop().create_future()
        execution.stop_waiters.append(stopped)
        acquiring = asyncio.ensure_future(self._slots.acquire())
        try:
            await asyncio.wait((acquiring, stopped), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if acquiring.done() and not acquiring.cancelled():
                self._slots.release()  # got it just as our caller gave up: give it back
            acquiring.cancel()
            raise
        if acquiring.done():
            return True
        acquiring.cancel()
        try:
            await acquiring  # it may have got the slot in the same turn
        except asyncio.CancelledError:
            return False
        return True

    def run_in_background(self, execution: Execution) -> asyncio.Task[ExecutionResult]:
        task = asyncio.get_running_loop().create_task(self.run(execution))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

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
