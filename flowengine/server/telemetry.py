"""The server's Prometheus metrics (``GET /metrics``) and what records them.

Series labelled with a workflow id are dropped when that workflow is deleted
(:meth:`Telemetry.workflow_changed` listens to the catalog), so create/delete cycles do not
grow the exposition without bound.

A worker of ``flowengine serve --workers N`` answers ``/metrics`` for the whole server: its
``scrape`` (set by the worker's link to its supervisor) returns the exposition the supervisor
merged from every worker's :meth:`Telemetry.snapshot`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..lib.metrics import CONTENT_TYPE, Registry, Snapshot
from ..lib.process_metrics import register_process_metrics

if TYPE_CHECKING:
    from ..core.engine import ExecutionResult
    from ..core.events import EventBus
    from ..runtime.executions import ExecutionService

__all__ = ["Telemetry", "mark_combines"]

# Gauges registered outside this module whose values must not be added up across the workers
# of one server: the highest (a value every process reads from the same database; one flag)
# or the lowest (when the server started; the tightest descriptor limit). Every other gauge is
# summed (executions running, listeners, memory, descriptors: the server's totals).
_NOT_SUMMED = {
    "flowengine_cluster_processes_alive": "max",
    "flowengine_db_oldest_transaction_seconds": "max",
    "python_info": "max",
    "process_start_time_seconds": "min",
    "process_max_fds": "min",
}


def mark_combines(snapshot: Snapshot) -> Snapshot:
    """The snapshot, with the gauges of _NOT_SUMMED marked to combine as listed there."""
    for entry in snapshot:
        if entry["name"] in _NOT_SUMMED:
            entry["combine"] = _NOT_SUMMED[entry["name"]]
    return snapshot


class Telemetry:
    def __init__(self) -> None:
        registry = self.registry = Registry()
        self.executions = registry.counter(
            "flowengine_executions_total", "Executions finished, by workflow and status.", ("workflow", "status")
        )
        self.execution_seconds = registry.histogram(
            "flowengine_execution_duration_seconds", "Execution duration, by workflow.", ("workflow",)
        )
        self.nodes = registry.counter(
            "flowengine_node_executions_total", "Node runs finished, by node type and status.", ("node_type", "status")
        )
        self.node_seconds = registry.histogram(
            "flowengine_node_duration_seconds", "Node run duration, by node type.", ("node_type",)
        )
        self.http_requests = registry.counter(
            "flowengine_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        self._runs: ExecutionService | None = None
        # Set in a worker of a multi-process server: the whole server's exposition, and who
        # else must forget a deleted workflow's series (the supervisor keeps dead workers').
        self.scrape: Callable[[], Awaitable[str]] | None = None
        self.on_forget: Callable[[str, str], None] | None = None
        registry.gauge("flowengine_executions_running", "Executions running now.", callback=lambda: self._count("running"))
        registry.gauge("flowengine_executions_queued", "Executions waiting for a slot.", callback=lambda: self._count("queued"))
        register_process_metrics(registry)

    def watch_bus(self, bus: EventBus) -> None:
        registry = self.registry
        registry.gauge("flowengine_websocket_listeners", "Connected event-stream listeners.", callback=lambda: len(bus.listeners))
        # Totals the bus keeps and only ever increments: counters whose value is read at scrape.
        registry.counter(
            "flowengine_events_published_total", "Events published since start.", callback=lambda: bus.published
        )
        registry.counter(
            "flowengine_listeners_dropped_total",
            "Listeners disconnected for lagging since start.",
            callback=lambda: bus.listeners_dropped,
        )

    def attach(self, runs: ExecutionService) -> None:
        self._runs = runs
        runs.on_finished.append(self.record_execution)

    def forget_workflow(self, workflow_id: str) -> int:
        """Drop every series labelled with this workflow; how many were dropped."""
        if self.on_forget is not None:
            self.on_forget("workflow", workflow_id)
        return self.registry.forget("workflow", workflow_id)

    def workflow_changed(self, workflow_id: str, workflow: Any) -> None:
        """A catalog listener: a deleted workflow (``None``) takes its series with it."""
        if workflow is None:
            self.forget_workflow(workflow_id)

    def _count(self, what: str) -> int:
        if self._runs is None:
            return 0
        return self._runs.running_count if what == "running" else self._runs.queued_count

    def record_execution(self, result: ExecutionResult) -> None:
        # Called for every execution: the label values are strings already, so the unchecked
        # *_labels forms are used.
        workflow = (result.workflow_id,)
        self.executions.inc_labels((result.workflow_id, result.status))
        self.execution_seconds.observe_labels(workflow, result.duration_us / 1e6)
        for node_type, status, duration_us in zip(result.node_types, result.node_statuses, result.node_durations_us):
            if status == "pending":
                continue
            self.nodes.inc_labels((node_type, status))
            if duration_us is not None:
                self.node_seconds.observe_labels((node_type,), duration_us / 1e6)

    def snapshot(self) -> Snapshot:
        """This process's values, each gauge saying how it combines with other processes'."""
        return mark_combines(self.registry.snapshot())

    async def handler(self, request: web.Request) -> web.Response:
        text = self.registry.render() if self.scrape is None else await self.scrape()
        return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})
