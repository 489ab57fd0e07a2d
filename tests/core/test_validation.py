"""Registration rejects bad documents with a 400 whose message names the JSON path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from support.api import link, node


def base() -> dict[str, Any]:
    return {
        "id": "wf",
        "name": "Valid",
        "nodes": [node("a", "transform.set", greeting="hi"), node("b", "debug.log"), node("c", "debug.log")],
        "connections": [link("a", "greeting", "b", "message"), link("b", "message", "c", "message")],
    }


def edited(change) -> dict[str, Any]:
    document = copy.deepcopy(base())
    change(document)
    return document


def set_path(*path: Any, value: Any):
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def drop(key: str):
    return lambda document: document.pop(key)


def tagged(tag: str, value: Any) -> dict[str, Any]:
    return {"type": tag, "value": value}


CASES = [
    # name
    ("missing name", drop("name"), "name: is required"),
    ("null name", set_path("name", value=None), "name: is required"),
    ("empty name", set_path("name", value=""), "name: must not be empty"),
    ("blank name", set_path("name", value="   "), "name: must not be empty"),
    ("name not a string", set_path("name", value=7), "name: expected a string, got a number"),
    # wrong types anywhere
    ("id not a string", set_path("id", value=12), "id: expected a string, got a number"),
    ("bad id characters", set_path("id", value="a b/c"), "id: must match [A-Za-z0-9._:-]{1,128}, got 'a b/c'"),
    ("description not a string", set_path("description", value=["x"]), "description: expected a string, got an array"),
    ("nodes not an array", set_path("nodes", value={}), "nodes: expected an array, got an object"),
    ("node not an object", set_path("nodes", 1, value="b"), "nodes[1]: expected an object, got a string"),
    ("node without id", set_path("nodes", 1, "id", value=None), "nodes[1].id: is required"),
    ("node id empty", set_path("nodes", 1, "id", value=""), "nodes[1].id: must not be empty"),
    ("node id a number", set_path("nodes", 1, "id", value=3), "nodes[1].id: expected a string, got a number"),
    ("node without type", set_path("nodes", 1, "node_type", value=None), "nodes[1].node_type: is required"),
    ("config not an object", set_path("nodes", 1, "config", value=[]), "nodes[1].config: expected an object, got an array"),
    ("position not an object", set_path("nodes", 1, "position", value=5), "nodes[1].position: expected an object, got a number"),
    ("timeout_ms a string", set_path("nodes", 1, "timeout_ms", value="5s"), "nodes[1].timeout_ms: expected an integer, got a string"),
    ("timeout_ms zero", set_path("nodes", 1, "timeout_ms", value=0), "nodes[1].timeout_ms: must be at least 1, got 0"),
    ("retry_policy not an object", set_path("nodes", 1, "retry_policy", value=3), "nodes[1].retry_policy: expected an object, got a number"),
    ("retry attempts bool", set_path("nodes", 1, "retry_policy", value={"max_attempts": True}),
     "nodes[1].retry_policy.max_attempts: expected an integer, got a boolean"),
    ("retry attempts zero", set_path("nodes", 1, "retry_policy", value={"max_attempts": 0}),
     "nodes[1].retry_policy.max_attempts: must be at least 1, got 0"),
    ("retry_on_timeout a string", set_path("nodes", 1, "retry_policy", value={"retry_on_timeout": "yes"}),
     "nodes[1].retry_policy.retry_on_timeout: expected true or false, got a string"),
    ("connections not an array", set_path("connections", value="a->b"), "connections: expected an array, got a string"),
    ("connection not an object", set_path("connections", 0, value=[]), "connections[0]: expected an object, got an array"),
    ("connection missing a field", lambda d: d["connections"][1].pop("to_port"), "connections[1].to_port: is required"),
    ("connection field a number", set_path("connections", 0, "from_node", value=1),
     "connections[0].from_node: expected a string, got a number"),
    ("settings not an object", set_path("settings", value=[]), "settings: expected an object, got an array"),
    ("max_parallel_nodes a string", set_path("settings", value={"max_parallel_nodes": "10"}),
     "settings.max_parallel_nodes: expected an integer, got a string"),
    ("max_parallel_nodes a fraction", set_path("settings", value={"max_parallel_nodes": 2.5}),
     "settings.max_parallel_nodes: expected an integer, got 2.5"),
    ("max_execution_time_ms negative", set_path("settings", value={"max_execution_time_ms": -1}),
     "settings.max_execution_time_ms: must be at least 1, got -1"),
    ("triggers not an array", set_path("triggers", value={}), "triggers: expected an array, got an object"),
    ("trigger of unknown type", set_path("triggers", value=[{"id": "t", "trigger_type": {"type": "Telepathy"}}]),
     "triggers[0].trigger_type.type: unknown trigger type 'Telepathy'"),
    # the graph
    ("duplicate node ids", set_path("nodes", 2, "id", value="b"), "nodes[2].id: duplicate node id 'b'"),
    ("connection to a missing node", set_path("connections", 1, "to_node", value="x"), "connections[1].to_node: unknown node 'x'"),
    ("connection from a missing node", set_path("connections", 0, "from_node", value="ghost"),
     "connections[0].from_node: unknown node 'ghost'"),
    ("unknown output port", set_path("connections", 1, "from_port", value="nope"),
     "connections[1].from_port: node 'b' (debug.log) has no output port 'nope' (known: message)"),
    ("self loop", lambda d: d["connections"].append(link("c", "message", "c", "message")), "connections: cycle: c -> c"),
    # settings
    ("max_parallel_nodes zero", set_path("settings", value={"max_parallel_nodes": 0}),
     "settings.max_parallel_nodes: must be at least 1, got 0"),
    ("unknown on_error", set_path("settings", value={"on_error": "Panic"}),
     "settings.on_error: unknown policy 'Panic' (known: StopWorkflow, ContinueOnError, RetryWorkflow)"),
    ("unknown on_error object", set_path("settings", value={"on_error": {"Panic": {}}}),
     "settings.on_error: unknown policy 'Panic'"),
    ("on_error a number", set_path("settings", value={"on_error": 3}), "settings.on_error: expected"),
    ("RetryWorkflow without attempts", set_path("settings", value={"on_error": {"RetryWorkflow": {}}}),
     "settings.on_error.RetryWorkflow.max_attempts: is required"),
    # typed values
    ("unknown value tag", set_path("nodes", 0, "config", "greeting", value=tagged("Text", "hi")),
     "nodes[0].config.greeting: unknown value type 'Text'"),
    ("Number holding a string", set_path("nodes", 0, "config", "greeting", value=tagged("Number", "12")),
     "nodes[0].config.greeting.value: Number must hold a number, got a string"),
    ("Bytes not base64", set_path("nodes", 0, "config", "greeting", value=tagged("Bytes", "not base64!")),
     "nodes[0].config.greeting.value: Bytes must hold valid base64"),
    ("Bool holding a string", set_path("nodes", 0, "config", "greeting", value=tagged("Bool", "true")),
     "nodes[0].config.greeting.value: Bool must hold true or false"),
    ("Null holding a value", set_path("nodes", 0, "config", "greeting", value=tagged("Null", 1)),
     "nodes[0].config.greeting.value: Null holds no value"),
    ("Array holding an object", set_path("nodes", 0, "config", "greeting", value=tagged("Array", {})),
     "nodes[0].config.greeting.value: Array must hold a list, got an object"),
    ("bad value inside an Object", set_path("nodes", 0, "config", "greeting", value=tagged("Object", {"k": tagged("Number", "x")})),
     "nodes[0].config.greeting.value.k.value: Number must hold a number, got a string"),
    ("config of the wrong type", set_path("nodes", 1, value=node("b", "http.request", url="http://127.0.0.1/", method=3)),
     "nodes[1].config.method: node 'b' (http.request) expects String, got Number"),
    ("unknown config key", set_path("nodes", 1, value=node("b", "http.request", url="http://127.0.0.1/", colour="red")),
     "nodes[1].config.colour: node 'b' (http.request) has no config key 'colour'"),
]


@pytest.mark.parametrize("change, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
async def test_rejected_with_path(client, change, message):
    response = await client.post("/api/workflows", json=edited(change))
    body = await response.json()
    assert response.status == 400, body
    assert set(body) == {"error"}
    assert body["error"].startswith(message), body["error"]
    # Never a half-registered workflow.
    assert await (await client.get("/api/workflows")).json() == []


async def test_the_base_document_is_valid(client):
    """The cases above each break one thing in a document that is otherwise accepted."""
    response = await client.post("/api/workflows", json=base())
    assert response.status == 201, await response.text()


async def test_unknown_node_type_lists_the_known_ones(client):
    response = await client.post("/api/workflows", json=edited(set_path("nodes", 1, "node_type", value="http.fetch")))
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("nodes[1].node_type: unknown node type 'http.fetch' (known: ")
    known = error.split("(known: ", 1)[1].rstrip(")").split(", ")
    types = [item["type"] for item in await (await client.get("/api/nodes")).json()]
    assert known == types


async def test_cycle_message_shows_the_cycle(client):
    document = edited(lambda d: d["connections"].append(link("c", "message", "a", "greeting")))
    # transform.set has no input ports; use pass-through nodes for a three-node cycle instead.
    document["nodes"] = [node(name, "debug.log") for name in ("a", "b", "c")]
    document["connections"] = [
        link("a", "message", "b", "message"),
        link("b", "message", "c", "message"),
        link("c", "message", "a", "message"),
    ]
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert await response.json() == {"error": "connections: cycle: a -> b -> c -> a"}


async def test_unknown_input_port(client):
    document = base()
    document["nodes"].append(node("fetch", "http.request", url="http://127.0.0.1/"))
    document["connections"].append(link("c", "message", "fetch", "uri"))
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert await response.json() == {
        "error": "connections[2].to_port: node 'fetch' (http.request) has no input port 'uri' (known: body, url)"
    }


async def test_valid_typed_values_and_plain_json_config(client):
    document = base()
    document["nodes"][0]["config"] = {
        "n": {"type": "Null"},
        "raw": tagged("Bytes", "aGVsbG8="),
        "plain": {"not": "typed"},
        "count": 3,
    }
    document["connections"][0]["from_port"] = "plain"
    response = await client.post("/api/workflows", json=document)
    assert response.status == 201, await response.text()
    config = (await (await client.get("/api/workflows/wf")).json())["nodes"][0]["config"]
    assert config == {
        "n": {"type": "Null"},
        "raw": tagged("Bytes", "aGVsbG8="),
        "plain": tagged("Json", {"not": "typed"}),
        "count": tagged("Number", 3),
    }


async def test_put_is_validated_the_same_way(client):
    response = await client.post("/api/workflows", json=base())
    assert response.status == 201
    response = await client.put("/api/workflows/wf", json=edited(set_path("settings", value={"max_parallel_nodes": 0})))
    assert response.status == 400
    assert await response.json() == {"error": "settings.max_parallel_nodes: must be at least 1, got 0"}
    assert (await (await client.get("/api/workflows/wf")).json())["version"] == 1


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_non_standard_number_literals_are_rejected(client, literal):
    """Python's json accepts NaN and Infinity; they are not JSON, and a workflow holding one
    could not be sent back as valid JSON."""
    text = (
        '{"name": "x", "nodes": [{"id": "a", "node_type": "transform.set",'
        ' "config": {"k": {"type": "Number", "value": %s}}}]}' % literal
    )
    response = await client.post("/api/workflows", data=text, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert literal in (await response.json())["error"]
    assert await (await client.get("/api/workflows")).json() == []


async def test_whole_floats_count_as_integers(client):
    document = edited(set_path("settings", value={"max_parallel_nodes": 4.0}))
    response = await client.post("/api/workflows", json=document)
    assert response.status == 201, await response.text()
    settings = (await (await client.get("/api/workflows/wf")).json())["settings"]
    assert settings["max_parallel_nodes"] == 4


async def test_node_count_limit(make_client):
    client = await make_client(max_nodes=2)
    response = await client.post("/api/workflows", json=base())
    assert response.status == 400
    assert await response.json() == {"error": "nodes: 3 nodes is over the limit of 2 (FLOWENGINE_MAX_NODES)"}


@pytest.mark.parametrize(
    "change, where",
    [
        ({"settings": {"max_execution_time_ms": 10**400}}, "settings.max_execution_time_ms"),
        ({"settings": {"on_error": {"RetryWorkflow": {"max_attempts": 10**9}}}}, "max_attempts"),
        ({"nodes": [{"id": "a", "node_type": "debug.log", "timeout_ms": 2**40}]}, "nodes[0].timeout_ms"),
        ({"nodes": [{"id": "a", "node_type": "debug.log", "retry_policy": {"backoff_multiplier": 1e308}}]}, "backoff_multiplier"),
        ({"nodes": [{"id": "a", "node_type": "debug.log", "retry_policy": {"delay_ms": 10**30}}]}, "delay_ms"),
        ({"nodes": [{"id": "a", "node_type": "time.delay", "config": {"delay_ms": {"type": "Number", "value": 1e300}}}]}, "delay_ms"),
        ({"nodes": [{"id": "a", "node_type": "http.request", "config": {"timeout_ms": {"type": "Number", "value": 1e300}}}]}, "timeout_ms"),
    ],
)
async def test_durations_too_large_for_timers_are_refused(client, change, where):
    # Such values used to be accepted and then overflow the event loop's timers at run time.
    response = await client.post("/api/workflows", json={"name": "huge", **change})
    assert response.status == 400
    assert where in (await response.json())["error"]


def test_retry_delay_with_a_large_multiplier_stops_at_the_cap():
    from flowengine.core.model import RetryPolicy

    policy = RetryPolicy(max_attempts=1000, delay_ms=1000, backoff_multiplier=1000.0, max_delay_ms=60_000)
    assert [policy.delay_before_retry(k) for k in (0, 1, 2, 999)] == [1.0, 60.0, 60.0, 60.0]
