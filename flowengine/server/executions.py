"""HTTP handlers for execution history: list and search, inspect, events (paged), delete,
cancel, retry; and workflow versions. Everything here reads the store (running executions
also live; an execution waiting for a slot shows as ``queued``)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from ..core.engine import EXECUTION_STATUSES
from ..core.events import utc_timestamp
from ..core.model import TRIGGER_TYPES
from ..errors import Conflict, NotFound, WorkflowNotFound
from ..runtime.executions import ExecutionService
from .http_json import (
    MAX_QUERY_INT,
    ClientError,
    json_response,
    json_text_response,
    link,
    query_bool,
    query_int,
    read_json,
)
from .keys import CATALOG, CONFIG, LIVENESS, RUNS, STORE
from .websocket import event_types
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
MAX_EVENTS_PAGE = 10_000  # the most events one page of GET /api/executions/{id}/events holds

# What an execution records as its trigger's type: a trigger's type in lower case, "manual" for
# an API call (flowengine.runtime.executions.MANUAL_TRIGGER_JSON), a retry included.
EXECUTION_TRIGGER_TYPES = tuple(kind.lower() for kind in TRIGGER_TYPES)

# RFC 3339 date-time (section 5.6): "T" (or "t") between date and time, an offset or "Z" ("z").
# ASCII digits only: \d would also take other scripts' digits, which int() reads.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_BEFORE_ALL = "0000"  # sorts before every started_at text
_AFTER_ALL = "9999-12-31T23:59:59.999Z~"  # after every one ("~" sorts after "Z")


def _summary(row: dict[str, Any], runs: ExecutionService) -> dict[str, Any]:
    status = row["status"]
    if status == "running" and runs.waits_for_slot(row["id"]):
        status = "queued"  # recorded as started, but waiting here for a free slot
    return {
        "id": row["id"],
        "workflow_id": row["workflow_id"],
        "workflow_version": row["workflow_version"],
        "trigger": json.loads(row["trigger"]),
        "status": status,
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "duration_ms": row["duration_ms"],
        "duration_us": row["duration_us"],
        "error": row["error"],
        "attempts": row["attempts"],
        "retry_of": row["retry_of"],
    }


def _time_bound(request: web.Request, name: str) -> str | None:
    """``since`` / ``until`` (RFC 3339) as started_at text, for comparing text with text; 400
    naming the parameter when it is not a timestamp. started_at has milliseconds, so a bound
    between two milliseconds is rounded up to the next one: for both ``>= since`` and
    ``< until`` that keeps exactly the executions started in the range."""
    text = request.query.get(name)
    if text is None:
        return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ClientError(400, f"{name}: expected an RFC 3339 timestamp such as 2026-11-28T10:13:13.123Z, got {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction, zulu, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10, 11)
    leap = second == 60  # a leap second: the instant is the start of the next second
    try:
        local = datetime(year, month, day, hour, minute, 59 if leap else second)
        if not zulu and (int(offset_hours) > 23 or int(offset_minutes) > 59):
            raise ValueError("offset out of range")
    except ValueError:
        raise ClientError(400, f"{name}: {text!r} is not a valid date and time") from None
    offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes)) if not zulu else timedelta()
    fraction = fraction or ""
    millis = int(fraction[:3].ljust(3, "0")) + (1 if fraction[3:].strip("0") else 0)
    try:
        moment = local - offset if sign != "-" else local + offset
        moment += timedelta(seconds=1 if leap else 0, milliseconds=millis)
    except OverflowError:
        # Beyond the years 1-9999 once in UTC: before or after every execution.
        return _BEFORE_ALL if local.year < 5000 else _AFTER_ALL
    return utc_timestamp(moment)


def _search_filters(request: web.Request) -> dict[str, Any]:
    """The filters of GET /api/executions (but the page), as ``Store.list_executions`` takes them."""
    query = request.query
    status = query.get("status") or None
    if status is not None and status not in EXECUTION_STATUSES:
        raise ClientError(400, f"status: unknown status {status!r} (known: {', '.join(EXECUTION_STATUSES)})")
    trigger = query.get("trigger") or None
    if trigger is not None and trigger not in EXECUTION_TRIGGER_TYPES:
        raise ClientError(400, f"trigger: unknown trigger type {trigger!r} (known: {', '.join(EXECUTION_TRIGGER_TYPES)})")
    return {
        "workflow_id": query.get("workflow_id") or None,
        "status": status,
        "since": _time_bound(request, "since"),
        "until": _time_bound(request, "until"),
        "trigger_type": trigger,
        "error": query.get("error") or None,
    }


async def list_executions(request: web.Request) -> web.Response:
    """Newest first. ``next`` is the cursor for the following page (pass it as ``before``);
    ``total`` counts every execution the filters match, on all pages."""
    filters = _search_filters(request)
    limit = min(query_int(request, "limit") or DEFAULT_PAGE, MAX_PAGE)
    before = query_int(request, "before")
    store = request.app[STORE]
    rows = await store.list_executions(**filters, before=before, limit=limit + 1)
    total = await store.count_executions(**filters)
    page = rows[:limit]
    next_cursor = page[-1]["position"] if len(rows) > limit else None
    runs = request.app[RUNS]
    return json_response({"executions": [_summary(row, runs) for row in page], "next": next_cursor, "total": total})


async def _row_or_404(request: web.Request) -> dict[str, Any]:
    execution_id = request.match_info["id"]
    row = await request.app[STORE].get_execution(execution_id)
    if row is None:
        raise NotFound(f"Execution {execution_id} not found")
    return row


async def get_execution(request: web.Request) -> web.Response:
    row = await _row_or_404(request)
    record = _summary(row, request.app[RUNS])
    record["inputs"] = json.loads(row["inputs"])
    liveness = request.app.get(LIVENESS)  # running on another process: its live node statuses
    nodes = None if liveness is None else await liveness.events.node_records(row)
    record["nodes"] = nodes if nodes is not None else await request.app[RUNS].node_records(row)
    return json_response(record)


_EVENT_PAGE_PARAMETERS = ("after_seq", "limit", "types", "node_id")


def _query_range(request: web.Request, name: str, low: int, high: int) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    # isascii: str.isdigit() accepts digits such as "²" that int() refuses.
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ClientError(400, f"{name}: expected a whole number from {low} to {high}, got {text!r}")
    return int(text)


async def get_execution_events(request: web.Request) -> web.Response:
    """The recorded events, in seq order. ``after_seq``, ``types`` and ``node_id`` filter them,
    ``limit`` pages them: a cut page links to the next one (``Link: <...>; rel="next"``)."""
    execution_id = request.match_info["id"]
    paged = any(name in request.query for name in _EVENT_PAGE_PARAMETERS)
    if paged:  # checked before the lookup, so that a bad parameter is a 400 whatever the id
        after_seq = _query_range(request, "after_seq", 0, MAX_QUERY_INT)
        limit = _query_range(request, "limit", 1, MAX_EVENTS_PAGE)
        types = event_types(request.query.get("types", ""))
        node_id = request.query.get("node_id") or None
    liveness = request.app.get(LIVENESS)  # running on another process: its events so far
    text = None if liveness is None else await liveness.events.recorded_json(execution_id)
    if text is None:
        text = await request.app[RUNS].events_json(execution_id)
    if text is None:
        raise NotFound(f"Execution {execution_id} not found")
    if not paged:
        return json_text_response(text)
    wanted = [
        event
        for event in json.loads(text)
        if (after_seq is None or event["seq"] > after_seq)
        and (not types or event["type"] in types)
        and (node_id is None or event.get("node_id") == node_id)
    ]
    if limit is None or len(wanted) <= limit:
        return json_response(wanted)
    page = wanted[:limit]
    following = {"after_seq": page[-1]["seq"], "limit": limit, "types": ",".join(types), "node_id": node_id}
    query = urlencode({name: value for name, value in following.items() if value}, quote_via=quote, safe=",")
    next_page = f"{link(request, 'getExecutionEvents', id=quote(execution_id, safe=''))}?{query}"
    return json_response(page, headers={"Link": f'<{next_page}>; rel="next"'})


async def delete_execution(request: web.Request) -> web.Response:
    row = await _row_or_404(request)
    if row["status"] in ("running", "queued"):
        cancel = link(request, "cancelExecution", id=row["id"])
        raise Conflict(f"Execution {row['id']} is {row['status']}: cancel it first (POST {cancel})")
    await request.app[STORE].delete_execution(row["id"])
    return json_response({"message": "Execution deleted successfully"})


async def cancel_execution(request: web.Request) -> web.Response:
    """Stop a queued or running execution; the answer says how it ended, once that is recorded.
    On a shared database an execution this process does not hold is cancelled in the database
    while queued, or by the process running it (told by a notification)."""
    execution_id = request.match_info["id"]
    runs = request.app[RUNS]
    execution = runs.get(execution_id)
    if execution is None and runs.queue is not None:
        return await _cancel_elsewhere(request, execution_id)
    if execution is None or not execution.cancel():
        row = await _row_or_404(request)
        raise Conflict(f"Execution {execution_id} has already finished (status {row['status']})")
    result = await execution.finished
    await runs.wait_recorded(execution)
    return _cancelled(execution_id, result.status)


def _cancelled(execution_id: str, status: str, code: int = 200) -> web.Response:
    return json_response({"execution_id": execution_id, "status": status, "message": "Execution cancelled"}, status=code)


async def _cancel_elsewhere(request: web.Request, execution_id: str) -> web.Response:
    queue = request.app[RUNS].queue
    status = await queue.cancel(execution_id)
    if status is None:
        raise NotFound(f"Execution {execution_id} not found")
    if status == "dequeued":
        return _cancelled(execution_id, "cancelled")
    if status != "running":
        raise Conflict(f"Execution {execution_id} has already finished (status {status})")
    # Its owner stops it and records how it ended; a dead owner's is recorded by the reaper.
    config = request.app[CONFIG]
    status = await queue.wait_finished(execution_id, config.node_timeout + 3 * config.node_heartbeat)
    if status == "running":
        return _cancelled(execution_id, status, 202)
    return _cancelled(execution_id, status)


async def retry_execution(request: web.Request) -> web.Response:
    """A new execution with the same inputs on the workflow's current version. With
    ``{"from_failure": true}`` the nodes that succeeded keep their recorded outputs, except
    those that held a secret (see ``reusable_outputs``)."""
    row = await _row_or_404(request)
    if row["status"] in ("running", "queued"):
        raise Conflict(f"Execution {row['id']} is still {row['status']}")
    body = await read_json(request, allow_empty=True)
    from_failure = body.get("from_failure", False)
    if not isinstance(from_failure, bool):
        raise ClientError(400, "from_failure: expected true or false")
    wait = query_bool(request, "wait", default=True)
    workflow = request.app[CATALOG].get(row["workflow_id"])
    if workflow is None:
        raise Conflict(f"Workflow {row['workflow_id']} no longer exists: it cannot be run again")
    runs = request.app[RUNS]
    execution = await runs.retry(row, workflow, from_failure=from_failure)
    return await answer_execution(request, runs, execution, wait, {"retry_of": row["id"]})


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
