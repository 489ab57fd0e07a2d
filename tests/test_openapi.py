"""GET /openapi.json: the document matches the router and the route table, takes its enums
and limits from the code (and the validator agrees with them), is well formed, and the
server's real answers fit the schemas it documents for them."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from support.api import link, node, register

from flowengine.core.engine import EXECUTION_STATUSES, NODE_STATUSES
from flowengine.core.events import EVENT_TYPES
from flowengine.core.model import MAX_ATTEMPTS, MAX_BACKOFF_MULTIPLIER, ON_ERROR_POLICIES, TRIGGER_TYPES
from flowengine.lib.ratelimit import RateLimit
from flowengine.lib.signatures import SCHEMES
from flowengine.nodes.api import MAX_DURATION_MS
from flowengine.server import openapi
from flowengine.server.app import make_app
from flowengine.server.keys import CATALOG
from flowengine.server.routes import ROUTES
from flowengine.values import CONFIG_ONLY_TAGS, TAGS

AUTO_METHODS = {"HEAD", "OPTIONS"}  # aiohttp adds HEAD to every GET; CORS answers OPTIONS
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _document() -> dict[str, Any]:
    return openapi.openapi_document(ROUTES)


@pytest.fixture
async def api(aiohttp_client, config):
    return await aiohttp_client(make_app(config))


def _router_operations(app: Any) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        if route.method in AUTO_METHODS:
            continue
        template = route.resource.canonical
        # aiohttp spells a parameter with a regex {path:.+}; OpenAPI just {path}.
        template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", template)
        operations.add((route.method, template))
    return operations


def _document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_document_and_router_list_the_same_operations(config):
    app = make_app(config)
    routed = _router_operations(app)
    documented = _document_operations(_document())
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations the router does not serve"
    assert documented == {(route.method, route.template) for route in ROUTES}
    assert ("GET", "/openapi.json") in routed and ("GET", "/metrics") in routed


def test_drift_is_detected(config):
    """The comparison itself can fail: a route added outside the table shows up."""
    app = make_app(config)
    app.router.add_patch("/api/workflows/{id}", ROUTES[0].handler)
    assert _router_operations(app) - _document_operations(_document()) == {("PATCH", "/api/workflows/{id}")}


def test_operations_carry_the_table_s_identity_and_scope():
    """Operation ids, summaries, tags, security and guard answers are the route table's."""
    document = _document()
    for route in ROUTES:
        operation = document["paths"][route.template][route.method.lower()]
        where = f"{route.method} {route.template}"
        assert (operation["operationId"], operation["summary"], operation["tags"]) == (
            route.operation_id,
            route.summary,
            [route.tag],
        ), where
        responses = set(operation["responses"])
        if route.scope is None:
            assert operation["security"] == [] and not {"401", "403", "429"} & responses, where
        else:
            assert operation["security"] == [{}, {"bearerAuth": [route.scope]}], where
            assert {"401", "403"} <= responses, where
            assert ("429" in responses) == route.rate_limited, where
    assert [tag["name"] for tag in document["tags"]] == list(dict.fromkeys(route.tag for route in ROUTES))


def test_a_route_without_a_description_is_refused():
    """A route added to the table must get its parameters and answers described."""
    route = dataclasses.replace(ROUTES[0], operation_id="undescribed")
    with pytest.raises(LookupError, match="undescribed"):
        openapi.openapi_document((*ROUTES, route))


def _pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(target, dict) and part in target, f"unresolvable $ref {ref}"
        target = target[part]
    return target


def _refs(item: Any) -> list[str]:
    found = []
    stack = [item]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get("$ref"), str):
                found.append(current["$ref"])
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return found


def test_document_structure():
    document = _document()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "flowengine" and document["info"]["version"]
    assert document["security"] == [{}, {"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    refs = _refs(document)
    assert refs, "the document uses components"
    for ref in refs:
        _pointer(document, ref)
    operation_ids = []
    for path, item in document["paths"].items():
        declared_at_path = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            operation_ids.append(operation["operationId"])
            assert operation["responses"], where
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status), (where, status)
                response = _pointer(document, response["$ref"]) if "$ref" in response else response
                assert response["description"], (where, status)
            # Every {name} in the template is a declared path parameter, and nothing else is.
            declared = declared_at_path | {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), where
    assert len(operation_ids) == len(set(operation_ids)), "operationIds are unique"


def test_errors_are_documented_as_error_objects():
    """4xx answers are {"error": ...}; the only 5xx with another body is a failed execution."""
    document = _document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                response = _pointer(document, response["$ref"]) if "$ref" in response else response
                schema = response["content"]["application/json"]["schema"]
                expected = "#/components/schemas/Error"
                if status == "500" and path in (
                    "/api/workflows/{id}/execute",
                    "/api/executions/{id}/retry",
                    "/api/hooks/{path}",
                ):
                    expected = "#/components/schemas/ExecutionFailure"
                assert schema == {"$ref": expected}, (method, path, status)


def test_only_health_and_the_dashboard_files_are_open():
    document = _document()
    open_operations = [
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and operation["security"] == []
    ]
    assert open_operations == [("get", "/"), ("get", "/ui/{name}"), ("get", "/health")]
    for path in ("/api/workflows/{id}/execute", "/api/executions/{id}/retry", "/api/hooks/{path}"):
        assert "503" in document["paths"][path]["post"]["responses"], path


async def test_served_document_is_the_built_one(api):
    response = await api.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == _document()


# -- the server's answers against the documented schemas ------------------------------------
#
# A small JSON Schema checker for the keywords the document uses, so that the everyday test
# run (not only `make fuzz`) notices when a body stops matching what is documented.


def _check(document: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> list[str]:
    if "$ref" in schema:
        return _check(document, _pointer(document, schema["$ref"]), value, where)
    problems: list[str] = []
    kinds = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if "type" in schema and not kinds[schema["type"]](value):
        return [f"{where}: expected {schema['type']}, got {value!r}"]
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        problems.append(f"{where}: {value!r} < {schema['minimum']}")
    for part in schema.get("allOf", []):
        problems += _check(document, part, value, where)
    for keyword, wanted in (("anyOf", None), ("oneOf", 1)):
        if keyword in schema:
            matched = sum(not _check(document, part, value, where) for part in schema[keyword])
            if matched == 0 or (wanted is not None and matched != wanted):
                problems.append(f"{where}: {value!r} matches {matched} of {keyword}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing {name!r}")
        for name, item in value.items():
            if name in schema.get("properties", {}):
                problems += _check(document, schema["properties"][name], item, f"{where}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += _check(document, schema["additionalProperties"], item, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected {name!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += _check(document, schema["items"], item, f"{where}[{index}]")
    return problems


def test_checker_can_fail():
    document = _document()
    error = {"$ref": "#/components/schemas/Error"}
    assert _check(document, error, {"error": "x"}, "$") == []
    assert _check(document, error, {"message": "x"}, "$") == ["$: missing 'error'"]
    result = {"$ref": "#/components/schemas/ExecutionFailure"}
    assert _check(document, result, {"error": "internal error"}, "$")


async def _conforms(api, method: str, url: str, template: str, expect: int, **kwargs: Any) -> Any:
    """Send the request, check the status is documented for the operation and the body fits."""
    document = _document()
    response = await api.request(method, url, **kwargs)
    body = await response.json() if response.content_type == "application/json" else await response.text()
    assert response.status == expect, body
    responses = document["paths"][template][method.lower()]["responses"]
    assert str(response.status) in responses, f"{method} {template} answered an undocumented {response.status}"
    documented = responses[str(response.status)]
    documented = _pointer(document, documented["$ref"]) if "$ref" in documented else documented
    assert response.content_type in documented["content"], response.content_type
    schema = documented["content"][response.content_type]["schema"]
    assert _check(document, schema, body, "$") == [], body
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, f"{method} {template} {response.status}: no {name} header"
    return body


def _echo_workflow(workflow_id: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": "Echo",
        "nodes": [node("say", "transform.template", template="hi {name}"), node("log", "debug.log")],
        "connections": [link("say", "text", "log", "message")],
        "triggers": [
            {"trigger_type": {"type": "Webhook", "path": "echo"}},
            {"trigger_type": {"type": "Cron", "expression": "0 0 1 1 *"}},
        ],
    }


async def test_workflow_answers_fit_the_document(api):
    w = "/api/workflows"
    await _conforms(api, "GET", "/health", "/health", 200)
    await _conforms(api, "POST", w, w, 201, json=_echo_workflow("echo"))
    await _conforms(api, "POST", w, w, 412, json=_echo_workflow("echo"), headers={"If-None-Match": "*"})
    await _conforms(api, "POST", w, w, 400, json={"name": ""})
    await _conforms(api, "POST", w, w, 400, data=b"[1")
    await _conforms(api, "GET", w, w, 200)
    await _conforms(api, "GET", f"{w}/echo", f"{w}/{{id}}", 200)
    await _conforms(api, "PUT", f"{w}/echo", f"{w}/{{id}}", 200, json={**_echo_workflow("echo"), "description": "v2"})
    await _conforms(api, "GET", f"{w}/echo?version=1", f"{w}/{{id}}", 200)
    await _conforms(api, "GET", f"{w}/echo?version=x", f"{w}/{{id}}", 400)
    await _conforms(api, "GET", f"{w}/echo?version=9", f"{w}/{{id}}", 404)
    await _conforms(api, "GET", f"{w}/echo/versions", f"{w}/{{id}}/versions", 200)
    await _conforms(api, "GET", f"{w}/nope/versions", f"{w}/{{id}}/versions", 404)
    await _conforms(api, "PUT", f"{w}/nope", f"{w}/{{id}}", 404, json={"name": "x"})
    await _conforms(api, "GET", "/api/nodes", "/api/nodes", 200)
    triggers = await _conforms(api, "GET", "/api/triggers", "/api/triggers", 200)
    assert {entry["type"] for entry in triggers} == {"Webhook", "Cron"}
    await _conforms(api, "DELETE", f"{w}/echo", f"{w}/{{id}}", 200)
    await _conforms(api, "DELETE", f"{w}/echo", f"{w}/{{id}}", 404)
    await _conforms(api, "GET", f"{w}/echo", f"{w}/{{id}}", 404)


async def test_execution_answers_fit_the_document(api):
    await register(api, _echo_workflow("echo"))
    failing = {
        "id": "broken",
        "name": "Broken",
        "nodes": [node("parse", "transform.json_parse", json="{not json")],
    }
    await register(api, failing)
    slow = {"id": "slow", "name": "Slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
    await register(api, slow)
    execute = "/api/workflows/{id}/execute"

    done = await _conforms(api, "POST", "/api/workflows/echo/execute", execute, 200, json={"inputs": {"name": "Ada"}})
    failed = await _conforms(api, "POST", "/api/workflows/broken/execute", execute, 500)
    assert failed["status"] == "failed" and failed["error"]
    await _conforms(api, "POST", "/api/workflows/echo/execute?wait=maybe", execute, 400)
    await _conforms(api, "POST", "/api/workflows/echo/execute", execute, 400, json={"inputs": [1]})
    await _conforms(api, "POST", "/api/workflows/nope/execute", execute, 404)
    accepted = await _conforms(api, "POST", "/api/workflows/slow/execute?wait=false", execute, 202)

    one = "/api/executions/{id}"
    running = accepted["execution_id"]
    await _conforms(api, "GET", f"/api/executions/{running}", one, 200)
    await _conforms(api, "DELETE", f"/api/executions/{running}", one, 409)
    await _conforms(api, "POST", f"/api/executions/{running}/retry", f"{one}/retry", 409)
    await _conforms(api, "POST", f"/api/executions/{running}/cancel", f"{one}/cancel", 200)
    await _conforms(api, "POST", f"/api/executions/{running}/cancel", f"{one}/cancel", 409)
    await _conforms(api, "POST", "/api/executions/nope/cancel", f"{one}/cancel", 404)

    finished = done["execution_id"]
    record = await _conforms(api, "GET", f"/api/executions/{finished}", one, 200)
    assert record["nodes"] and record["inputs"]
    events = await _conforms(api, "GET", f"/api/executions/{finished}/events", f"{one}/events", 200)
    assert events[0]["type"] == "WorkflowStarted"
    await _conforms(api, "GET", "/api/executions/nope/events", f"{one}/events", 404)
    await _conforms(api, "GET", "/api/executions/nope", one, 404)
    again = f"/api/executions/{failed['execution_id']}/retry"
    retried = await _conforms(api, "POST", again, f"{one}/retry", 500, json={"from_failure": True})
    assert retried["status"] == "failed"
    await _conforms(api, "POST", f"/api/executions/{finished}/retry", f"{one}/retry", 400, json={"from_failure": 1})
    await _conforms(api, "POST", f"/api/executions/{finished}/retry?wait=false", f"{one}/retry", 202)

    page = await _conforms(api, "GET", "/api/executions?limit=2", "/api/executions", 200)
    assert len(page["executions"]) == 2 and page["next"] is not None
    await _conforms(api, "GET", f"/api/executions?before={page['next']}&status=failed", "/api/executions", 200)
    await _conforms(api, "GET", "/api/executions?status=odd", "/api/executions", 400)
    await _conforms(api, "DELETE", f"/api/executions/{finished}", one, 200)


async def test_webhook_and_event_stream_answers_fit_the_document(api):
    await register(api, _echo_workflow("echo"))
    hook = "/api/hooks/{path}"
    await _conforms(api, "POST", "/api/hooks/echo", hook, 200, json={"name": "Ada"})
    await _conforms(api, "GET", "/api/hooks/echo?name=Ada", hook, 200)
    await _conforms(api, "POST", "/api/hooks/echo", hook, 400, data=b"[1]")
    await _conforms(api, "POST", "/api/hooks/nowhere/deep", hook, 404)
    await _conforms(api, "GET", "/api/events", "/api/events", 400)
    await _conforms(api, "GET", "/api/events?types=Nope", "/api/events", 400)
    async with api.ws_connect("/api/events") as ws:
        assert ws.protocol is None and not ws.closed  # the documented 101 switch happened


async def test_metrics_answer_fits_the_document(api):
    text = await _conforms(api, "GET", "/metrics", "/metrics", 200)
    assert "# TYPE" in text


async def test_guard_answers_fit_the_document(aiohttp_client, config):
    """With authentication, rate and load limits on, 401/403/429/503 are the documented ones."""
    guarded = dataclasses.replace(
        config,
        api_keys={"reader": "read", "runner": "execute"},
        rate_limit=RateLimit(rate_per_s=0.001, burst=8),
        max_concurrent_executions=1,
        max_queued_executions=0,
    )
    api = await aiohttp_client(make_app(guarded))
    w = "/api/workflows"
    reader = {"Authorization": "Bearer reader"}
    runner = {"Authorization": "Bearer runner"}
    await _conforms(api, "GET", "/health", "/health", 200)
    await _conforms(api, "GET", w, w, 401)
    await _conforms(api, "GET", "/openapi.json", "/openapi.json", 401)
    await _conforms(api, "GET", "/metrics", "/metrics", 401)
    await _conforms(api, "POST", w, w, 403, json={"name": "x"}, headers=reader)
    # Registered straight in the catalog: creating needs the admin scope, not under test here.
    slow = {"id": "slow", "name": "Slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
    catalog = api.app[CATALOG]
    await catalog.register(catalog.parse(slow), create_only=True)
    execute = "/api/workflows/{id}/execute"
    await _conforms(api, "POST", "/api/workflows/slow/execute?wait=false", execute, 202, headers=runner)
    await _conforms(api, "POST", "/api/workflows/slow/execute?wait=false", execute, 503, headers=runner)
    for _ in range(10):
        response = await api.get(w, headers=reader)
        if response.status == 429:
            break
    await _conforms(api, "GET", w, w, 429, headers=reader)


def _schema(name: str) -> dict[str, Any]:
    return _document()["components"]["schemas"][name]


async def test_null_optional_fields_are_accepted_and_documented_as_nullable(api):
    """The README says null means "not set"; server and document agree on it."""
    document = {
        "id": None,
        "name": "all nulls",
        "description": None,
        "nodes": [
            {"id": "log", "node_type": "debug.log", "name": None, "config": None, "position": None, "retry_policy": {"max_attempts": None}, "timeout_ms": None}
        ],
        "connections": None,
        "triggers": [{"id": None, "enabled": None, "trigger_type": {"type": "Event", "event_type": "WorkflowCompleted", "workflow_id": None}}],
        "settings": {"max_execution_time_ms": None, "max_parallel_nodes": None, "on_error": None},
    }
    assert _check(_document(), {"$ref": "#/components/schemas/WorkflowInput"}, document, "$") == []
    response = await api.post("/api/workflows", json=document)
    assert response.status == 201, await response.text()


async def test_empty_trigger_id_is_refused_as_documented(api):
    assert _schema("Trigger")["properties"]["id"]["anyOf"][0]["minLength"] == 1
    document = {"name": "t", "triggers": [{"id": "", "trigger_type": {"type": "Manual"}}]}
    response = await api.post("/api/workflows", json=document)
    assert response.status == 400 and "triggers[0].id" in (await response.json())["error"]


async def test_limit_range_agrees_with_the_document(api):
    parameters = _document()["paths"]["/api/executions"]["get"]["parameters"]
    limit = next(parameter for parameter in parameters if parameter["name"] == "limit")
    assert limit["schema"]["maximum"] == 2**63 - 1 and "500" in limit["description"]
    assert (await api.get(f"/api/executions?limit={2**63 - 1}")).status == 200
    assert (await api.get(f"/api/executions?limit={2**63}")).status == 400
    empty = await api.get("/api/executions?limit=")
    assert empty.status == 400 and (await empty.json())["error"] == "limit: expected a whole number from 1 to 9223372036854775807, got ''"


async def test_put_body_leaves_the_id_to_the_url(api):
    replacement = _schema("WorkflowReplacement")
    assert "id" not in replacement["properties"] and replacement["not"] == {"required": ["id"]}
    put = _document()["paths"]["/api/workflows/{id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/WorkflowReplacement"}
    await register(api, {"id": "named", "name": "n"})
    assert (await api.put("/api/workflows/named", json={"name": "no id"})).status == 200
    assert (await api.put("/api/workflows/named", json={"id": "named", "name": "same id"})).status == 200
    assert (await api.put("/api/workflows/named", json={"id": "other", "name": "other id"})).status == 400


# -- enums and limits come from the code ---------------------------------------------------


def _enum(schema: dict[str, Any]) -> list[Any]:
    """The enum of a schema, looking through the optional (``anyOf`` with null) wrapper."""
    if "anyOf" in schema:
        (schema,) = [part for part in schema["anyOf"] if part != {"type": "null"}]
    return schema["enum"]


def _parameter(path: str, method: str, name: str) -> dict[str, Any]:
    operation = _document()["paths"][path][method]
    return next(parameter for parameter in operation["parameters"] if parameter["name"] == name)


def test_enums_are_the_code_s():
    assert set(_enum(_schema("TypedValue")["properties"]["type"])) == TAGS | CONFIG_ONLY_TAGS
    trigger_types = _schema("TriggerType")["oneOf"]
    assert [choice["properties"]["type"]["const"] for choice in trigger_types] == list(TRIGGER_TYPES)
    assert _enum(_schema("TriggerDescription")["properties"]["type"]) == list(TRIGGER_TYPES)
    webhook, event = trigger_types[TRIGGER_TYPES.index("Webhook")], trigger_types[TRIGGER_TYPES.index("Event")]
    assert _enum(webhook["properties"]["signature"]) == list(SCHEMES)
    assert _enum(event["properties"]["event_type"]) == list(EVENT_TYPES)
    assert _enum(_schema("Event")["properties"]["type"]) == list(EVENT_TYPES)
    plain, as_object = _schema("OnError")["oneOf"]
    assert [*plain["enum"], *as_object["required"]] == list(ON_ERROR_POLICIES)
    for name in ("ExecutionResult", "ExecutionCancelled", "ExecutionSummary"):
        assert _enum(_schema(name)["properties"]["status"]) == list(EXECUTION_STATUSES), name
    assert _enum(_schema("NodeRecord")["properties"]["status"]) == list(NODE_STATUSES)
    assert _enum(_parameter("/api/executions", "get", "status")["schema"]) == [*EXECUTION_STATUSES, ""]
    described = _parameter("/api/events", "get", "types")["description"]
    assert all(event_type in described for event_type in EVENT_TYPES)


def _maximum(schema: dict[str, Any]) -> Any:
    if "anyOf" in schema:
        (schema,) = [part for part in schema["anyOf"] if part != {"type": "null"}]
    return schema["maximum"]


def _with_node(**fields: Any) -> dict[str, Any]:
    return {"name": "limits", "nodes": [{"id": "log", "node_type": "debug.log", **fields}]}


def _with_settings(**settings: Any) -> dict[str, Any]:
    return {"name": "limits", "nodes": [{"id": "log", "node_type": "debug.log"}], "settings": settings}


# Each limit the validator enforces: where the document states it, the code's constant, and a
# workflow document holding a given value there.
LIMITS = [
    (("RetryPolicy", "max_attempts"), MAX_ATTEMPTS, lambda v: _with_node(retry_policy={"max_attempts": v})),
    (("RetryPolicy", "delay_ms"), MAX_DURATION_MS, lambda v: _with_node(retry_policy={"delay_ms": v})),
    (("RetryPolicy", "backoff_multiplier"), MAX_BACKOFF_MULTIPLIER, lambda v: _with_node(retry_policy={"backoff_multiplier": v})),
    (("RetryPolicy", "max_delay_ms"), MAX_DURATION_MS, lambda v: _with_node(retry_policy={"max_delay_ms": v})),
    (("Node", "timeout_ms"), MAX_DURATION_MS, lambda v: _with_node(timeout_ms=v)),
    (("Settings", "max_execution_time_ms"), MAX_DURATION_MS, lambda v: _with_settings(max_execution_time_ms=v)),
    (
        ("OnError", "RetryWorkflow.max_attempts"),
        MAX_ATTEMPTS,
        lambda v: _with_settings(on_error={"RetryWorkflow": {"max_attempts": v}}),
    ),
]


def _documented_maximum(schema_name: str, field: str) -> Any:
    if schema_name == "OnError":
        retry = _schema("OnError")["oneOf"][1]["properties"]["RetryWorkflow"]
        return _maximum(retry["properties"]["max_attempts"])
    return _maximum(_schema(schema_name)["properties"][field])


@pytest.mark.parametrize(("where", "constant", "build"), LIMITS, ids=[".".join(where) for where, _, _ in LIMITS])
async def test_documented_maximum_is_the_one_the_server_enforces(api, where, constant, build):
    maximum = _documented_maximum(*where)
    assert maximum == constant
    at_limit = await api.post("/api/workflows", json=build(maximum))
    assert at_limit.status == 201, await at_limit.text()
    over = await api.post("/api/workflows", json=build(maximum + 1))
    assert over.status == 400
    assert f"must be at most {constant}" in (await over.json())["error"]


async def test_documented_id_pattern_is_the_one_the_server_enforces(api):
    pattern = re.compile(_schema("WorkflowInput")["properties"]["id"]["anyOf"][0]["pattern"])
    for workflow_id in ("a" * 128, "a" * 129, "x.y:z-1_2", "has space", "slash/ed", "ünï"):
        response = await api.post("/api/workflows", json={"id": workflow_id, "name": "n"})
        assert (response.status == 201) == bool(pattern.search(workflow_id)), (workflow_id, await response.text())
