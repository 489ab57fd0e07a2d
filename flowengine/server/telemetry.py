"""The server's Prometheus metrics (``GET /metrics``) and what records them.

Series labelled with a workflow id are dropped when that workflow is deleted
(:meth:`Telemetry.workflow_changed` listens to the catalog), so create/delete cycles do not
grow the exposition without bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..lib.metrics import CONTENT_TYPE, Registry
from ..lib.process_metrics import register_process_metrics

if TYPE_CHECKING:
    from ..core.engine import ExecutionResult
    from ..core.events import EventBus
    from ..runtime.executions import ExecutionService

__all__ = ["Telemetry"]


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

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.registry.render().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})
