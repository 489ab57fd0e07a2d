"""HTTP handlers for health, workflows, node types and execution (DESIGN.md section 6)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .. import __version__
from ..runtime.catalog import WorkflowConflict, WorkflowExists, WorkflowNotFound
from ..core.engine import Execution, ExecutionResult, decode_inputs
from ..errors import ValidationError
from .http_json import ClientError, json_response, json_text_response, query_bool, query_int, read_json
from ..core.model import Workflow
from ..core.redaction import MASK
from ..runtime.executions import HistoryUnavailable, Overloaded
from ..values import Value
from .keys import CATALOG, REGISTRY, RUNS, STORE

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
    "start_execution",
    "execution_response",
]


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "healthy", "version": __version__, "service": "flowengine"})


def _workflow_or_404(request: web.Request) -> Workflow:
    workflow_id = request.match_info["id"]
    catalog = request.app[CATALOG]
    workflow = catalog.get(workflow_id)
    if workflow is None:
        unloadable = catalog.unloadable.get(workflow_id)
        if unloadable is not None:
            raise ClientError(
                404,
                f"Workflow {workflow_id} is stored but cannot be loaded: {unloadable[2]};"
                " PUT a corrected document or DELETE it",
            )
        raise ClientError(404, f"Workflow {workflow_id} not found")
    return workflow


def _validated(request: web.Request, document: dict, workflow_id: str | None = None) -> Workflow:
    try:
        return request.app[CATALOG].parse(document, workflow_id)
    except ValidationError as exc:
        raise ClientError(400, str(exc)) from None


async def list_workflows(request: web.Request) -> web.Response:
    return json_response([workflow.summary() for workflow in request.app[CATALOG].all()])


async def create_workflow(request: web.Request) -> web.Response:
    workflow = _validated(request, await read_json(request))
    try:
        await request.app[CATALOG].create(workflow)
    except WorkflowExists:
        raise ClientError(
            409, f"Workflow {workflow.id} already exists: PUT /api/workflows/{workflow.id} replaces it"
        ) from None
    except WorkflowConflict as exc:
        raise ClientError(409, str(exc)) from None
    return json_response(
        {"id": workflow.id, "message": "Workflow created successfully"},
        status=201,
        headers={"Location": f"/api/workflows/{workflow.id}"},
    )


async def get_workflow(request: web.Request) -> web.Response:
    """The current document, or with ``?version=N`` the one kept for that version."""
    version = query_int(request, "version")
    if version is None:
        return json_response(_shown(_workflow_or_404(request).to_json()))
    workflow_id = request.match_info["id"]
    kept = await request.app[STORE].workflow_version(workflow_id, version)
    if kept is None:
        raise ClientError(404, f"Workflow {workflow_id} has no version {version}")
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
        raise ClientError(400, f"id: the document's id {given!r} does not match the URL's {workflow_id!r}")
    catalog = request.app[CATALOG]
    if not catalog.exists(workflow_id):
        raise ClientError(404, f"Workflow {workflow_id} not found")
    workflow = _validated(request, document, workflow_id)
    try:
        await catalog.replace(workflow)
    except WorkflowNotFound:
        raise ClientError(404, f"Workflow {workflow_id} not found") from None
    except WorkflowConflict as exc:
        raise ClientError(409, str(exc)) from None
    return json_response({"id": workflow.id, "version": workflow.version, "message": "Workflow updated successfully"})


async def delete_workflow(request: web.Request) -> web.Response:
    workflow_id = request.match_info["id"]
    try:
        await request.app[CATALOG].delete(workflow_id)
    except WorkflowNotFound:
        raise ClientError(404, f"Workflow {workflow_id} not found") from None
    return json_response({"message": "Workflow deleted successfully"})


async def list_nodes(request: web.Request) -> web.Response:
    return json_response(request.app[REGISTRY].describe())


def execution_response(result: ExecutionResult) -> web.Response:
    """200 with the result, or 500 when the execution failed (DESIGN.md section 6)."""
    return json_text_response(result.response_json(), status=500 if result.status == "failed" else 200)


async def execute_workflow(request: web.Request) -> web.Response:
    workflow = _workflow_or_404(request)
    wait = query_bool(request, "wait", default=True)
    body = await read_json(request, allow_empty=True)
    try:
        inputs = decode_inputs(body.get("inputs"))
    except ValidationError as exc:
        raise ClientError(400, str(exc)) from None
    return await answer_execution(request, await start_execution(request, workflow, inputs), wait)


async def start_execution(
    request: web.Request, workflow: Workflow, inputs: dict[str, Value], **options: Any
) -> Execution:
    """Admit and record a new execution; 503 with Retry-After when the queue is full or the
    history writer is too far behind."""
    try:
        return await request.app[RUNS].admit(workflow, inputs, **options)
    except Overloaded as exc:
        raise ClientError(503, str(exc), headers={"Retry-After": "1"}) from None


async def answer_execution(
    request: web.Request, execution: Execution, wait: bool, extra: dict[str, Any] | None = None
) -> web.Response:
    """Run a started execution: wait for its result, or run it in the background and answer
    202 (``?wait=false``). Either answer is sent once what it says is committed to the history
    (unless FLOWENGINE_HISTORY_ACK=async). ``extra`` fields are added to the 202 body."""
    runs = request.app[RUNS]
    try:
        if wait:
            return execution_response(await runs.run(execution, acknowledge=True))
        runs.run_in_background(execution)
        await runs.acknowledge_start(execution)
    except HistoryUnavailable as exc:
        raise ClientError(503, str(exc), headers={"Retry-After": "1"}) from None
    return json_response(
        {"execution_id": execution.id, "status": "running", **(extra or {})},
        status=202,
        headers={"Location": f"/api/executions/{execution.id}"},
    )
