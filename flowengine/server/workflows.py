"""HTTP handlers for health, workflows, node types and execution (DESIGN.md section 6)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .. import __version__
from ..core.engine import Execution, ExecutionResult, decode_inputs
from ..core.redaction import MASK
from ..errors import NotFound, ValidationError, WorkflowExists, WorkflowNotFound
from ..runtime.executions import ExecutionService
from .http_json import ClientError, json_response, json_text_response, link, query_bool, query_int, read_json
from .keys import CATALOG, LIVENESS, REGISTRY, RUNS, STORE

__all__ = [
    "health",
    "list_workflows",
    "create_workflow",
    "get_workflow",
    "replace_workflow",
    "delete_workflow",
    "execute_workflow",
    "list_nodes",
    "answer_execution",
    "execution_response",
]


async def health(request: web.Request) -> web.Response:
    """Always 200 while the process serves. On a shared PostgreSQL database it also names the
    store and this process (``node``: which worker of a ``--workers N`` server answered), and
    says ``degraded`` (and why) while the database or its notification connection is down;
    with SQLite the body keeps the upstream shape."""
    body: dict[str, Any] = {"status": "healthy", "version": __version__, "service": "flowengine"}
    liveness = request.app.get(LIVENESS)
    if liveness is not None:
        body["store"] = "postgresql"
        body["node"] = liveness.store.node_id  # which process answered (host:pid:suffix)
        problem = liveness.degraded
        if problem:
            body["status"], body["problem"] = "degraded", problem
    return json_response(body)


async def list_workflows(request: web.Request) -> web.Response:
    return json_response([workflow.summary() for workflow in request.app[CATALOG].all()])


_REGISTERED_MESSAGES = {
    "created": "Workflow created successfully",
    "updated": "Workflow updated successfully",
    "unchanged": "Workflow unchanged",
}


async def create_workflow(request: web.Request) -> web.Response:
    """201 in every successful case: upstream clients re-post fixed-id documents on each run
    (DESIGN.md section 6). ``If-None-Match: *`` keeps it to creating a new id."""
    create_only = _create_only(request)
    catalog = request.app[CATALOG]
    document = await read_json(request)
    workflow = catalog.parse(document)
    try:
        workflow, outcome = await catalog.register(
            workflow, create_only=create_only, unnamed_triggers=_unnamed_triggers(document)
        )
    except WorkflowExists:
        # Only a create-only registration raises it; a failed precondition is HTTP's 412.
        raise ClientError(
            412, f"Workflow {workflow.id} already exists (If-None-Match: * asks to create a new id only)"
        ) from None
    return json_response(
        {"id": workflow.id, "version": workflow.version, "message": _REGISTERED_MESSAGES[outcome]},
        status=201,
        headers={"Location": link(request, "getWorkflow", id=workflow.id)},
    )


def _create_only(request: web.Request) -> bool:
    """``If-None-Match: *``: create, never replace. Workflows carry no entity tags, so no other
    value can be checked; it is refused rather than ignored, which would replace unasked."""
    value = request.headers.get("If-None-Match")
    if value is None:
        return False
    if value.strip() != "*":
        raise ClientError(400, f"header If-None-Match: only * is supported (create-only), got {value!r}")
    return True


def _unnamed_triggers(document: dict[str, Any]) -> list[int]:
    """Positions of the triggers the document gives no id (parsing has checked the shape)."""
    triggers = document.get("triggers") or []
    return [index for index, trigger in enumerate(triggers) if trigger.get("id") is None]


async def get_workflow(request: web.Request) -> web.Response:
    """The current document, or with ``?version=N`` the one kept for that version."""
    version = query_int(request, "version")
    if version is None:
        return json_response(_shown(request.app[CATALOG].require(request.match_info["id"]).to_json()))
    workflow_id = request.match_info["id"]
    kept = await request.app[STORE].workflow_version(workflow_id, version)
    if kept is None:
        raise NotFound(f"Workflow {workflow_id} has no version {version}")
    document = json.loads(kept["document"])
    document.update(version=version, created_at=kept["created_at"])
    return json_response(_shown(document))


def _shown(document: dict[str, Any]) -> dict[str, Any]:
    """The document as GET shows it: a webhook's literal secret is masked (a Secret reference,
    which names an environment variable, is shown as it is)."""
    for trigger in document.get("triggers", ()):
        if isinstance(trigger["trigger_type"].get("secret"), str):
            trigger["trigger_type"]["secret"] = MASK
    return document


async def replace_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["id"]
    document = await read_json(request)
    given = document.get("id")
    if given is not None and given != workflow_id:
        raise ValidationError(f"id: the document's id {given!r} does not match the URL's {workflow_id!r}")
    catalog = request.app[CATALOG]
    if not catalog.exists(workflow_id):
        raise WorkflowNotFound(workflow_id)
    workflow = catalog.parse(document, workflow_id)
    await catalog.replace(workflow)
    return json_response({"id": workflow.id, "version": workflow.version, "message": "Workflow updated successfully"})


async def delete_workflow(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete(request.match_info["id"])
    return json_response({"message": "Workflow deleted successfully"})


async def list_nodes(request: web.Request) -> web.Response:
    return json_response(request.app[REGISTRY].describe())


def execution_response(result: ExecutionResult) -> web.Response:
    """200 with the result, or 500 when the execution failed (DESIGN.md section 6)."""
    return json_text_response(result.response_json(), status=500 if result.status == "failed" else 200)


async def execute_workflow(request: web.Request) -> web.Response:
    app = request.app
    runs = app[RUNS]
    workflow = await app[CATALOG].lookup(request.match_info["id"])
    wait = query_bool(request, "wait", default=True)
    body = await read_json(request, allow_empty=True)
    inputs = decode_inputs(body.get("inputs"))
    # Overloaded (a 503) when the queue is full or the history writer is too far behind.
    return await answer_execution(request, runs, await runs.admit(workflow, inputs), wait)


async def answer_execution(
    request: web.Request, runs: ExecutionService, execution: Execution, wait: bool, extra: dict[str, Any] | None = None
) -> web.Response:
    """Run an execution ``runs`` started: wait for its result, or run it in the background and
    answer 202 (``?wait=false``). Either answer is sent once what it says is committed to the
    history (unless FLOWENGINE_HISTORY_ACK=async). ``extra`` fields are added to the 202 body."""
    if wait:
        return execution_response(await runs.run(execution, acknowledge=True))
    status = await runs.dispatch(execution)  # "running" here, or "queued" (for a slot, anywhere)
    return json_response(
        {"execution_id": execution.id, "status": status, **(extra or {})},
        status=202,
        headers={"Location": link(request, "getExecution", id=execution.id)},
    )
