"""The scheduler: runs the plan of a workflow version (DESIGN.md section 5).

An Execution runs a plan (plan.py): each node starts the moment all its predecessors have finished, at
most ``max_parallel_nodes`` bodies at once (a ready queue and a running count play the part of
a semaphore without parking a task per waiting node), with per-node retries and timeouts, a
workflow-wide time limit, and the StopWorkflow / ContinueOnError / RetryWorkflow policies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import abc, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..errors import NodeError, ValidationError
from ..nodes.api import NodeContext, NodeType
from ..nodes.registry import NodeRegistry
from ..values import Value, decode_value, encode_values, to_value
from . import eager, wire
from .events import EventBus, ExecutionEvents, serialise
from .ids import new_execution_id
from .model import Node, Workflow
from .plan import Plan
from .redaction import Redactor, resolve_secrets
from .timestamps import millis_timestamp

__all__ = [
    "Plan",
    "Execution",
    "ExecutionResult",
    "SinkOutputs",
    "Engine",
    "decode_inputs",
    "new_execution_id",
    "EXECUTION_STATUSES",
    "NODE_STATUSES",
    "ExecutionStatus",
    "NodeStatus",
]

log = logging.getLogger("flowengine.core.engine")


# Node and execution statuses (DESIGN.md section 5).
NodeStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
ExecutionStatus = Literal["queued", "running", "succeeded", "failed", "completed_with_errors", "cancelled", "interrupted"]
NODE_STATUSES: tuple[NodeStatus, ...] = get_args(NodeStatus)
EXECUTION_STATUSES: tuple[ExecutionStatus, ...] = get_args(ExecutionStatus)
StopReason = Literal["cancelled", "interrupted", "timeout"]
PENDING: NodeStatus = "pending"
RUNNING: NodeStatus = "running"
SUCCEEDED: NodeStatus = "succeeded"
FAILED: NodeStatus = "failed"
SKIPPED: NodeStatus = "skipped"
CANCELLED: NodeStatus = "cancelled"


def decode_inputs(raw: Any) -> dict[str, Value]:
    """Execution inputs: an object of typed or plain values (DESIGN.md section 3)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("inputs: expected an object")
    inputs = {}
    for name, item in raw.items():  # a loop: a comprehension costs a call of its own
        inputs[name] = decode_value(item, f"inputs.{name}", strict=False)
    return inputs


@dataclass(slots=True)
class ExecutionResult:
    execution_id: str
    workflow_id: str
    workflow_version: int
    status: ExecutionStatus
    started_at: str
    finished_at: str
    duration_us: int  # whole microseconds; duration_ms is derived from it
    completed_nodes: int
    total_nodes: int
    attempts: int
    sink_outputs: SinkOutputs  # ``outputs`` and ``outputs_json``, encoded when first asked for
    failed_nodes: list[dict[str, str]]
    skipped_nodes: list[str]
    cancelled_nodes: list[str]
    error: str | None
    # Every node's type, status and duration in microseconds, in plan order, for the metrics
    node_types: list[str]
    node_statuses: list[NodeStatus]
    node_durations_us: list[int | None]

    @property
    def success(self) -> bool:
        return self.status == "succeeded"

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """The outputs of every sink node that produced some, as typed JSON, by node id."""
        return self.sink_outputs.encoded()[0]

    @property
    def outputs_json(self) -> str:
        """The same as JSON text."""
        return self.sink_outputs.encoded()[1]

    @property
    def duration_ms(self) -> int:
        """Whole milliseconds, truncated (as the upstream's ``Duration::as_millis``)."""
        return self.duration_us // 1000

    @property
    def node_durations(self) -> list[float | None]:
        """Each node's duration in (fractional) milliseconds, for the metrics histograms."""
        return [None if us is None else us / 1000 for us in self.node_durations_us]

    def response_json(self) -> str:
        """The execute response body as JSON text (``wire.execute_response``)."""
        return wire.execute_response(self)


class SinkOutputs:
    """The sink nodes' outputs in an execution's result, encoded only when first asked for:
    only a synchronous execute answer shows them, and a wide fan-out has thousands of sinks.
    Holds the outputs the nodes produced (and any encoding already made for their events)."""

    __slots__ = ("_encoded", "_sinks")

    def __init__(
        self,
        sinks: list[tuple[str, dict[str, Value], dict[str, Any] | None, str | None]] | None,
        encoded: tuple[dict[str, dict[str, Any]], str] | None = None,
    ) -> None:
        self._sinks = sinks  # (node id, outputs, their typed JSON or None, as text or None)
        self._encoded = encoded

    def encoded(self) -> tuple[dict[str, dict[str, Any]], str]:
        """(outputs as typed JSON by node id, the same as JSON text)."""
        encoded = self._encoded
        if encoded is None:
            outputs = {}
            texts = []
            for node_id, produced, as_json, text in self._sinks or ():
                if as_json is None:
                    as_json = encode_values(produced)
                outputs[node_id] = as_json
                texts.append(wire.member(node_id, serialise(as_json) if text is None else text))
            encoded = self._encoded = (outputs, wire.object_of(texts))
            self._sinks = None
        return encoded


SleepFn = Callable[[float], Awaitable[None]]

# Node starts between two turns of the event loop while bodies run inline (plain ones, and
# async ones that end without suspending).
_INLINE_BUDGET = 500


class Engine:
    """Runs plans. One per server (or per CLI run); holds what every execution shares."""

    def __init__(
        self,
        registry: NodeRegistry,
        bus: EventBus,
        *,
        http: Any = None,
        sleep: SleepFn = asyncio.sleep,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.registry = registry
        self.bus = bus
        self.http = http
        self.sleep = sleep
        self.environ = environ
        self.running: dict[str, Execution] = {}
        self._plans: dict[tuple[str, int], Plan] = {}
        self.redactor = Redactor()  # the secrets this engine's executions resolved, masked in all they show

    def plan(self, workflow: Workflow) -> Plan:
        """The plan for this workflow version, built once and cached."""
        key = (workflow.id, workflow.version)
        plan = self._plans.get(key)
        if plan is None or plan.workflow is not workflow:
            plan = self._plans[key] = Plan.build(workflow, self.registry)
        return plan

    def forget(self, workflow_id: str) -> None:
        """Drop cached plans of a deleted or replaced workflow (running executions keep theirs)."""
        for key in [key for key in self._plans if key[0] == workflow_id]:
            del self._plans[key]

    def start(
        self,
        workflow: Workflow,
        inputs: dict[str, Value],
        *,
        execution_id: str | None = None,
        record: bool = False,
        record_limit: int = 10_000,
        trigger_json: str | None = None,
        cached_outputs: dict[str, dict[str, Value]] | None = None,
    ) -> Execution:
        """Create an execution (not yet running): ``await execution.run()`` runs it.
        ``trigger_json`` (what started it, as JSON text) goes into WorkflowStarted; with
        ``record`` its events are kept (at most ``record_limit``) for the history."""
        execution_id = execution_id or new_execution_id()
        events = ExecutionEvents(
            self.bus, execution_id, workflow.id, record=record, record_limit=record_limit, redactor=self.redactor
        )
        return Execution(self, self.plan(workflow), inputs, events, trigger_json, cached_outputs or {})

    async def execute(self, workflow: Workflow, inputs: dict[str, Value] | None = None, **options: Any) -> ExecutionResult:
        return await self.start(workflow, inputs or {}, **options).run()


class Execution:
    """One execution of a plan: all attempts under one execution id, cancellable."""

    # Slots: an execution is made per request, and slot attributes are set and read faster.
    __slots__ = (
        "_finished",
        "attempt",
        "attempts",
        "cached_outputs",
        "engine",
        "events",
        "id",
        "inputs",
        "plan",
        "result",
        "started",
        "stop_message",
        "stop_reason",
        "stop_waiters",
        "trigger_json",
    )

    def __init__(
        self,
        engine: Engine,
        plan: Plan,
        inputs: dict[str, Value],
        events: ExecutionEvents,
        trigger_json: str | None,
        cached_outputs: dict[str, dict[str, Value]],
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.inputs = inputs
        self.events = events
        self.id = events.execution_id
        self.trigger_json = trigger_json  # what started it, as JSON text (events and history)
        self.cached_outputs = cached_outputs
        self.attempt: _Attempt | None = None
        self.attempts = 0
        self.stop_reason: StopReason | None = None  # set once stopped
        self.stop_message: str | None = None  # why, for an attempt that starts after the stop
        self.result: ExecutionResult | None = None
        self._finished: asyncio.Future[ExecutionResult] | None = None  # made when first asked for
        self.stop_waiters: list[asyncio.Future[None]] = []  # woken by cancel(), e.g. in a queue
        self.started = 0.0  # perf_counter at the start of run(): node start times count from it

    @property
    def finished(self) -> asyncio.Future[ExecutionResult]:
        """Done, with the result, when the execution has ended."""
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
            if self.result is not None:
                self._finished.set_result(self.result)
        return self._finished

    def node_statuses(self) -> list[tuple[str, str, str]]:
        """(node id, node type, status) of every node in the current attempt, in plan order;
        empty once the execution has ended (its result says how each node ended)."""
        attempt = self.attempt
        if attempt is None:
            return []
        return [(node.id, node.node_type, status) for node, status in zip(self.plan.nodes, attempt.status)]

    def recorded_events(self) -> list[str] | None:
        """The events recorded so far (JSON texts, in seq order), or None when not recording."""
        return None if self.events.recorded is None else self.events.recorded_texts()

    def cancel(
        self, reason: str = "execution cancelled", *, status: Literal["cancelled", "interrupted"] = "cancelled"
    ) -> bool:
        """Stop the execution: running nodes are cancelled and no new ones start. ``status``
        is ``cancelled``, or ``interrupted`` when the server is shutting down."""
        if self.result is not None or self.stop_reason is not None:
            return False
        self._stop(status, reason)
        return True

    def _time_out(self) -> None:
        limit = self.plan.workflow.settings.max_execution_time_ms
        self._stop("timeout", f"Workflow execution timed out: exceeded max_execution_time_ms ({limit} ms)")

    def _stop(self, reason: StopReason, message: str) -> None:
        if self.result is not None or self.stop_reason is not None:
            return
        self.stop_reason, self.stop_message = reason, message
        if self.attempt is not None:
            self.attempt.abort(message)
        for waiter in self.stop_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def run(self) -> ExecutionResult:
        engine, plan, events = self.engine, self.plan, self.events
        settings = plan.workflow.settings
        started_ns = time.time_ns()
        self.started = time.perf_counter()
        started_millis = started_ns // 1_000_000
        started_at = millis_timestamp(started_millis)
        engine.running[self.id] = self
        # The first and last events carry the execution's started_at and finished_at exactly.
        events.emit_text("WorkflowStarted", wire.workflow_started(self.trigger_json), started_millis)
        timer = None
        max_attempts = settings.retry_workflow_attempts if settings.on_error == "RetryWorkflow" else 1
        attempt = self.attempt = _Attempt(self)
        try:
            # Inside the try: whatever happens from here, the finally below records a result.
            if settings.max_execution_time_ms is not None:
                timer = asyncio.get_running_loop().call_later(settings.max_execution_time_ms / 1000, self._time_out)
            while True:
                self.attempts += 1
                waiter = attempt.start()
                if waiter is not None:
                    # Shielded: if our caller is cancelled, the waiter must stay pending so that
                    # the abort that follows still cancels the running nodes.
                    await asyncio.shield(waiter)
                if attempt.failure is None or self.stop_reason is not None or self.attempts >= max_attempts:
                    break
                # Numbered even when nobody listens, so seq agrees with every other event's.
                events.emit(
                    "NodeEvent",
                    {
                        "node_id": None,
                        "event": {
                            "event_type": "Warning",
                            "message": f"attempt {self.attempts} of {max_attempts} failed: {attempt.failure};"
                            " running the workflow again (RetryWorkflow)",
                            "attempt": self.attempts,
                            "max_attempts": max_attempts,
                        },
                    },
                )
                attempt = self.attempt = _Attempt(self)
        except asyncio.CancelledError:
            # Whoever awaited us was cancelled: stop the nodes too rather than leave them orphaned.
            self.cancel("the execution's caller was cancelled")
            raise
        finally:
            if timer is not None:
                timer.cancel()
            engine.running.pop(self.id, None)
            attempt.close()
            elapsed = time.perf_counter() - self.started
            # From the same clock as the duration, so finished_at - started_at agrees with it.
            finished_millis = (started_ns + int(elapsed * 1_000_000_000)) // 1_000_000
            result = self.result = self._result(attempt, started_at, millis_timestamp(finished_millis), elapsed)
            events.emit_text(
                "WorkflowCompleted", wire.workflow_completed(result.success, result.status, result.duration_us),
                finished_millis,
            )
            self.attempt = None  # break the execution <-> attempt cycle for the garbage collector
            if self._finished is not None:
                self._finished.set_result(result)
        return result

    def _result(self, attempt: _Attempt, started_at: str, finished_at: str, elapsed: float) -> ExecutionResult:
        plan = self.plan
        nodes = plan.nodes
        statuses = attempt.status
        completed = statuses.count(SUCCEEDED)
        if completed == len(nodes):  # the usual case: no list of failed/skipped/cancelled to make
            failed, skipped_nodes, cancelled_nodes = [], [], []
        else:
            failed = [index for index, state in enumerate(statuses) if state == FAILED]
            skipped_nodes = [nodes[index].id for index, state in enumerate(statuses) if state == SKIPPED]
            cancelled_nodes = [nodes[index].id for index, state in enumerate(statuses) if state == CANCELLED]
        # A stop that came after the last node finished changes nothing: only a stop that cut
        # the attempt short (attempt.failure) makes it cancelled/interrupted/failed.
        status: ExecutionStatus
        if attempt.failure is not None:
            status = "cancelled" if self.stop_reason == "cancelled" else "interrupted" if self.stop_reason == "interrupted" else "failed"
        elif failed:
            status = "completed_with_errors"
        else:
            status = "succeeded"
        produced, encoded, encoded_text = attempt.outputs, attempt.encoded, attempt.encoded_text
        sinks = []
        for index in plan.sinks:  # a loop: a comprehension costs a call of its own
            outputs = produced[index]
            if outputs is not None:
                sinks.append((nodes[index].id, outputs, encoded[index], encoded_text[index]))
        sink_outputs = SinkOutputs(sinks)
        failed_nodes = [{"node_id": nodes[index].id, "error": attempt.errors[index]} for index in failed] if failed else []
        error = attempt.failure if status in ("failed", "cancelled", "interrupted") else None
        redactor = self.engine.redactor
        if redactor.pattern is not None:  # a node may have echoed a secret: mask it in all we show
            # Now, not when asked for: what is masked is what this engine knew at the end.
            outputs, failed_nodes = redactor.redact_json([sink_outputs.encoded()[0], failed_nodes])
            sink_outputs = SinkOutputs(None, (outputs, serialise(outputs)))
            error = None if error is None else redactor.redact_text(error)
        return ExecutionResult(
            self.id,
            plan.workflow.id,
            plan.workflow.version,
            status,
            started_at,
            finished_at,
            microseconds(elapsed),
            completed,
            len(nodes),
            self.attempts,
            sink_outputs,
            failed_nodes,
            skipped_nodes,
            cancelled_nodes,
            error,
            plan.type_names,
            statuses,
            attempt.durations,
        )


class _Attempt:
    """One pass over the plan. Completion callbacks only queue work; ``_pump`` starts it, so
    neither long chains nor wide fan-outs recurse, and every node is started, finished and
    released exactly once: O(nodes + connections) per pass."""

    __slots__ = (
        "_on_body_done",
        "_on_task_done",
        "cached",
        "closed",
        "durations",
        "encoded",
        "encoded_text",
        "errors",
        "events",
        "execution",
        "failure",
        "finished",
        "finished_count",
        "max_parallel",
        "node_attempts",
        "outputs",
        "plan",
        "ready",
        "remaining",
        "resume_scheduled",
        "started_at",
        "status",
        "stop_on_error",
        "stopped",
        "tasks",
        "waiter",
    )

    def __init__(self, execution: Execution) -> None:
        plan = execution.plan
        count = len(plan.nodes)
        self.execution = execution
        self.plan = plan
        self.events = execution.events
        self.remaining = list(plan.predecessor_count)
        self.outputs: list[dict[str, Value] | None] = [None] * count
        self.status: list[NodeStatus] = [PENDING] * count
        self.node_attempts = [0] * count
        self.started_at: list[float | None] = [None] * count
        self.durations: list[int | None] = [None] * count  # microseconds
        self.errors: dict[int, str] = {}
        self.cached: set[int] | None = None  # nodes whose outputs came from cached_outputs
        self.encoded: list[dict[str, Any] | None] = [None] * count  # outputs in wire form, once
        self.encoded_text: list[str | None] = [None] * count  # and as JSON text
        self.ready = deque(plan.roots)
        self.tasks: dict[asyncio.Task[Any], int] = {}  # the running nodes' tasks: node index by task
        # One bound method for every task's callback, made with the first task that needs it.
        self._on_task_done: Callable[[asyncio.Task[Any]], None] | None = None
        self._on_body_done: Callable[[asyncio.Task[Any]], None] | None = None
        self.finished_count = 0
        self.max_parallel = plan.workflow.settings.max_parallel_nodes
        self.stop_on_error = plan.workflow.settings.on_error != "ContinueOnError"
        self.failure: str | None = None
        self.stopped = False
        self.closed = False  # the execution has taken its result from this attempt
        self.resume_scheduled = False
        self.finished = False
        # Made only when the attempt has to be waited for: plain bodies often finish inline.
        self.waiter: asyncio.Future[None] | None = None

    def start(self) -> asyncio.Future[None] | None:
        """Start the nodes that can start. None when that already finished the attempt (plain
        bodies, and async ones that end without suspending), else a future done when it ends."""
        if self.execution.stop_reason is not None:
            self.abort(self.execution.stop_message or "execution cancelled")
        self._pump()
        if self.finished:
            return None
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        return waiter

    def abort(self, reason: str) -> None:
        """Stop starting nodes and cancel the running ones; ``reason`` becomes the error.
        An attempt that has already finished is left as it is."""
        if self.finished:
            return
        if self.failure is None:
            self.failure = reason
        self.stopped = True
        for task in list(self.tasks):
            task.cancel()
        self._check_done()

    def close(self) -> None:
        """The execution is taking its result now. Nodes whose cancellation has not been
        reported yet (the caller itself was cancelled) are reported cancelled here, and their
        late completion callbacks change nothing."""
        if self.tasks and self.stopped:
            elapsed_now = time.perf_counter()
            for index in list(self.tasks.values()):
                started = self.started_at[index] or elapsed_now
                self._complete(index, CANCELLED, f"cancelled: {self.failure}", elapsed_now - started)
        self.closed = True
        # No attempt <-> callback cycle left.
        self._on_task_done = self._on_body_done = None

    def _check_done(self) -> None:
        if not self.finished and (self.finished_count == len(self.status) or (self.stopped and not self.tasks)):
            self.finished = True
            if self.waiter is not None:
                self.waiter.set_result(None)

    def _pump(self) -> None:
        ready = self.ready
        budget = _INLINE_BUDGET
        while ready and not self.stopped and len(self.tasks) < self.max_parallel:
            if budget == 0:
                # Plain bodies, and async ones that end without suspending, run inline; after a
                # batch of them let the event loop serve other requests, then carry on (a
                # 10,000-node chain must not freeze it).
                if not self.resume_scheduled:
                    self.resume_scheduled = True
                    asyncio.get_running_loop().call_soon(self._resume)
                break
            budget -= 1
            self._start(ready.popleft())
        self._check_done()

    def _resume(self) -> None:
        self.resume_scheduled = False
        if not self.finished:
            self._pump()

    # -- starting a node -----------------------------------------------------------------

    def _start(self, index: int) -> None:
        plan = self.plan
        node = plan.nodes[index]
        first, end = plan.incoming_start[index], plan.incoming_start[index + 1]
        if first != end:
            inputs: dict[str, Value] = {}
            for source, from_port, to_port in plan.incoming[first:end]:
                produced = self.outputs[source]
                if produced is not None:
                    # from_port None: all of the source's outputs as one Object (plan.py)
                    value = produced.get(from_port) if from_port is not None else _all_outputs(produced)
                    if value is not None:
                        inputs[to_port] = value
            if not inputs:
                self._skip(index, "no incoming connection delivered a value")
                return
        else:
            accepted = plan.accepted_inputs[index]
            if accepted is None:
                inputs = dict(self.execution.inputs)
            else:
                inputs = {}
                if accepted:  # a loop, not a comprehension: a root takes few inputs, if any
                    for name, value in self.execution.inputs.items():
                        if name in accepted:
                            inputs[name] = value

        cached_outputs = self.execution.cached_outputs
        if cached_outputs and (cached := cached_outputs.get(node.id)) is not None:
            if self.cached is None:
                self.cached = set()
            self.cached.add(index)
            self.started_at[index] = time.perf_counter()
            self._emit_started(index)
            self._complete(index, SUCCEEDED, cached, 0.0)
            return

        node_type = plan.node_types[index]
        config = plan.base_config[index]
        try:
            if plan.has_secrets[index]:
                config = self._resolve_secrets(config)
            for port in node_type.inputs:
                if port.name not in inputs:
                    fallback = config.get(port.name)
                    if fallback is not None:
                        inputs[port.name] = fallback
                    elif port.default is not None:
                        inputs[port.name] = to_value(port.default)
                    elif port.required:
                        raise NodeError(f"missing required input '{port.name}'")
        except NodeError as exc:
            self.started_at[index] = time.perf_counter()
            self._emit_started(index)
            self._complete(index, FAILED, str(exc), 0.0)
            return

        context = NodeContext(
            node.id, node.node_type, self.execution.id, inputs, config, 1, self.execution.engine.http, self._emit_node_event
        )
        self.status[index] = RUNNING
        self.started_at[index] = started = time.perf_counter()
        self._emit_started(index)
        if not node_type.is_async and node.retry_policy is None:
            # A plain-function body runs inline: no task, no event-loop hop.
            self.node_attempts[index] = 1
            try:
                result = node_type.run(context)
            except Exception as exc:
                status, payload = _body_outcome(node, None, exc)
            else:
                status, payload = _body_outcome(node, result, None)
            self._complete(index, status, payload, time.perf_counter() - started)
            return
        if node.retry_policy is None and node.timeout_ms is None:
            # One attempt, no time limit: the body starts now, as an eager task (eager.py). If it
            # ends without suspending it completes here like a plain body; if it suspends, the
            # task that carries on with it is the node's, and _body_done reads its outcome.
            self.node_attempts[index] = 1
            task, result, error = eager.start(asyncio.get_running_loop(), node_type.run(context))
            if task is None:
                if isinstance(error, asyncio.CancelledError):
                    status, payload = self._cancelled()
                else:
                    status, payload = _body_outcome(node, result, error)
                self._complete(index, status, payload, time.perf_counter() - started)
                return
            callback = self._on_body_done
            if callback is None:
                callback = self._on_body_done = self._body_done
            task.add_done_callback(callback)
        else:
            task = asyncio.get_running_loop().create_task(self._run_node(index, node, node_type, context))
            callback = self._on_task_done
            if callback is None:
                callback = self._on_task_done = self._task_done
            task.add_done_callback(callback)
        self.tasks[task] = index

    def _resolve_secrets(self, config: dict[str, Value]) -> dict[str, Value]:
        environ = self.execution.engine.environ
        try:
            redactor = self.execution.engine.redactor
            return {key: resolve_secrets(value, redactor, environ) for key, value in config.items()}
        except LookupError as exc:
            raise NodeError(str(exc)) from None

    def _emit_started(self, index: int) -> None:
        plan = self.plan
        fields = plan.started_fields[index]
        if fields is None:
            node = plan.nodes[index]
            fields = plan.started_fields[index] = wire.node_started(node.id, node.node_type)
        self.events.emit_text("NodeStarted", fields)  # numbered, and built only if wanted

    def _emit_node_event(self, node_id: str, event_type: str, fields: dict[str, Any]) -> None:
        event = {"event_type": event_type, **fields}
        event["event_type"] = event_type  # a body's own "event_type" keyword must not relabel it
        self.events.emit("NodeEvent", {"node_id": node_id, "event": event})

    # -- running a node body -------------------------------------------------------------

    async def _run_node(
        self, index: int, node: Node, node_type: NodeType, context: NodeContext
    ) -> tuple[NodeStatus, Any]:
        policy = node.retry_policy
        max_attempts = policy.max_attempts if policy is not None else 1
        timeout_ms = node.timeout_ms
        attempt = 0
        while True:
            attempt += 1
            context.attempt = attempt
            self.node_attempts[index] = attempt
            timed_out = False
            try:
                if timeout_ms is None:
                    result = node_type.run(context)
                    if node_type.is_async:
                        result = await result
                else:
                    limit = asyncio.timeout(timeout_ms / 1000)
                    try:
                        async with limit:
                            result = node_type.run(context)
                            if node_type.is_async:
                                result = await result
                    except TimeoutError:
                        if not limit.expired():
                            raise
                        timed_out = True
                        raise NodeError(f"timed out after {timeout_ms} ms (timeout_ms)") from None
                return SUCCEEDED, _as_outputs(result)
            except NodeError as exc:
                error = str(exc) or type(exc).__name__
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = _report_crash(exc, node)
            if attempt >= max_attempts or (timed_out and not policy.retry_on_timeout):  # type: ignore[union-attr]
                return FAILED, error
            delay = policy.delay_before_retry(attempt - 1)  # type: ignore[union-attr]
            delay_ms = round(delay * 1000, 3)
            self._emit_node_event(
                node.id,
                "Warning",
                {
                    "message": f"attempt {attempt} of {max_attempts} failed: {error}; retrying in {delay_ms:g} ms",
                    "attempt": attempt,
                    "max_attempts": max_attempts,
                    "delay_ms": delay_ms,
                    "error": error,
                },
            )
            await self.execution.engine.sleep(delay)

    def _ended(self, task: asyncio.Task[Any]) -> int | None:
        """The index of the node whose task ended, forgotten; None once the execution has taken
        its result from this attempt (a late callback then changes nothing)."""
        index = self.tasks.pop(task)
        return None if self.closed else index

    def _finish(self, index: int, status: NodeStatus, payload: Any) -> None:
        self._complete(index, status, payload, time.perf_counter() - self.started_at[index])  # type: ignore[operator]
        self._pump()

    def _cancelled(self) -> tuple[NodeStatus, str]:
        return CANCELLED, f"cancelled: {self.failure or 'execution stopped'}"

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A ``_run_node`` task ended: its result is the node's (status, payload)."""
        index = self._ended(task)
        if index is None:
            return
        if task.cancelled():
            status, payload = self._cancelled()
        elif (crash := task.exception()) is not None:
            # Not the body (its errors are caught in _run_node) but the engine around it, e.g. an
            # injected sleep: fail the node rather than leave the attempt waiting for ever.
            status, payload = FAILED, _report_crash(crash, self.plan.nodes[index])
        else:
            status, payload = task.result()
        self._finish(index, status, payload)

    def _body_done(self, task: asyncio.Task[Any]) -> None:
        """A task running a body directly ended: its result or exception is the body's own."""
        index = self._ended(task)
        if index is None:
            return
        if task.cancelled():
            status, payload = self._cancelled()
        else:
            error = task.exception()
            status, payload = _body_outcome(self.plan.nodes[index], None if error else task.result(), error)
        self._finish(index, status, payload)

    # -- finishing a node ----------------------------------------------------------------

    def outputs_json(self, index: int) -> str:
        """A succeeded node's outputs as JSON text, made once for the NodeCompleted event and the
        result (beside the typed JSON it is made from, kept for the result's ``outputs``)."""
        text = self.encoded_text[index]
        if text is None:
            encoded = self.encoded[index]
            if encoded is None:
                encoded = self.encoded[index] = encode_values(self.outputs[index] or {})
            text = self.encoded_text[index] = serialise(encoded)
        return text

    def _complete(self, index: int, status: NodeStatus, payload: Any, elapsed: float) -> None:
        """Record a node's outcome and queue successors whose predecessors have all finished."""
        node = self.plan.nodes[index]
        duration_us = microseconds(elapsed)
        self.status[index] = status
        self.durations[index] = duration_us
        events = self.events
        if status == SUCCEEDED:
            self.outputs[index] = payload
            if events.wanted:
                events.emit_text(
                    "NodeCompleted",
                    wire.node_completed(
                        node.id, self.outputs_json(index), duration_us, self.node_attempts[index],
                        self.cached is not None and index in self.cached,
                    ),
                )
            else:
                events.skip()
        else:
            self.errors[index] = payload
            events.emit(
                "NodeFailed",
                {
                    "node_id": node.id,
                    "node_type": node.node_type,
                    "error": payload,
                    "duration_ms": duration_us // 1000,
                    "duration_us": duration_us,
                    "attempts": self.node_attempts[index],
                    **({"cancelled": True} if status == CANCELLED else {}),
                },
            )
            if status == FAILED and self.stop_on_error and not self.stopped:
                self.abort(f"Node execution failed: node '{node.id}' ({node.node_type}): {payload}")
        self._release(index)

    def _skip(self, index: int, reason: str) -> None:
        self.status[index] = SKIPPED
        node = self.plan.nodes[index]
        self.events.emit("NodeSkipped", {"node_id": node.id, "node_type": node.node_type, "reason": reason})
        self._release(index)

    def _release(self, index: int) -> None:
        self.finished_count += 1
        remaining = self.remaining
        ready = self.ready
        plan = self.plan
        for successor in plan.successors[plan.successor_start[index] : plan.successor_start[index + 1]]:
            remaining[successor] -= 1
            if remaining[successor] == 0:
                ready.append(successor)


def _all_outputs(produced: dict[str, Value]) -> Value | None:
    return Value("Object", dict(produced)) if produced else None


def microseconds(seconds: float) -> int:
    """A duration in whole microseconds, truncated: the wire carries integers (milliseconds
    as the upstream's ``u64``, and microseconds beside them so no precision is lost)."""
    return int(seconds * 1_000_000) if seconds > 0 else 0


def _as_outputs(result: Any) -> dict[str, Value]:
    if result is None:
        return {}
    if type(result) is not dict and not isinstance(result, abc.Mapping):
        raise NodeError(f"node body returned {type(result).__name__}, expected a mapping of output port to value")
    outputs = {}
    for port, value in result.items():  # a loop: a comprehension costs a call of its own
        outputs[str(port)] = to_value(value)
    return outputs


def _body_outcome(node: Node, result: Any, error: BaseException | None) -> tuple[NodeStatus, Any]:
    """How one attempt of a body ended, from what it returned or raised: its outputs, or the
    node's error text (a NodeError's message; anything else is a crash, logged)."""
    if error is None:
        try:
            return SUCCEEDED, _as_outputs(result)
        except NodeError as exc:
            error = exc
    if isinstance(error, NodeError):
        return FAILED, str(error) or type(error).__name__
    return FAILED, _report_crash(error, node)


def _report_crash(exc: BaseException, node: Node) -> str:
    """An unexpected exception: the traceback goes to the log, its message to the client."""
    log.error("node %r (%s) raised", node.id, node.node_type, exc_info=exc)
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
