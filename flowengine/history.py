"""HTTP handlers for execution history: list, inspect, events, delete, cancel, retry; and
workflow versions. Everything here reads the SQLite store (running executions also live)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .engine import EXECUTION_STATUSES, Execution
from .errors import ValidationError
from .handlers import answer_execution, start_execution
from .http_json import ClientError, json_response, json_text_response, query_bool, query_int, read_json
from .state import CATALOG, RUNS, STORE
from .values import Value, decode_value

__all__ = [
    "node_records",
    "list_executions",
    "get_execution",
    "get_execution_events",
    "delete_execution",
    "cancel_execution",
    "retry_execution",
    "list_versions",
]

DEFAULT_PAGE = 50
MAX_PAGE = 500


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "workflow_id": row["workflow_id"],
        "workflow_version": row["workflow_version"],
        "trigger": json.loads(row["trigger"]),
        "status": row["status"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "duration_ms": row["duration_ms"],
        "error": row["error"],
        "attempts": row["attempts"],
        "retry_of": row["retry_of"],
    }


async def list_executions(request: web.Request) -> web.Response:
    """Newest first. ``next`` is the cursor for the following page (pass it as ``before``)."""
    status = request.query.get("status") or None
    if status is not None and status not in EXECUTION_STATUSES:
        raise ClientError(400, f"status: unknown status {status!r} (known: {', '.join(EXECUTION_STATUSES)})")
    limit = min(query_int(request, "limit", DEFAULT_PAGE), MAX_PAGE)  # type: ignore[type-var]
    before = query_int(request, "before")
    rows = await request.app[STORE].list_executions(
        workflow_id=request.query.get("workflow_id") or None, status=status, before=before, limit=limit + 1
    )
    page = rows[:limit]
    next_cursor = page[-1]["position"] if len(rows) > limit else None
    return json_response({"executions": [_summary(row) for row in page], "next": next_cursor})


async def _row_or_404(request: web.Request) -> dict[str, Any]:
    execution_id = request.match_info["id"]
    row = await request.app[STORE].get_execution(execution_id)
    if row is None:
        raise ClientError(404, f"Execution {execution_id} not found")
    return row


async def get_execution(request: web.Request) -> web.Response:
    row = await _row_or_404(request)
    record = _summary(row)
    record["inputs"] = json.loads(row["inputs"])
    running = request.app[RUNS].get(row["id"])
    record["nodes"] = _live_nodes(running) if running is not None else await _node_records(request, row)
    return json_response(record)


async def _node_records(request: web.Request, row: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished execution's per-node records."""
    if row["nodes"] is not None:  # a row from before records were folded from the events
        return json.loads(row["nodes"])
    nodes = await _workflow_nodes(request, row["workflow_id"], row["workflow_version"])
    return node_records(json.loads(row["events"] or "[]"), nodes)


async def _workflow_nodes(request: web.Request, workflow_id: str, version: int) -> list[tuple[str, str]] | None:
    """(id, node type) of every node of that workflow version, in document order; None when
    the workflow has been deleted since."""
    current = request.app[CATALOG].get(workflow_id)
    if current is not None and current.version == version:
        return [(node.id, node.node_type) for node in current.nodes]
    kept = await request.app[STORE].workflow_version(workflow_id, version)
    if kept is None:
        return None
    return [(node["id"], node["node_type"]) for node in json.loads(kept["document"]).get("nodes", ())]


def node_records(events: list[dict[str, Any]], nodes: list[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """Per-node records folded from an execution's events: status, attempts, start time,
    duration, outputs, error, whether the outputs were cached.

    The history stores the events, not the records as well (writing both cost each execution
    about 4 µs): the records say nothing the events do not. Only the last workflow attempt
    counts (a NodeEvent with no node_id is RetryWorkflow starting the workflow again). Nodes
    that never started are ``pending``; ``nodes`` gives them and the order (the workflow's), and
    when it is None (the workflow was deleted) only nodes that have events are listed."""
    records: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event.get("type")
        node_id = event.get("node_id")
        if kind == "NodeEvent":
            if node_id is None:
                records.clear()
            continue
        if kind not in _NODE_OUTCOMES:
            continue
        entry = records.get(node_id)  # type: ignore[arg-type]
        if entry is None:
            entry = records[node_id] = _pending(node_id, event.get("node_type"))  # type: ignore[index, arg-type]
        if kind == "NodeStarted":
            entry.update(node_type=event.get("node_type"), status="running", started_at=event.get("timestamp"), attempts=1)
            continue
        entry.update(status=_NODE_OUTCOMES[kind], duration_ms=event.get("duration_ms"))
        if "attempts" in event:
            entry["attempts"] = event["attempts"]
        if kind == "NodeCompleted":
            entry.update(outputs=event.get("outputs"), cached=bool(event.get("cached")))
        elif kind == "NodeFailed":
            entry.update(node_type=event.get("node_type"), error=event.get("error"))
            if event.get("cancelled"):
                entry["status"] = "cancelled"
        else:  # NodeSkipped
            entry["node_type"] = event.get("node_type", entry["node_type"])
    if nodes is None:
        return list(records.values())
    listed = [records.pop(node_id, None) or _pending(node_id, node_type) for node_id, node_type in nodes]
    return listed + list(records.values())


_NODE_OUTCOMES = {"NodeStarted": "running", "NodeCompleted": "succeeded", "NodeFailed": "failed", "NodeSkipped": "skipped"}


def _pending(node_id: str, node_type: str | None) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "node_type": node_type,
        "status": "pending",
        "attempts": 0,
        "started_at": None,
        "duration_ms": None,
        "outputs": None,
        "error": None,
        "cached": False,
    }


async def get_execution_events(request: web.Request) -> web.Response:
    execution_id = request.match_info["id"]
    running = request.app[RUNS].get(execution_id)
    if running is not None and running.events.recorded is not None:
        text = running.events.recorded_json()
    else:
        text = await request.app[STORE].get_execution_events(execution_id)
        if text is None:
            raise ClientError(404, f"Execution {execution_id} not found")
    return json_text_response(text)


async def delete_execution(request: web.Request) -> web.Response:
    row = await _row_or_404(request)
    if row["status"] == "running":
        raise ClientError(409, f"Execution {row['id']} is running: cancel it first (POST /api/executions/{row['id']}/cancel)")
    await request.app[STORE].delete_execution(row["id"])
    return json_response({"message": "Execution deleted successfully"})


async def cancel_execution(request: web.Request) -> web.Response:
    execution_id = request.match_info["id"]
    execution = request.app[RUNS].get(execution_id)
    if execution is None or not execution.cancel():
        row = await _row_or_404(request)
        raise ClientError(409, f"Execution {execution_id} has already finished (status {row['status']})")
    result = await execution.finished
    return json_response({"execution_id": execution_id, "status": result.status, "message": "Execution cancelled"})


async def retry_execution(request: web.Request) -> web.Response:
    """A new execution with the same inputs on the workflow's current version. With
    ``{"from_failure": true}`` the nodes that succeeded keep their recorded outputs."""
    row = await _row_or_404(request)
    if row["status"] == "running":
        raise ClientError(409, f"Execution {row['id']} is still running")
    body = await read_json(request, allow_empty=True)
    from_failure = body.get("from_failure", False)
    if not isinstance(from_failure, bool):
        raise ClientError(400, "from_failure: expected true or false")
    wait = query_bool(request, "wait", default=True)
    workflow = request.app[CATALOG].get(row["workflow_id"])
    if workflow is None:
        raise ClientError(409, f"Workflow {row['workflow_id']} no longer exists: it cannot be run again")
    raw_inputs = json.loads(row["inputs"])
    try:
        inputs = {name: decode_value(item, f"inputs.{name}", strict=True) for name, item in raw_inputs.items()}
        cached = _succeeded_outputs(await _node_records(request, row)) if from_failure else None
    except ValidationError as exc:  # only if the stored record was tampered with
        raise ClientError(409, f"the recorded execution cannot be replayed: {exc}") from None
    execution = start_execution(request, workflow, inputs, retry_of=row["id"], cached_outputs=cached)
    return await answer_execution(request, execution, wait, {"retry_of": row["id"]})


def _live_nodes(execution: Execution) -> list[dict[str, Any]]:
    """Node statuses of a running execution's current attempt."""
    attempt = execution.attempt
    if attempt is None:
        return []
    return [
        {"node_id": node.id, "node_type": node.node_type, "status": status}
        for node, status in zip(execution.plan.nodes, attempt.status)
    ]


def _succeeded_outputs(records: list[dict[str, Any]]) -> dict[str, dict[str, Value]]:
    cached: dict[str, dict[str, Value]] = {}
    for record in records:
        if record["status"] == "succeeded" and record["outputs"] is not None:
            cached[record["node_id"]] = {
                port: decode_value(value, f"nodes.{record['node_id']}.outputs.{port}", strict=True)
                for port, value in record["outputs"].items()
            }
    return cached


async def list_versions(request: web.Request) -> web.Response:
    workflow_id = request.match_info["id"]
    versions = await request.app[STORE].workflow_versions(workflow_id)
    if not versions:
        raise ClientError(404, f"Workflow {workflow_id} not found")
    current = request.app[CATALOG].get(workflow_id)
    return json_response(
        [
            {**version, "current": current is not None and version["version"] == current.version}
            for version in versions
        ]
    )
