"""HTTP handlers for triggers: incoming webhooks and the trigger list."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..core.model import Trigger, Workflow
from ..core.triggerchecks import webhook_path
from ..lib.signatures import (
    GITHUB_DELIVERY_HEADER,
    GITHUB_EVENT_HEADER,
    GITHUB_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    check_body_sha256,
    check_github,
    check_timestamped,
    delivery_id,
)
from ..runtime.triggers import TriggerService
from ..values import Value, to_value
from .http_json import ClientError, json_object, json_response, link, query_bool
from .keys import CONFIG, TRIGGERS
from .workflows import answer_execution, start_execution

__all__ = ["receive_webhook", "list_triggers"]

# Query parameters that steer the answer rather than feed the workflow, so need no signature.
_CONTROL_PARAMETERS = frozenset({"wait"})
_NOT_OBJECT = "request body must be a JSON object (its fields become the inputs)"


async def receive_webhook(request: web.Request) -> web.Response:
    """``POST|GET /api/hooks/{path}``: run the workflow whose enabled Webhook trigger has this
    path. Unsigned webhooks take the JSON body's fields, the query parameters and ``headers``
    as inputs; signed ones only what the signature covers (see signatures.py)."""
    triggers = request.app[TRIGGERS]
    path = request.match_info["path"]
    found = triggers.webhook(path)
    if found is None:
        raise ClientError(404, f"no enabled webhook at {request.path}")
    workflow, trigger = found
    try:
        secret = triggers.webhook_secret(trigger)
    except LookupError as exc:
        raise ClientError(503, f"{exc}: signatures cannot be checked") from None
    wait = query_bool(request, "wait", default=True)
    body = await request.read()
    if secret is None:
        fields = json_object(body, allow_empty=True, not_object=_NOT_OBJECT)
        inputs = triggers.webhook_inputs(request.query, request.headers, fields)
        return await _run(request, workflow, trigger, inputs, wait, lambda: None)
    unsigned = sorted(set(request.query) - _CONTROL_PARAMETERS)
    if unsigned:
        raise ClientError(
            400,
            f"query parameters are not covered by the signature, so a signed webhook takes none"
            f" (got: {', '.join(unsigned)}); send the values in the signed JSON body",
        )
    try:
        inputs, accept = _verify(request, triggers, trigger, secret, body)
        fields = json_object(body, allow_empty=True, not_object=_NOT_OBJECT)
        forget = accept()
    except SignatureError as exc:
        raise ClientError(exc.status, exc.message) from None
    typed = {name: to_value(value) for name, value in {**fields, **inputs}.items()}
    return await _run(request, workflow, trigger, typed, wait, forget)


def _verify(
    request: web.Request, triggers: TriggerService, trigger: Trigger, secret: bytes, body: bytes
) -> tuple[dict[str, Any], Callable[[], Callable[[], None]]]:
    """Check the request's signature. Returns the inputs the headers add, and ``accept``, which
    records the request as accepted (SignatureError 409 if it was before) and returns how to
    forget it again should its execution not start."""
    headers = request.headers
    scheme = triggers.signature_scheme(trigger)
    if scheme == "github":
        check_github(secret, body, headers.get(GITHUB_SIGNATURE_HEADER))
        delivery = delivery_id(headers.get(GITHUB_DELIVERY_HEADER))
        hook = webhook_path(trigger.trigger_type)
        inputs: dict[str, Any] = {"github_delivery": delivery}
        event = headers.get(GITHUB_EVENT_HEADER)
        if event is not None:
            if not event.isascii() or not event.isprintable():
                raise SignatureError(400, f"malformed {GITHUB_EVENT_HEADER}")
            inputs["github_event"] = event.strip()

        def accept_delivery() -> Callable[[], None]:
            triggers.seen_deliveries.accept(hook, delivery)
            return lambda: triggers.seen_deliveries.forget(hook, delivery)

        return inputs, accept_delivery
    if scheme == "body-sha256":
        check_body_sha256(secret, body, headers.get(SIGNATURE_HEADER))
        return {}, lambda: lambda: None
    if headers.get(SIGNATURE_HEADER) is None and headers.get(GITHUB_SIGNATURE_HEADER) is not None:
        raise SignatureError(
            401, f'missing {SIGNATURE_HEADER}: to accept GitHub\'s {GITHUB_SIGNATURE_HEADER}, set "signature": "github" on the trigger'
        )
    tolerance = request.app[CONFIG].webhook_tolerance_s
    now = time.time()
    timestamp, digest = check_timestamped(secret, body, headers.get(SIGNATURE_HEADER), now, tolerance)

    def accept_signature() -> Callable[[], None]:
        triggers.seen_signatures.accept(digest, timestamp, now, tolerance)
        return lambda: triggers.seen_signatures.forget(digest)

    return {}, accept_signature


async def _run(
    request: web.Request,
    workflow: Workflow,
    trigger: Trigger,
    inputs: dict[str, Value],
    wait: bool,
    forget: Callable[[], None],
) -> web.Response:
    try:
        execution = await start_execution(request, workflow, inputs, trigger={"type": "webhook", "id": trigger.id})
    except BaseException:
        forget()  # not started (the queue is full, say): the sender may try the same request again
        raise
    return await answer_execution(request, execution, wait)


async def list_triggers(request: web.Request) -> web.Response:
    described = request.app[TRIGGERS].describe()
    for entry in described:
        if entry["type"] == "Webhook":
            entry["url"] = link(request, "getWebhook", path=webhook_path(entry))
    return json_response(described)
