"""HTTP handlers for execution history: list, inspect, events, delete, cancel, retry; and
workflow versions. Everything here reads the SQLite store (running executions also live)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..core.engine import EXECUTION_STATUSES, Execution
from ..errors import ValidationError
from .workflows import answer_execution, start_execution
from .http_json import ClientError, json_response, json_text_response, query_bool, query_int, read_json
from ..core.records import node_records
from ..core.redaction import reusable_outputs
from ..runtime.executions import HistoryUnavailable
from .keys import CATALOG, RUNS, STORE
from ..values import Value, decode_value

__all__ = [
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
    """A finished execution's per-node records: stored with the row when the execution ended
    before every node had run (and in rows from before records were folded from the events),
    else folded from its events."""
    if row["nodes"] is not None:
        return json.loads(row["nodes"])
    nodes = await _workflow_nodes(request, row)
    return node_records(json.loads(row["events"] or "[]"), nodes)


async def _workflow_nodes(request: web.Request, row: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(id, node type) of every node of the workflow version the execution ran, in document
    order; None when that document is gone (the workflow was deleted, perhaps re-created
    since: a re-created workflow starts again at version 1, so a version whose document is
    younger than the execution is another workflow's)."""
    kept = await request.app[STORE].workflow_version(row["workflow_id"], row["workflow_version"])
    if kept is None or kept["created_at"] > row["started_at"]:
        return None
    return [(node["id"], node["node_type"]) for node in json.loads(kept["document"]).get("nodes", ())]


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
    try:
        await request.app[RUNS].wait_recorded(execution)
    except HistoryUnavailable as exc:
        raise ClientError(503, str(exc), headers={"Retry-After": "1"}) from None
    return json_response({"execution_id": execution_id, "status": result.status, "message": "Execution cancelled"})


async def retry_execution(request: web.Request) -> web.Response:
    """A new execution with the same inputs on the workflow's current version. With
    ``{"from_failure": true}`` the nodes that succeeded keep their recorded outputs, except
    those that held a secret (see ``reusable_outputs``)."""
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
        cached = (
            reusable_outputs(workflow, _succeeded_outputs(await _node_records(request, row))) if from_failure else None
        )
    except ValidationError as exc:  # only if the stored record was tampered with
        raise ClientError(409, f"the recorded execution cannot be replayed: {exc}") from None
    execution = await start_execution(request, workflow, inputs, retry_of=row["id"], cached_outputs=cached)
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
