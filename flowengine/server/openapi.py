"""``GET /openapi.json``: the HTTP API described as an OpenAPI 3.1 document, written by hand.

The paths, methods, operation ids, summaries, tags and who may call each operation come from
the route table (flowengine.server.routes); this module adds what the table does not say:
parameters, bodies and responses, by operation id. The schemas take their enums and limits
from the code that enforces them (the model's validator, the engine's statuses, the event
types), so the document cannot promise what the server refuses. ``tests/test_openapi.py``
compares the document with the router and the code, and ``make fuzz`` (``fuzz/run.py``) runs
Schemathesis against a live server from it: every status code and body the server sends must
be one described here.

Conventions the schemas follow:
- every error is ``{"error": "..."}`` (``components.responses``), whatever the status;
- a failed execution is answered 500 with the execution's own body (``ExecutionFailure``), the
  one 5xx that is a documented outcome rather than a server fault;
- authentication is off by default, so security is optional (``[{}, {"bearerAuth": [scope]}]``,
  the scope being the one the route table gives); with it on, 401/403 are answered, and
  429/503 when rate and load limits are configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import __version__
from ..core.engine import EXECUTION_STATUSES, NODE_STATUSES
from ..core.events import EVENT_TYPES
from ..core.model import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_MULTIPLIER,
    ON_ERROR_POLICIES,
    TRIGGER_TYPES,
    WORKFLOW_ID_PATTERN,
)
from ..lib.auth import SCOPES
from ..lib.signatures import SCHEMES
from ..nodes.api import MAX_DURATION_MS
from ..values import CONFIG_ONLY_TAGS, TAGS
from .executions import DEFAULT_PAGE, EXECUTION_TRIGGER_TYPES, MAX_EVENTS_PAGE, MAX_PAGE
from .http_json import MAX_QUERY_INT
from .websocket import EVENT_TYPES_PATTERN

if TYPE_CHECKING:
    from .routes import Route

__all__ = ["openapi_document", "document_response"]

Schema = dict[str, Any]
# The table's route for an operation id, for descriptions that point at another route.
Find = Callable[[str], "Route"]

# Sorted, as the validator lists them when it refuses a tag.
_VALUE_TAGS = sorted(TAGS | CONFIG_ONLY_TAGS)
# The one on_error policy written as an object, because it carries its max_attempts.
_OBJECT_POLICY = "RetryWorkflow"
_PLAIN_ON_ERROR_POLICIES = [policy for policy in ON_ERROR_POLICIES if policy != _OBJECT_POLICY]
# An execution records what started it as the lower-case trigger type; an API call is "manual".
_EXECUTION_TRIGGER_KINDS = list(EXECUTION_TRIGGER_TYPES)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _optional(schema: Schema) -> Schema:
    """An optional field of a document the client sends: ``null`` there means "not set" (the
    README says so, and the server reads it so), which the schema must allow."""
    return _nullable(schema)


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    # Additive fields are allowed by the contract (DESIGN.md section 6), so objects stay open.
    return {"type": "object", "properties": properties, "required": list(required), **extra}


_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_NUMBER = {"type": "number"}
_DURATION_MS = {"type": "integer", "minimum": 0, "description": "whole milliseconds, truncated"}
_DURATION_US = {"type": "integer", "minimum": 0, "description": "the same duration in whole microseconds"}
_BOOLEAN = {"type": "boolean"}
_TIMESTAMP = {"type": "string", "description": "RFC 3339 UTC with milliseconds, e.g. 2026-11-28T10:13:13.123Z"}
_EVENT_TYPES = {"type": "string", "pattern": EVENT_TYPES_PATTERN}
_DATE_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, e.g. 2026-11-28T10:13:13.123Z"}
_MESSAGE = _object({"message": _STRING}, ("message",))

# The fields of a workflow document a client sends, but its id.
_WORKFLOW_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1},
    "description": _optional(_STRING),
    "nodes": _optional({"type": "array", "items": {"$ref": "#/components/schemas/Node"}}),
    "connections": _optional({"type": "array", "items": {"$ref": "#/components/schemas/Connection"}}),
    "triggers": _optional({"type": "array", "items": {"$ref": "#/components/schemas/Trigger"}}),
    "settings": _optional({"$ref": "#/components/schemas/Settings"}),
}

# The fields of each trigger type (the validator's, flowengine.core.model.TRIGGER_TYPES);
# a type missing here fails the document's build, so a new one cannot go undocumented.
_TRIGGER_FIELDS: dict[str, dict[str, Schema]] = {
    "Manual": {},
    "Cron": {"expression": {"type": "string", "minLength": 1}},
    "Webhook": {
        "path": {"type": "string", "minLength": 1},
        "secret": _optional(
            {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    _object({"type": {"const": "Secret"}, "value": _STRING}, ("type", "value")),
                ],
                "description": "HMAC-SHA256 key the requests are signed with, or a Secret reference to one",
            }
        ),
        "signature": _optional(
            {
                "type": "string",
                "enum": list(SCHEMES),
                "description": 'how requests are signed (default flowengine: t=...,v1=... over "t.body";'
                " github: X-Hub-Signature-256; body-sha256: the replayable body-only form); needs a secret",
            }
        ),
    },
    "Event": {"event_type": {"type": "string", "enum": list(EVENT_TYPES)}, "workflow_id": _optional(_STRING)},
}
_TRIGGER_REQUIRED = {"Cron": ("expression",), "Webhook": ("path",), "Event": ("event_type",)}


def _schemas(find: Find) -> dict[str, Schema]:
    return {
        "Error": _object(
            {"error": {"type": "string", "description": "what went wrong, naming the JSON path or parameter"}},
            ("error",),
            example={"error": "Workflow demo not found"},
        ),
        "Health": _object(
            {
                "status": {"enum": ["healthy", "degraded"], "description": "degraded: a shared database or its notification connection is down"},
                "version": _STRING,
                "service": {"const": "flowengine"},
                "store": {"const": "postgresql", "description": "only on a shared PostgreSQL database"},
                "node": {**_STRING, "description": "only on a shared PostgreSQL database: the process that answered (host:pid:suffix)"},
                "problem": {**_STRING, "description": "why the process is degraded"},
            },
            ("status", "version", "service"),
        ),
        "TypedValue": _object(
            {
                "type": {"type": "string", "enum": _VALUE_TAGS},
                "value": {},
                "format": {"type": "string", "description": "Secret only: text with one {} where the secret goes"},
            },
            ("type",),
            description='A typed value, {"type": T, "value": v} (DESIGN.md section 3). Secret values are'
            " names of environment variables, never the secret itself. Bytes hold base64, or on input"
            " an array of byte numbers 0-255 (the upstream form), which is sent back as base64.",
        ),
        "InputValue": {
            "description": "A typed value, or plain JSON mapped to String/Number/Bool/Null or Json.",
        },
        "RetryPolicy": _object(
            {
                "max_attempts": _optional({"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS}),
                "delay_ms": _optional({"type": "integer", "minimum": 0, "maximum": MAX_DURATION_MS}),
                "backoff_multiplier": _optional({"type": "number", "minimum": 1, "maximum": MAX_BACKOFF_MULTIPLIER}),
                "max_delay_ms": _optional({"type": "integer", "minimum": 0, "maximum": MAX_DURATION_MS}),
                "retry_on_timeout": _optional(_BOOLEAN),
            }
        ),
        "Node": _object(
            {
                "id": {"type": "string", "minLength": 1},
                "node_type": {"type": "string", "description": f"a type listed by {_spelled(find('listNodeTypes'))}"},
                "name": _optional(_STRING),
                "config": _optional({"type": "object", "additionalProperties": _ref("InputValue")}),
                "position": _optional({"type": "object"}),
                "retry_policy": _optional(_ref("RetryPolicy")),
                "timeout_ms": _optional({"type": "integer", "minimum": 1, "maximum": MAX_DURATION_MS}),
            },
            ("id", "node_type"),
        ),
        "Connection": _object(
            {
                "from_node": {"type": "string", "minLength": 1},
                "from_port": {"type": "string", "minLength": 1},
                "to_node": {"type": "string", "minLength": 1},
                "to_port": {"type": "string", "minLength": 1},
            },
            ("from_node", "from_port", "to_node", "to_port"),
        ),
        "TriggerType": {
            "oneOf": [
                _object({"type": {"const": kind}, **_TRIGGER_FIELDS[kind]}, ("type", *_TRIGGER_REQUIRED.get(kind, ())))
                for kind in TRIGGER_TYPES
            ]
        },
        "Trigger": _object(
            {
                "id": _optional({"type": "string", "minLength": 1, "description": "made (a UUID4) when not set"}),
                "enabled": _optional(_BOOLEAN),
                "trigger_type": _ref("TriggerType"),
            },
            ("trigger_type",),
        ),
        "OnError": {
            "oneOf": [
                {"type": "string", "enum": _PLAIN_ON_ERROR_POLICIES},
                _object(
                    {
                        _OBJECT_POLICY: _object(
                            {"max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS}}, ("max_attempts",)
                        )
                    },
                    (_OBJECT_POLICY,),
                    additionalProperties=False,
                ),
            ]
        },
        "Settings": _object(
            {
                "max_execution_time_ms": _optional({"type": "integer", "minimum": 1, "maximum": MAX_DURATION_MS}),
                "max_parallel_nodes": _optional({"type": "integer", "minimum": 1}),
                "on_error": _optional(_ref("OnError")),
            }
        ),
        "WorkflowInput": _object(
            {
                "id": _optional(
                    {
                        "type": "string",
                        "pattern": f"^{WORKFLOW_ID_PATTERN.pattern}$",
                        "description": "made (a UUID4) when not set",
                    }
                ),
                **_WORKFLOW_FIELDS,
            },
            ("name",),
            description="A workflow document (DESIGN.md section 4). Fields left out (or null) get their"
            " defaults; unknown fields are ignored.",
            example={
                "id": "hello",
                "name": "Hello",
                "nodes": [{"id": "log", "node_type": "debug.log", "config": {}}],
                "connections": [],
            },
        ),
        "WorkflowReplacement": _object(
            _WORKFLOW_FIELDS,
            ("name",),
            # JSON Schema cannot compare a body field with a path parameter, so the schema leaves
            # the id out: the URL names the workflow. The server also takes a body id equal to the
            # URL's (400 when they differ).
            **{"not": {"required": ["id"]}},
            description="A workflow document without its id, which the URL gives (PUT). Fields left"
            " out (or null) get their defaults; unknown fields are ignored.",
            example={"name": "Hello", "nodes": [{"id": "log", "node_type": "debug.log", "config": {}}], "connections": []},
        ),
        "Workflow": _object(
            {
                "id": _STRING,
                "name": _STRING,
                "description": _nullable(_STRING),
                "nodes": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": _STRING,
                            "node_type": _STRING,
                            "name": _STRING,
                            "config": {"type": "object", "additionalProperties": _ref("TypedValue")},
                            "position": _nullable({"type": "object"}),
                            "retry_policy": _nullable(_ref("RetryPolicy")),
                            "timeout_ms": _nullable(_INTEGER),
                        },
                        ("id", "node_type", "name", "config"),
                    ),
                },
                "connections": {"type": "array", "items": _ref("Connection")},
                "triggers": {
                    "type": "array",
                    "items": _object(
                        {"id": _STRING, "enabled": _BOOLEAN, "trigger_type": {"type": "object"}},
                        ("id", "enabled", "trigger_type"),
                    ),
                },
                "settings": _object(
                    {
                        "max_execution_time_ms": _nullable(_INTEGER),
                        "max_parallel_nodes": _INTEGER,
                        "on_error": _ref("OnError"),
                    },
                    ("max_execution_time_ms", "max_parallel_nodes", "on_error"),
                ),
                "version": {"type": "integer", "minimum": 1},
                "created_at": _TIMESTAMP,
                "updated_at": _TIMESTAMP,
            },
            ("id", "name", "description", "nodes", "connections", "triggers", "settings", "version"),
        ),
        "WorkflowSummary": _object(
            {
                "id": _STRING,
                "name": _STRING,
                "description": _nullable(_STRING),
                "nodes": {"type": "integer", "minimum": 0, "description": "how many nodes"},
                "connections": {"type": "integer", "minimum": 0, "description": "how many connections"},
                "version": {"type": "integer", "minimum": 1},
            },
            ("id", "name", "description", "nodes", "connections"),
        ),
        "WorkflowRegistered": _object(
            {
                "id": _STRING,
                "version": {"type": "integer", "minimum": 1, "description": "the version now current"},
                "message": {
                    "type": "string",
                    "enum": ["Workflow created successfully", "Workflow updated successfully", "Workflow unchanged"],
                    "description": "created: a new id (version 1); updated: a taken id, stored as its next"
                    " version; unchanged: the document is the current version's, nothing was stored",
                },
            },
            ("id", "version", "message"),
        ),
        "WorkflowUpdated": _object(
            {"id": _STRING, "version": {"type": "integer", "minimum": 1}, "message": _STRING},
            ("id", "version", "message"),
        ),
        "WorkflowVersion": _object(
            {"version": {"type": "integer", "minimum": 1}, "created_at": _TIMESTAMP, "current": _BOOLEAN},
            ("version", "created_at", "current"),
        ),
        "Message": _MESSAGE,
        "ExecuteRequest": _object(
            {
                "inputs": _nullable(
                    {
                        "type": "object",
                        "additionalProperties": _ref("InputValue"),
                        "description": "values for the root nodes' ports, by port name",
                    }
                )
            },
            example={"inputs": {"message": "hello"}},
        ),
        "RetryRequest": _object(
            {
                "from_failure": {
                    "type": "boolean",
                    "default": False,
                    "description": "keep the recorded outputs of the nodes that succeeded",
                }
            }
        ),
        "FailedNode": _object({"node_id": _STRING, "error": _STRING}, ("node_id", "error")),
        "ExecutionResult": _object(
            {
                "error": _STRING,
                "execution_id": _STRING,
                "completed_nodes": {"type": "integer", "minimum": 0},
                "total_nodes": {"type": "integer", "minimum": 0},
                "status": {"type": "string", "enum": EXECUTION_STATUSES},
                "duration_ms": _DURATION_MS,
                "duration_us": _DURATION_US,
                "attempts": {"type": "integer", "minimum": 0},
                "outputs": {
                    "type": "object",
                    "description": "sink node id -> port -> typed value",
                    "additionalProperties": {"type": "object", "additionalProperties": _ref("TypedValue")},
                },
                "failed_nodes": {"type": "array", "items": _ref("FailedNode")},
                "skipped_nodes": {"type": "array", "items": _STRING},
                "cancelled_nodes": {"type": "array", "items": _STRING},
            },
            (
                "execution_id",
                "completed_nodes",
                "total_nodes",
                "status",
                "duration_ms",
                "duration_us",
                "attempts",
                "outputs",
                "failed_nodes",
                "skipped_nodes",
            ),
        ),
        "ExecutionFailure": {
            "description": "A failed execution (on_error StopWorkflow, a node failure, or the time limit):"
            ' the execution body with status "failed" and "error" saying why.',
            "allOf": [
                _ref("ExecutionResult"),
                _object({"status": {"const": "failed"}, "error": _STRING}, ("status", "error")),
            ],
        },
        "ExecutionAccepted": _object(
            {"execution_id": _STRING, "status": {"type": "string", "enum": ["running", "queued"]}, "retry_of": _STRING},
            ("execution_id", "status"),
        ),
        "ExecutionCancelled": _object(
            {"execution_id": _STRING, "status": {"type": "string", "enum": EXECUTION_STATUSES}, "message": _STRING},
            ("execution_id", "status", "message"),
        ),
        "ExecutionSummary": _object(
            {
                "id": _STRING,
                "workflow_id": _STRING,
                "workflow_version": _INTEGER,
                "trigger": _object(
                    {"type": {"type": "string", "enum": _EXECUTION_TRIGGER_KINDS}, "id": _nullable(_STRING)},
                    ("type",),
                ),
                "status": {"type": "string", "enum": EXECUTION_STATUSES},
                "started_at": _TIMESTAMP,
                "finished_at": _nullable(_TIMESTAMP),
                "duration_ms": _nullable(_DURATION_MS),
                "duration_us": _nullable(_DURATION_US),
                "error": _nullable(_STRING),
                "attempts": _nullable(_INTEGER),
                "retry_of": _nullable(_STRING),
            },
            (
                "id",
                "workflow_id",
                "workflow_version",
                "trigger",
                "status",
                "started_at",
                "finished_at",
                "duration_ms",
                "duration_us",
                "error",
                "attempts",
                "retry_of",
            ),
        ),
        "ExecutionPage": _object(
            {
                "executions": {"type": "array", "items": _ref("ExecutionSummary")},
                "next": _nullable(
                    {"type": "integer", "description": "pass as ?before= for the next (older) page; null on the last page"}
                ),
                "total": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "how many executions the filters match, on every page (before and limit aside)",
                },
            },
            ("executions", "next", "total"),
        ),
        "Session": _object(
            {
                "authenticated": {"type": "boolean", "description": "false when authentication is off"},
                "auth": {"type": "string", "enum": ["off", "api_key", "jwt"], "description": "what the credentials are"},
                "subject": _nullable(
                    {"type": "string", "description": "the JWT's sub, or key-<hash> for an API key; null when off"}
                ),
                "scopes": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(SCOPES)},
                    "description": "every scope the credentials allow (each scope allows the ones before it);"
                    " all of them when authentication is off",
                },
            },
            ("authenticated", "auth", "subject", "scopes"),
            example={"authenticated": True, "auth": "api_key", "subject": "key-3f2a9c1b7d10", "scopes": ["read"]},
        ),
        "NodeRecord": _object(
            {
                "node_id": _STRING,
                "node_type": _STRING,
                "status": {"type": "string", "enum": NODE_STATUSES},
                "attempts": _INTEGER,
                "started_at": _nullable(_TIMESTAMP),
                "duration_ms": _nullable(_DURATION_MS),
                "duration_us": _nullable(_DURATION_US),
                "outputs": _nullable({"type": "object", "additionalProperties": _ref("TypedValue")}),
                "error": _nullable(_STRING),
                "cached": _BOOLEAN,
            },
            ("node_id", "node_type", "status"),
        ),
        "Execution": {
            "allOf": [
                _ref("ExecutionSummary"),
                _object(
                    {
                        "inputs": _nullable({"type": "object", "additionalProperties": _ref("TypedValue")}),
                        "nodes": {"type": "array", "items": _ref("NodeRecord")},
                    },
                    ("inputs", "nodes"),
                ),
            ]
        },
        "Event": _object(
            {
                "type": {"type": "string", "enum": list(EVENT_TYPES)},
                "execution_id": _STRING,
                "workflow_id": _STRING,
                "seq": {"type": "integer", "minimum": 1},
                "timestamp": _TIMESTAMP,
            },
            ("type", "execution_id", "timestamp"),
            description="An execution event (DESIGN.md section 7); the other fields depend on the type.",
        ),
        "PortDescription": _object(
            {"name": _STRING, "description": _STRING, "required": _BOOLEAN, "type": _STRING},
            ("name", "description", "required", "type"),
        ),
        "ConfigKeyDescription": _object(
            {
                "name": _STRING,
                "type": _STRING,
                "default": {},
                "description": _STRING,
                "required": _BOOLEAN,
                "choices": {"type": "array"},
                "secret": _BOOLEAN,
            },
            ("name", "type", "default", "description", "required"),
        ),
        "NodeTypeDescription": _object(
            {
                "type": _STRING,
                "description": _STRING,
                "category": _STRING,
                "inputs": {"type": "array", "items": _ref("PortDescription")},
                "outputs": {"type": "array", "items": _ref("PortDescription")},
                "config": {"type": "array", "items": _ref("ConfigKeyDescription")},
                "any_inputs": _BOOLEAN,
                "any_outputs": _BOOLEAN,
                "port_aliases": {
                    "type": "object",
                    "description": "what ports 'input' and 'output' (wired by the upstream SDK's Flow >>) mean on this"
                    " type when it has no port of that name: 'input' -> an input port, 'output' -> an output"
                    " port or '*' (all of the node's outputs as one Object); a name left out is refused unless"
                    " the type accepts any port name",
                    "properties": {"input": _STRING, "output": _STRING},
                    "additionalProperties": False,
                },
            },
            ("type", "description", "category", "inputs", "outputs", "config", "port_aliases"),
        ),
        "TriggerDescription": _object(
            {
                "workflow_id": _STRING,
                "workflow_name": _STRING,
                "trigger_id": _STRING,
                "type": {"type": "string", "enum": list(TRIGGER_TYPES)},
                "enabled": _BOOLEAN,
                "url": {"type": "string", "description": "Webhook: where to send requests"},
                "signed": {"type": "boolean", "description": "Webhook: whether a signature is required"},
                "next_fire": _nullable({**_TIMESTAMP, "description": "Cron: the next tick"}),
            },
            ("workflow_id", "workflow_name", "trigger_id", "type", "enabled"),
        ),
    }


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "required": True, "schema": {"type": "integer"}}}

RESPONSES: dict[str, dict[str, Any]] = {
    "BadRequest": _error("Invalid input: the message names the JSON path or parameter."),
    "Unauthorized": _error(
        "Credentials missing or wrong (only when authentication is configured; for a signed"
        " webhook, a missing or wrong X-Flowengine-Signature).",
        {"WWW-Authenticate": {"description": "Bearer", "schema": _STRING}},
    ),
    "Forbidden": _error("The credentials' scope does not allow this route (read, execute, admin)."),
    "NotFound": _error("No such workflow, version, execution or webhook."),
    "Conflict": _error("The request conflicts with the current state (id taken, still running, ...)."),
    "PayloadTooLarge": _error("The body is larger than FLOWENGINE_MAX_BODY_BYTES."),
    "TooManyRequests": _error("Over the configured rate limit (FLOWENGINE_RATE_LIMIT).", _RETRY_AFTER),
    "ServiceUnavailable": _error(
        "The execution queue is full (FLOWENGINE_MAX_QUEUED_EXECUTIONS).", _RETRY_AFTER
    ),
    "InternalError": _error('A server fault: {"error": "internal error"}, never a stack trace.'),
}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _use(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


_LOCATION = {"Location": {"description": "where the new resource is", "required": True, "schema": _STRING}}

def _guard_responses(route: Route) -> dict[str, Any]:
    """What authentication and the rate limiter can answer on this route: nothing on an open
    one, 401 and 403 on the others, and 429 where the rate limit applies."""
    if route.scope is None:
        return {}
    guarded = {"401": _use("Unauthorized"), "403": _use("Forbidden")}
    if route.rate_limited:
        guarded["429"] = _use("TooManyRequests")
    return guarded


def _operation(
    route: Route,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: Schema | None = None,
    body_required: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation: its identity and guard answers from the route, the generic 500 unless
    ``responses`` gives another."""
    merged = {**responses, **_guard_responses(route)}
    merged.setdefault("500", _use("InternalError"))
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": dict(sorted(merged.items())),
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    # Authentication is optional until configured ({}); then a credential of this scope, or a
    # more powerful one, is needed. OpenAPI 3.1 lets an http scheme name such roles.
    operation["security"] = [] if route.scope is None else [{}, {"bearerAuth": [route.scope]}]
    return operation


def _path_id(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "description": f"the {what}'s id", "schema": _STRING}


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


# The answers of anything that runs a workflow: execute, retry, webhooks.
_RUN_RESPONSES = {
    "200": _json(_ref("ExecutionResult"), "The execution finished (succeeded, completed_with_errors or cancelled)."),
    "202": _json(
        _ref("ExecutionAccepted"),
        "?wait=false: the execution runs in the background (running), or waits for a free slot"
        " (queued: on PostgreSQL in the run queue, for any process).",
        _LOCATION,
    ),
    "400": _use("BadRequest"),
    "404": _use("NotFound"),
    "413": _use("PayloadTooLarge"),
    "500": _json(_ref("ExecutionFailure"), "The execution failed: a documented outcome, not a server fault."),
    "503": _use("ServiceUnavailable"),
}

_WEBHOOK_PARAMETERS = [
    {
        "name": "path",
        "in": "path",
        "required": True,
        "description": "a Webhook trigger's path (it may contain /)",
        "schema": _STRING,
    },
    {
        "name": "X-Flowengine-Signature",
        "in": "header",
        "required": False,
        "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>"> (or'
        ' sha256=<hex of the body> on triggers with "signature": "body-sha256")',
        "schema": _STRING,
    },
    {
        "name": "X-Hub-Signature-256",
        "in": "header",
        "required": False,
        "description": 'sha256=<hex HMAC-SHA256 of the raw body>, for triggers with "signature": "github"',
        "schema": _STRING,
    },
    {
        "name": "X-GitHub-Delivery",
        "in": "header",
        "required": False,
        "description": "GitHub's delivery id (required with \"signature\": \"github\"); accepted once",
        "schema": _STRING,
    },
    {
        "name": "X-GitHub-Event",
        "in": "header",
        "required": False,
        "description": "GitHub's event name, the input github_event",
        "schema": _STRING,
    },
]


def _descriptions(find: Find) -> dict[str, dict[str, Any]]:
    """What each operation takes and answers, by operation id: ``_operation``'s arguments, and
    ``path_parameters`` for the parameters of its path (the same for every operation there)."""
    workflow_id = [_path_id("workflow")]
    execution_id = [_path_id("execution")]
    wait = _query(
        "wait",
        {"type": "boolean", "default": True},
        f"false: answer 202 at once and run in the background (follow it on {find('events').template} or"
        f" {_spelled(find('getExecution'))}); true, 1, yes, false, 0 and no are accepted, in any case",
    )
    return {
        "dashboard": {
            "responses": {
                "200": {"description": "The dashboard's page.", "content": {"text/html": {"schema": _STRING}}},
                "304": {"description": "If-None-Match named the current ETag."},
                "404": _use("NotFound"),
            },
            "description": "Open and exempt from rate limits (code, no data; the data comes from this API"
            " with the user's credentials). Strong ETag, Cache-Control: no-cache, gzip when asked, a strict"
            " Content-Security-Policy. 404 when FLOWENGINE_DASHBOARD=0.",
        },
        "dashboardFile": {
            "responses": {
                "200": {
                    "description": "The file (CSS or a JavaScript module).",
                    "content": {"text/css": {"schema": _STRING}, "text/javascript": {"schema": _STRING}},
                },
                "304": {"description": "If-None-Match named the current ETag."},
                "404": _use("NotFound"),
            },
            "path_parameters": [
                {"name": "name", "in": "path", "required": True, "description": "a file of the dashboard (a fixed list)", "schema": _STRING}
            ],
            "description": f"As {_spelled(find('dashboard'))}: open, not rate limited; 404 for any other name.",
        },
        "health": {"responses": {"200": _json(_ref("Health"), "The server is up.")}},
        "metrics": {
            "responses": {
                "200": {
                    "description": "Counters, gauges and histograms; exempt from rate limiting.",
                    "content": {"text/plain": {"schema": _STRING}},
                }
            },
        },
        "openapi": {"responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")}},
        "openapiUpstreamPath": {
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
            "description": f"The same document as {_spelled(find('openapi'))}, at the path the upstream"
            " server serves it on.",
        },
        "getSession": {
            "responses": {"200": _json(_ref("Session"), "The caller's identity and scopes.")},
            "description": "Open to any credentials (read scope); with authentication off it answers"
            " authenticated false and every scope.",
        },
        "listWorkflows": {
            "responses": {
                "200": _json({"type": "array", "items": _ref("WorkflowSummary")}, "Every workflow, summarised.")
            },
        },
        "createWorkflow": {
            "responses": {
                "201": _json(_ref("WorkflowRegistered"), "Registered: created, updated or unchanged.", _LOCATION),
                "400": _use("BadRequest"),
                "409": _use("Conflict"),
                "412": _error("If-None-Match: * was sent and the id is already taken."),
                "413": _use("PayloadTooLarge"),
            },
            "parameters": [
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "* makes the request create-only: 412 if the id is taken. No other"
                    " value is accepted (400).",
                    "schema": {"type": "string", "enum": ["*"]},
                }
            ],
            "body": _ref("WorkflowInput"),
            "body_required": True,
            "description": "A new id is created as version 1. A taken id is replaced, as"
            f" {_spelled(find('replaceWorkflow'))} does (the document is stored as the next version, and"
            " a stored workflow that no longer loads is replaced too); when the document is the current"
            " version's, nothing is stored. Executions keep the version they started with. 409: a"
            " webhook path another workflow uses.",
        },
        "getWorkflow": {
            "path_parameters": workflow_id,
            "responses": {
                "200": _json(_ref("Workflow"), "The workflow document."),
                "400": _use("BadRequest"),
                "404": _use("NotFound"),
            },
            "parameters": [
                _query(
                    "version",
                    {"type": "integer", "minimum": 1, "maximum": MAX_QUERY_INT},
                    "a version kept in the history",
                )
            ],
        },
        "replaceWorkflow": {
            "path_parameters": workflow_id,
            "responses": {
                "200": _json(_ref("WorkflowUpdated"), "Replaced."),
                "400": _use("BadRequest"),
                "404": _use("NotFound"),
                "409": _use("Conflict"),
                "413": _use("PayloadTooLarge"),
            },
            "body": _ref("WorkflowReplacement"),
            "body_required": True,
        },
        "deleteWorkflow": {
            "path_parameters": workflow_id,
            "responses": {"200": _json(_ref("Message"), "Deleted."), "404": _use("NotFound")},
        },
        "executeWorkflow": {
            "path_parameters": workflow_id,
            "responses": _RUN_RESPONSES,
            "parameters": [wait],
            "body": _ref("ExecuteRequest"),
            "description": "The body may be empty. A failed execution is answered 500 with its body.",
        },
        "listWorkflowVersions": {
            "path_parameters": workflow_id,
            "responses": {
                "200": _json({"type": "array", "items": _ref("WorkflowVersion")}, "Oldest first."),
                "404": _use("NotFound"),
            },
        },
        "listExecutions": {
            "responses": {"200": _json(_ref("ExecutionPage"), "One page."), "400": _use("BadRequest")},
            "parameters": [
                _query("workflow_id", _STRING, "only this workflow's executions"),
                _query(
                    "status",
                    {"type": "string", "enum": [*EXECUTION_STATUSES, ""]},
                    "only executions in this status (empty: any status)",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_QUERY_INT, "default": DEFAULT_PAGE},
                    f"page size; pages hold at most {MAX_PAGE} executions, so a larger limit gives {MAX_PAGE}",
                ),
                _query(
                    "before",
                    {"type": "integer", "minimum": 1, "maximum": MAX_QUERY_INT},
                    "the cursor from the previous page's next",
                ),
                _query("since", _DATE_TIME, "only executions started at or after this time (RFC 3339)"),
                _query("until", _DATE_TIME, "only executions started before this time (RFC 3339)"),
                _query(
                    "trigger",
                    {"type": "string", "enum": [*EXECUTION_TRIGGER_TYPES, ""]},
                    "only executions started by this trigger type (the record's trigger.type; empty: any)",
                ),
                _query("error", _STRING, "only executions whose error contains this text, in any case (empty: any)"),
            ],
            "description": "Filters combine; total counts the executions they match on all pages.",
        },
        "getExecution": {
            "path_parameters": execution_id,
            "responses": {"200": _json(_ref("Execution"), "The execution."), "404": _use("NotFound")},
        },
        "deleteExecution": {
            "path_parameters": execution_id,
            "responses": {"200": _json(_ref("Message"), "Deleted."), "404": _use("NotFound"), "409": _use("Conflict")},
        },
        "getExecutionEvents": {
            "path_parameters": execution_id,
            "responses": {
                "200": _json(
                    {"type": "array", "items": _ref("Event")},
                    "The events, in seq order.",
                    {
                        "Link": {
                            "description": '<...?after_seq=N&...>; rel="next" when limit cut the page: the'
                            " next page, with the same filters",
                            "schema": _STRING,
                        }
                    },
                ),
                "400": _use("BadRequest"),
                "404": _use("NotFound"),
            },
            "parameters": [
                _query(
                    "after_seq",
                    {"type": "integer", "minimum": 0, "maximum": MAX_QUERY_INT},
                    "only events with a greater seq",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE},
                    "at most this many events; a cut page has a Link header to the next",
                ),
                _query("types", _EVENT_TYPES, f"comma-separated event types ({', '.join(EVENT_TYPES)})"),
                _query("node_id", _STRING, "only this node's events"),
            ],
        },
        "cancelExecution": {
            "path_parameters": execution_id,
            "responses": {
                "200": _json(_ref("ExecutionCancelled"), "Stopped; status is what it ended as."),
                "202": _json(
                    _ref("ExecutionCancelled"),
                    "PostgreSQL: the process running it was asked to stop it and has not recorded it yet.",
                ),
                "404": _use("NotFound"),
                "409": _use("Conflict"),
            },
        },
        "retryExecution": {
            "path_parameters": execution_id,
            "responses": {**_RUN_RESPONSES, "409": _use("Conflict")},
            "parameters": [wait],
            "body": _ref("RetryRequest"),
            "description": "On the workflow's current version; the body may be empty. 409 while it"
            " still runs or when its workflow is gone.",
        },
        "listNodeTypes": {
            "responses": {
                "200": _json({"type": "array", "items": _ref("NodeTypeDescription")}, "Every node type.")
            },
        },
        "listTriggers": {
            "responses": {"200": _json({"type": "array", "items": _ref("TriggerDescription")}, "The triggers.")},
        },
        "getWebhook": {
            "path_parameters": _WEBHOOK_PARAMETERS,
            "responses": {**_RUN_RESPONSES, "409": _use("Conflict")},
            "parameters": [wait],
        },
        "postWebhook": {
            "path_parameters": _WEBHOOK_PARAMETERS,
            "responses": {**_RUN_RESPONSES, "409": _use("Conflict")},
            "parameters": [wait],
            "body": {"type": "object", "description": "its fields become the execution's inputs"},
        },
        "events": {
            "responses": {
                "101": {
                    "description": "Switched to a WebSocket: each text frame is one Event as JSON (with"
                    " batch=true, a JSON array of the Events of one flush). A"
                    " listener that falls FLOWENGINE_WS_QUEUE events behind is closed with 1013;"
                    " on shutdown every listener gets 1001."
                },
                "400": _use("BadRequest"),
            },
            "parameters": [
                _query("execution_id", _STRING, "only this execution's events"),
                _query("workflow_id", _STRING, "only this workflow's events"),
                _query("types", _EVENT_TYPES, f"comma-separated event types ({', '.join(EVENT_TYPES)})"),
                _query(
                    "replay",
                    {"type": "boolean", "default": False},
                    "with execution_id: the execution's recorded events first, then its live ones",
                ),
                _query(
                    "batch",
                    {"type": "boolean", "default": False},
                    "true: each text frame is a JSON array of the events of one flush (one event-loop"
                    " iteration) instead of one event",
                ),
                _query("token", _STRING, "credentials for clients that cannot send an Authorization header"),
            ],
            "description": "Connect with a WebSocket client (e.g. wscat -c"
            f" ws://localhost:3000{find('events').template}). A plain HTTP request, or an unknown event"
            " type in types, is answered 400.",
        },
    }


def _spelled(route: Route) -> str:
    return f"{route.method} {route.template}"


def _finder(routes: tuple[Route, ...]) -> Find:
    by_id = {route.operation_id: route for route in routes}
    return by_id.__getitem__


def _paths(routes: tuple[Route, ...]) -> dict[str, dict[str, Any]]:
    """One path item per template, one operation per route, in the table's order."""
    descriptions = _descriptions(_finder(routes))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.operation_id not in descriptions:
            raise LookupError(f"{_spelled(route)}: operation {route.operation_id!r} has no OpenAPI description")
        description = dict(descriptions[route.operation_id])
        shared = description.pop("path_parameters", None)
        item = paths.setdefault(route.template, {} if shared is None else {"parameters": shared})
        if item.get("parameters") != shared:
            raise ValueError(f"{_spelled(route)}: its path parameters differ from the other operations on its path")
        item[route.method.lower()] = _operation(route, **description)
    return paths


@lru_cache(maxsize=1)
def _document_text(routes: tuple[Route, ...]) -> str:
    return json.dumps(_build(routes), separators=(",", ":"))


def _build(routes: tuple[Route, ...]) -> dict[str, Any]:
    find = _finder(routes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flowengine",
            "version": __version__,
            "summary": "A small, fast workflow engine server: DAGs of typed nodes behind REST and WebSocket.",
            "description": "Errors are always JSON {\"error\": \"...\"}. Any other path is answered 404, and a"
            " method a path does not list 405 with an Allow header (both as {\"error\": ...}); a method"
            " the server does not recognise is 501. On any route, a request the HTTP parser refuses is"
            " answered as JSON too: 400 (malformed), 408 (head not sent within FLOWENGINE_HEAD_TIMEOUT),"
            " 414 (request line too long), 431 (headers too large or too many), 413 (a declared"
            " Content-Length over FLOWENGINE_MAX_BODY_BYTES). CORS preflight (OPTIONS) is answered for"
            " every route. Authentication is off unless FLOWENGINE_API_KEYS or FLOWENGINE_JWT_SECRET"
            " is set.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/", "description": "this server"}],
        "tags": [{"name": name} for name in dict.fromkeys(route.tag for route in routes)],
        "security": [{}, {"bearerAuth": []}],
        "paths": _paths(routes),
        "components": {
            "schemas": _schemas(find),
            "responses": RESPONSES,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from FLOWENGINE_API_KEYS, or an HS256 JWT signed with"
                    " FLOWENGINE_JWT_SECRET whose scope claim is read, execute or admin.",
                }
            },
        },
    }


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a route table (flowengine.server.routes.ROUTES for the
    server) as a fresh dict: callers may change their copy."""
    return json.loads(_document_text(routes))


def document_response(routes: tuple[Route, ...]) -> web.Response:
    """``GET /openapi.json``'s answer. The text is built once per table and served as is."""
    return web.Response(text=_document_text(routes), content_type="application/json")
