"""HTTP handlers for execution history: list, inspect, events, delete, cancel, retry; and
workflow versions. Everything here reads the SQLite store (running executions also live)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..core.engine import EXECUTION_STATUSES
from ..errors import Conflict, NotFound, WorkflowNotFound
from .http_json import ClientError, json_response, json_text_response, link, query_bool, query_int, read_json
from .keys import CATALOG, RUNS, STORE
from .workflows import answer_execution

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
        "duration_us": row["duration_us"],
        "error": row["error"],
        "attempts": row["attempts"],
        "retry_of": row["retry_of"],
    }


async def list_executions(request: web.Request) -> web.Response:
    """Newest first. ``next`` is the cursor for the following page (pass it as ``before``)."""
    status = request.query.get("status") or None
    if status is not None and status not in EXECUTION_STATUSES:
        raise ClientError(400, f"status: unknown status {status!r} (known: {', '.join(EXECUTION_STATUSES)})")
    limit = min(query_int(request, "limit") or DEFAULT_PAGE, MAX_PAGE)
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
        raise NotFound(f"Execution {execution_id} not found")
    return row


async def get_execution(request: web.Request) -> web.Response:
    row = await _row_or_404(request)
    record = _summary(row)
    record["inputs"] = json.loads(row["inputs"])
    record["nodes"] = await request.app[RUNS].node_records(row)
    return json_response(record)


async def get_execution_events(request: web.Request) -> web.Response:
    execution_id = request.match_info["id"]
    text = await request.app[RUNS].events_json(execution_id)
    if text is None:
        raise NotFound(f"Execution {execution_id} not found")
    return json_text_response(text)


async def delete_execution(request: web.Request) -> web.Response:
    row = await _row_or_404(request)
    if row["status"] == "running":
        cancel = link(request, "cancelExecution", id=row["id"])
        raise Conflict(f"Execution {row['id']} is running: cancel it first (POST {cancel})")
    await request.app[STORE].delete_execution(row["id"])
    return json_response({"message": "Execution deleted successfully"})


async def cancel_execution(request: web.Request) -> web.Response:
    execution_id = request.match_info["id"]
    execution = request.app[RUNS].get(execution_id)
    if execution is None or not execution.cancel():
        row = await _row_or_404(request)
        if execution is None and row["status"] == "running":  # a shared database: another process runs it
            raise Conflict(f"Execution {execution_id} runs on another flowengine process: cancel it there")
        raise Conflict(f"Execution {execution_id} has already finished (status {row['status']})")
    result = await execution.finished
    await request.app[RUNS].wait_recorded(execution)
    return json_response({"execution_id": execution_id, "status": result.status, "message": "Execution cancelled"})


async def retry_execution(request: web.Request) -> web.Response:
    """A new execution with the same inputs on the workflow's current version. With
    ``{"from_failure": true}`` the nodes that succeeded keep their recorded outputs, except
    those that held a secret (see ``reusable_outputs``)."""
    row = await _row_or_404(request)
    if row["status"] == "running":
        raise Conflict(f"Execution {row['id']} is still running")
    body = await read_json(request, allow_empty=True)
    from_failure = body.get("from_failure", False)
    if not isinstance(from_failure, bool):
        raise ClientError(400, "from_failure: expected true or false")
    wait = query_bool(request, "wait", default=True)
    workflow = request.app[CATALOG].get(row["workflow_id"])
    if workflow is None:
        raise Conflict(f"Workflow {row['workflow_id']} no longer exists: it cannot be run again")
    execution = await request.app[RUNS].retry(row, workflow, from_failure=from_failure)
    return await answer_execution(request, execution, wait, {"retry_of": row["id"]})


async def list_versions(request: web.Request) -> web.Response:
    workflow_id = request.match_info["id"]
    versions = await request.app[STORE].workflow_versions(workflow_id)
    if not versions:
        raise WorkflowNotFound(workflow_id)
    current = request.app[CATALOG].get(workflow_id)
    return json_response(
        [
            {**version, "current": current is not None and version["version"] == current.version}
            for version in versions
        ]
    )
