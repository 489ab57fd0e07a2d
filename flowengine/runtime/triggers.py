"""Triggers that start workflows without anyone calling execute: webhooks, cron schedules and
events from other executions.

The TriggerService keeps an index of every registered trigger, rebuilt for a workflow whenever
it is created, replaced or deleted, so webhooks, the scheduler and event triggers follow
changes at once. The scheduler is one task that sleeps until the next fire time (or until the
index changes); it never backfills ticks missed while the server was down and never starts a
trigger's run while its previous run is still going.

On a shared PostgreSQL store (the run queue of pgqueue.py is set on the ExecutionService) cron
ticks and event-triggered starts go into the cluster's run queue instead of starting here:
every process fires every tick, and the database lets one of them queue it; every process
sees the events of the executions it runs, and the database lets each (source execution,
trigger) start once and counts the depth and the budget of each chain.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..core.events import EventBus, utc_timestamp
from ..core.model import Trigger, Workflow
from ..core.redaction import lookup, secret_env_name
from ..core.triggerchecks import webhook_path
from ..lib.cron import CronSchedule
from ..lib.logthrottle import ThrottledLog
from ..lib.signatures import DEFAULT_SCHEME, SIGNATURE_HEADER, SeenDeliveries, SeenSignatures
from ..values import Value, to_value
from .executions import ExecutionService, Overloaded

__all__ = ["TriggerService", "MAX_CHAIN_EXECUTIONS", "MAX_EVENT_DEPTH", "SIGNATURE_HEADER"]

log = logging.getLogger("flowengine.runtime.triggers")

MAX_EVENT_DEPTH = 8
MAX_CHAIN_EXECUTIONS = 64  # executions one root execution's events may start, all levels together
# Request headers that carry credentials stay out of execution inputs (and so out of history):
# these by name, and any whose name says it holds a token, key, secret, signature or password
# (X-Gitlab-Token, X-Api-Key, X-Hub-Signature-256, ...).
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "set-cookie"})
_PRIVATE_HEADER_WORDS = re.compile(r"token|key|secret|signature|password|auth", re.IGNORECASE)




@dataclass
class _CronJob:
    workflow_id: str
    trigger: Trigger
    schedule: CronSchedule
    next_fire: datetime
    running: asyncio.Task[Any] | None = None


class TriggerService:
    def __init__(self, runs: ExecutionService, bus: EventBus) -> None:
        # Refusals and skipped ticks can repeat many times a second: one line per kind a minute.
        self.throttled_log = ThrottledLog(log)
        self.runs = runs
        self.bus = bus
        self.workflows: dict[str, Workflow] = {}
        self.webhooks: dict[str, tuple[str, Trigger]] = {}
        self.cron_jobs: dict[tuple[str, str], _CronJob] = {}
        self.event_triggers: dict[str, list[tuple[str, Trigger]]] = {}
        self._observed: set[str] = set()
        # Event chains, while they run: execution id -> (root execution id, depth); per root, how
        # many executions the chain started and how many still run.
        self._chain_of: dict[str, tuple[str, int]] = {}
        self._chain_started: dict[str, int] = {}
        self._chain_running: dict[str, int] = {}
        self._changed = asyncio.Event()
        # Which signed webhook requests were accepted, so that none is accepted twice.
        self.seen_signatures = SeenSignatures()
        self.seen_deliveries = SeenDeliveries()

    # -- the index -----------------------------------------------------------------------

    def conflict(self, workflow: Workflow) -> str | None:
        """Why this workflow's webhook paths clash with another's, or None."""
        seen: set[str] = set()
        for trigger in workflow.triggers:
            if trigger.type != "Webhook":
                continue
            path = webhook_path(trigger.trigger_type)
            owner = self.webhooks.get(path)
            if path in seen or (owner is not None and owner[0] != workflow.id):
                holder = workflow.id if path in seen else owner[0]  # type: ignore[index]
                return f"webhook path {path!r} is already used by workflow {holder}"
            seen.add(path)
        return None

    def update(self, workflow_id: str, workflow: Workflow | None) -> None:
        """Re-index one workflow's triggers (``None``: it was deleted)."""
        self.workflows.pop(workflow_id, None)
        self.webhooks = {path: entry for path, entry in self.webhooks.items() if entry[0] != workflow_id}
        # A replaced workflow's cron triggers keep their running run, so an edit cannot start a
        # second run of a trigger whose previous one is still going.
        still_running = {}
        for key in [key for key in self.cron_jobs if key[0] == workflow_id]:
            still_running[key] = self.cron_jobs.pop(key).running
        for entries in self.event_triggers.values():
            entries[:] = [entry for entry in entries if entry[0] != workflow_id]
        if workflow is not None:
            self.workflows[workflow_id] = workflow
            now = datetime.now(UTC)
            for trigger in workflow.triggers:
                kind, spec = trigger.type, trigger.trigger_type
                if kind == "Webhook":
                    self.webhooks[webhook_path(spec)] = (workflow_id, trigger)
                elif kind == "Cron" and trigger.enabled:
                    schedule = CronSchedule.parse(spec["expression"], spec.get("timezone") or "UTC")
                    self.cron_jobs[(workflow_id, trigger.id)] = _CronJob(
                        workflow_id, trigger, schedule, schedule.next_after(now), still_running.get((workflow_id, trigger.id))
                    )
                elif kind == "Event" and trigger.enabled:
                    event_type = spec["event_type"]
                    self.event_triggers.setdefault(event_type, []).append((workflow_id, trigger))
                    if event_type not in self._observed:
                        self._observed.add(event_type)
                        self.bus.observe(event_type, self._on_event)
        self._changed.set()

    def describe(self) -> list[dict[str, Any]]:
        """Every trigger of every workflow, for GET /api/triggers."""
        described = []
        for workflow in self.workflows.values():
            for trigger in workflow.triggers:
                entry: dict[str, Any] = {
                    "workflow_id": workflow.id,
                    "workflow_name": workflow.name,
                    "trigger_id": trigger.id,
                    "type": trigger.type,
                    "enabled": trigger.enabled,
                }
                for key, value in trigger.trigger_type.items():
                    if key in ("type", "secret"):
                        continue
                    # An Event trigger's workflow_id names the workflow it listens to.
                    entry["source_workflow_id" if key == "workflow_id" else key] = value
                if trigger.type == "Webhook":
                    entry["signed"] = "secret" in trigger.trigger_type
                    if entry["signed"]:
                        entry["signature"] = self.signature_scheme(trigger)
                if trigger.type == "Cron":
                    job = self.cron_jobs.get((workflow.id, trigger.id))
                    entry["next_fire"] = utc_timestamp(job.next_fire) if job else None
                described.append(entry)
        return described

    # -- webhooks ------------------------------------------------------------------------

    def webhook(self, path: str) -> tuple[Workflow, Trigger] | None:
        entry = self.webhooks.get(path.strip("/"))
        if entry is None or not entry[1].enabled:
            return None
        return self.workflows[entry[0]], entry[1]

    @staticmethod
    def webhook_secret(trigger: Trigger) -> bytes | None:
        """The key a webhook's requests are signed with, or None for an unsigned webhook.
        LookupError names the variable of a referenced secret that is not set (any more)."""
        secret = trigger.trigger_type.get("secret")
        if secret is None:
            return None
        if isinstance(secret, dict):
            name = secret["value"]
            secret = lookup(name)
            if secret is None:
                raise LookupError(f"the webhook's secret {secret_env_name(name)} is not set on the server")
        # surrogateescape: the environment may hold bytes that are not UTF-8.
        return secret.encode("utf-8", "surrogateescape")

    @staticmethod
    def signature_scheme(trigger: Trigger) -> str:
        return trigger.trigger_type.get("signature") or DEFAULT_SCHEME

    @staticmethod
    def webhook_inputs(
        query: Mapping[str, str], headers: Mapping[str, str], fields: dict[str, Any]
    ) -> dict[str, Value]:
        """An unsigned webhook's inputs: query parameters, body fields and the headers that
        carry no credentials."""
        inputs: dict[str, Value] = {name: Value("String", value) for name, value in query.items()}
        inputs.update({name: to_value(value) for name, value in fields.items()})
        inputs["headers"] = Value(
            "Object",
            {
                name: Value("String", value)
                for name, value in headers.items()
                if name.lower() not in _PRIVATE_HEADERS and not _PRIVATE_HEADER_WORDS.search(name)
            },
        )
        return inputs

    # -- cron ----------------------------------------------------------------------------

    async def run_scheduler(self) -> None:
        """Fire cron triggers on time until cancelled."""
        while True:
            self._changed.clear()
            now = datetime.now(UTC)
            for job in [job for job in self.cron_jobs.values() if job.next_fire <= now]:
                self._fire(job, now)
            delay = None
            if self.cron_jobs:
                upcoming = min(job.next_fire for job in self.cron_jobs.values())
                delay = max(0.0, (upcoming - datetime.now(UTC)).total_seconds())
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _fire(self, job: _CronJob, now: datetime) -> None:
        if self.runs.closing:
            return
        scheduled = job.next_fire
        # The next tick strictly after now: ticks missed (the loop was busy, or the server was
        # down) are not run late.
        job.next_fire = job.schedule.next_after(now)
        queue = self.runs.queue
        if queue is not None:
            workflow = self.workflows.get(job.workflow_id)
            if workflow is not None:
                queue.spawn(self._fire_shared(queue, workflow, job.trigger, utc_timestamp(scheduled)))
            return
        if job.running is not None and not job.running.done():
            self.throttled_log.warning(
                ("cron skipped", job.workflow_id, job.trigger.id),
                "cron trigger %s of workflow %s: skipped the tick of %s, the previous run is still going",
                job.trigger.id,
                job.workflow_id,
                utc_timestamp(scheduled),
            )
            return
        workflow = self.workflows.get(job.workflow_id)
        if workflow is None:
            return
        try:
            execution = self.runs.start(
                workflow,
                {"scheduled_at": Value("String", utc_timestamp(scheduled))},
                trigger={"type": "cron", "id": job.trigger.id},
            )
        except Overloaded as exc:
            self.throttled_log.warning(
                ("cron overloaded", job.workflow_id, job.trigger.id),
                "cron trigger %s of workflow %s: tick skipped: %s",
                job.trigger.id,
                job.workflow_id,
                exc,
            )
            return
        job.running = self.runs.run_in_background(execution)

    async def _fire_shared(self, queue: Any, workflow: Workflow, trigger: Trigger, scheduled_at: str) -> None:
        try:
            outcome = await queue.fire_cron(workflow, trigger, scheduled_at)
        except Exception as exc:
            self.throttled_log.warning(
                ("cron failed", workflow.id, trigger.id),
                "cron trigger %s of workflow %s: the tick of %s could not be queued: %s",
                trigger.id, workflow.id, scheduled_at, exc,
            )  # fmt: skip
            return
        if outcome == "busy":
            self.throttled_log.warning(
                ("cron skipped", workflow.id, trigger.id),
                "cron trigger %s of workflow %s: skipped the tick of %s, the previous run is still going",
                trigger.id, workflow.id, scheduled_at,
            )  # fmt: skip
        elif outcome == "full":
            self.throttled_log.warning(
                ("cron overloaded", workflow.id, trigger.id),
                "cron trigger %s of workflow %s: tick skipped: the cluster's run queue is full"
                " (FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS)",
                trigger.id, workflow.id,
            )  # fmt: skip

    # -- events --------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.runs.closing:
            return  # executions interrupted by a shutdown start nothing
        source_execution = event["execution_id"]
        queue = self.runs.queue
        if queue is not None:
            for workflow_id, trigger in self._wanting(event):
                workflow = self.workflows.get(workflow_id)
                if workflow is not None:
                    queue.spawn(self._start_shared(queue, workflow, trigger, event))
            return
        # A chain is every execution started, directly or not, by the events of one root
        # execution. Depth bounds its length; the budget bounds its width, since several
        # workflows listening to each other would otherwise multiply at every level.
        root, depth = self._chain_of.get(source_execution, (source_execution, 0))
        for workflow_id, trigger in self._wanting(event):
            if depth + 1 > MAX_EVENT_DEPTH:
                self._refuse(trigger, workflow_id, f"the chain reached depth {MAX_EVENT_DEPTH}", source_execution)
                continue
            if self._chain_started.get(root, 0) >= MAX_CHAIN_EXECUTIONS:
                self._refuse(
                    trigger, workflow_id, f"the chain already started {MAX_CHAIN_EXECUTIONS} executions", source_execution
                )
                continue
            workflow = self.workflows.get(workflow_id)
            if workflow is None:
                continue
            inputs = {name: to_value(value) for name, value in event.items()}
            try:
                execution = self.runs.start(
                    workflow,
                    inputs,
                    trigger={"type": "event", "id": trigger.id, "source_execution_id": source_execution, "depth": depth + 1},
                )
            except Overloaded as exc:
                self.throttled_log.warning(
                    ("event overloaded",), "event trigger %s of workflow %s: not started: %s", trigger.id, workflow_id, exc
                )
                continue
            self._chain_of[execution.id] = (root, depth + 1)
            self._chain_started[root] = self._chain_started.get(root, 0) + 1
            self._chain_running[root] = self._chain_running.get(root, 0) + 1
            task = self.runs.run_in_background(execution)
            task.add_done_callback(functools.partial(self._chain_member_done, execution.id))

    def _wanting(self, event: dict[str, Any]) -> list[tuple[str, Trigger]]:
        """The event triggers this event starts: of other workflows, and of any source or this one."""
        wanting = []
        for workflow_id, trigger in self.event_triggers.get(event["type"], ()):
            if workflow_id == event["workflow_id"]:
                continue  # a workflow never triggers on its own events
            wanted_source = trigger.trigger_type.get("workflow_id")
            if wanted_source is not None and wanted_source != event["workflow_id"]:
                continue
            wanting.append((workflow_id, trigger))
        return wanting

    async def _start_shared(self, queue: Any, workflow: Workflow, trigger: Trigger, event: dict[str, Any]) -> None:
        source_execution = event["execution_id"]
        try:
            outcome = await queue.start_event(
                workflow, trigger, event, max_depth=MAX_EVENT_DEPTH, max_chain=MAX_CHAIN_EXECUTIONS
            )
        except Exception as exc:
            self.throttled_log.warning(
                ("event failed",),
                "event trigger %s of workflow %s: not started (from execution %s): %s",
                trigger.id, workflow.id, source_execution, exc,
            )  # fmt: skip
            return
        if outcome == "deep":
            self._refuse(trigger, workflow.id, f"the chain reached depth {MAX_EVENT_DEPTH}", source_execution)
        elif outcome == "budget":
            self._refuse(trigger, workflow.id, f"the chain already started {MAX_CHAIN_EXECUTIONS} executions", source_execution)
        elif outcome == "full":
            self.throttled_log.warning(
                ("event overloaded",),
                "event trigger %s of workflow %s: not started: the cluster's run queue is full"
                " (FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS)",
                trigger.id, workflow.id,
            )  # fmt: skip

    def _chain_member_done(self, execution_id: str, _task: asyncio.Task[Any] | None = None) -> None:
        root, _ = self._chain_of.pop(execution_id)
        self._chain_running[root] -= 1
        if not self._chain_running[root]:  # the chain has died out: forget it
            del self._chain_running[root]
            self._chain_started.pop(root, None)

    def _refuse(self, trigger: Trigger, workflow_id: str, why: str, source_execution: str) -> None:
        self.throttled_log.warning(
            ("event refused", why),
            "event trigger %s of workflow %s: not started, %s of event-triggered executions (from execution %s)",
            trigger.id,
            workflow_id,
            why,
            source_execution,
        )
