"""HTTP handlers for triggers: incoming webhooks and the trigger list.

A signed request is accepted once: the replay memory (runtime/replay.py) is this process's
with SQLite and the shared database's with PostgreSQL, so that a request replayed to another
process of the cluster is refused too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
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
from ..runtime.replay import ReplayMemory, replay_memory
from ..runtime.triggers import TriggerService
from ..values import Value, to_value
from .http_json import ClientError, json_object, json_response, link, query_bool
from .keys import CONFIG, RUNS, STORE, TRIGGERS
from .workflows import answer_execution

__all__ = ["receive_webhook", "list_triggers"]

log = logging.getLogger("flowengine.webhooks")

# Undoes an accept when its execution does not start.
Forget = Callable[[], Awaitable[None]]

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
        return await _run(request, workflow, trigger, inputs, wait, _nothing)
    unsigned = sorted(set(request.query) - _CONTROL_PARAMETERS)
    if unsigned:
        raise ClientError(
            400,
            f"query parameters are not covered by the signature, so a signed webhook takes none"
            f" (got: {', '.join(unsigned)}); send the values in the signed JSON body",
        )
    memory = replay_memory(request.app[STORE], triggers.seen_signatures, triggers.seen_deliveries)
    try:
        inputs, accept = _verify(request, triggers, trigger, secret, body, memory)
        fields = json_object(body, allow_empty=True, not_object=_NOT_OBJECT)
        forget = await accept()
    except SignatureError as exc:
        raise ClientError(exc.status, exc.message) from None
    typed = {name: to_value(value) for name, value in {**fields, **inputs}.items()}
    return await _run(request, workflow, trigger, typed, wait, forget)


async def _nothing() -> None:
    pass


def _verify(
    request: web.Request, triggers: TriggerService, trigger: Trigger, secret: bytes, body: bytes, memory: ReplayMemory
) -> tuple[dict[str, Any], Callable[[], Awaitable[Forget]]]:
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

        async def accept_delivery() -> Forget:
            await memory.accept_delivery(hook, delivery, time.time())
            return lambda: memory.forget_delivery(hook, delivery)

        return inputs, accept_delivery
    if scheme == "body-sha256":
        check_body_sha256(secret, body, headers.get(SIGNATURE_HEADER))
        async def accept_any() -> Forget:
            return _nothing  # nothing to remember: this scheme cannot tell a replay

        return {}, accept_any
    if headers.get(SIGNATURE_HEADER) is None and headers.get(GITHUB_SIGNATURE_HEADER) is not None:
        raise SignatureError(
            401, f'missing {SIGNATURE_HEADER}: to accept GitHub\'s {GITHUB_SIGNATURE_HEADER}, set "signature": "github" on the trigger'
        )
    tolerance = request.app[CONFIG].webhook_tolerance_s
    now = time.time()
    timestamp, digest = check_timestamped(secret, body, headers.get(SIGNATURE_HEADER), now, tolerance)

    async def accept_signature() -> Forget:
        await memory.accept_signature(digest, timestamp, now, tolerance)
        return lambda: memory.forget_signature(digest)

    return {}, accept_signature


async def _run(
    request: web.Request,
    workflow: Workflow,
    trigger: Trigger,
    inputs: dict[str, Value],
    wait: bool,
    forget: Forget,
) -> web.Response:
    runs = request.app[RUNS]
    try:
        execution = await runs.admit(workflow, inputs, trigger={"type": "webhook", "id": trigger.id})
    except BaseException as refused:
        # Not started (the queue is full, say): the sender may try the same request again. If
        # even forgetting fails (the database is down), the answer stays the refusal's.
        try:
            await forget()
        except Exception as exc:
            log.warning("a webhook request was refused (%s) but stays marked accepted: %s", type(refused).__name__, exc)
        raise
    return await answer_execution(request, runs, execution, wait)


async def list_triggers(request: web.Request) -> web.Response:
    described = request.app[TRIGGERS].describe()
    for entry in described:
        if entry["type"] == "Webhook":
            entry["url"] = link(request, "getWebhook", path=webhook_path(entry))
    return json_response(described)
