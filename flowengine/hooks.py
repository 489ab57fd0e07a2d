"""HTTP handlers for triggers: incoming webhooks and the trigger list."""

from __future__ import annotations

from aiohttp import web

from .handlers import answer_execution, start_execution
from .http_json import ClientError, json_object, json_response, query_bool
from .state import TRIGGERS
from .triggers import SIGNATURE_HEADER

__all__ = ["receive_webhook", "list_triggers"]


async def receive_webhook(request: web.Request) -> web.Response:
    """``POST|GET /api/hooks/{path}``: run the workflow whose enabled Webhook trigger has this
    path, with the JSON body's fields, the query parameters and ``headers`` as inputs."""
    triggers = request.app[TRIGGERS]
    path = request.match_info["path"]
    found = triggers.webhook(path)
    if found is None:
        raise ClientError(404, f"no enabled webhook at /api/hooks/{path}")
    workflow, trigger = found
    body = await request.read()
    if not triggers.signature_ok(trigger, body, request.headers.get(SIGNATURE_HEADER)):
        raise ClientError(
            401, f"missing or wrong {SIGNATURE_HEADER}: send sha256=<hex HMAC-SHA256 of the raw body with the secret>"
        )
    fields = json_object(
        body, allow_empty=True, not_object="request body must be a JSON object (its fields become the inputs)"
    )
    wait = query_bool(request, "wait", default=True)
    execution = await start_execution(
        request, workflow, triggers.webhook_inputs(request, fields), trigger={"type": "webhook", "id": trigger.id}
    )
    return await answer_execution(request, execution, wait)


async def list_triggers(request: web.Request) -> web.Response:
    return json_response(request.app[TRIGGERS].describe())
