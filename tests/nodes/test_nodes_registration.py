"""Node declarations at work: config and port checks at registration, and GET /api/nodes."""

from __future__ import annotations

from typing import Any

import pytest

from support.api import link, node

BUILTIN_TYPES = [
    "control.if",
    "control.merge",
    "debug.log",
    "http.request",
    "time.delay",
    "transform.get",
    "transform.json_parse",
    "transform.json_stringify",
    "transform.set",
    "transform.template",
]


async def _error(client, nodes: list[dict[str, Any]], connections: list[dict[str, str]] = ()) -> str:
    response = await client.post("/api/workflows", json={"name": "bad", "nodes": nodes, "connections": list(connections)})
    body = await response.json()
    assert response.status == 400, body
    assert list(body) == ["error"]
    return body["error"]


@pytest.mark.parametrize(
    "node_config, expected",
    [
        (
            {"method": 5},
            "nodes[0].config.method: node 'req' (http.request) expects String, got Number",
        ),
        (
            {"method": "FETCH"},
            "nodes[0].config.method: node 'req' (http.request): 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE, HEAD",
        ),
        (
            {"methd": "GET"},
            "nodes[0].config.methd: node 'req' (http.request) has no config key 'methd'"
            " (known: body, fail_on_status, headers, method, query, timeout_ms, url)",
        ),
        (
            {"headers": ["X-A"]},
            "nodes[0].config.headers: node 'req' (http.request) expects Object, got Json",
        ),
        (
            {"fail_on_status": "yes"},
            "nodes[0].config.fail_on_status: node 'req' (http.request) expects Bool, got String",
        ),
        (
            {"timeout_ms": 0},
            "nodes[0].config: node 'req' (http.request): timeout_ms must be from 1 to 2147483647 ms, got 0",
        ),
    ],
)
async def test_bad_config_is_rejected_naming_node_and_key(client, node_config, expected):
    assert await _error(client, [node("req", "http.request", **node_config)]) == expected


async def test_bad_config_on_a_later_node_names_its_index(client):
    error = await _error(
        client, [node("a", "debug.log"), node("b", "transform.json_stringify", pretty="very")]
    )
    assert error == "nodes[1].config.pretty: node 'b' (transform.json_stringify) expects Bool, got String"


async def test_headers_as_a_plain_object_are_accepted(client):
    response = await client.post(
        "/api/workflows", json={"name": "ok", "nodes": [node("req", "http.request", headers={"X-A": "1"})]}
    )
    assert response.status == 201


@pytest.mark.parametrize(
    "connection, expected",
    [
        (
            link("parse", "result", "log", "message"),
            "connections[0].from_port: node 'parse' (transform.json_parse) has no output port 'result' (known: parsed)",
        ),
        (
            link("log", "message", "parse", "text"),
            "connections[0].to_port: node 'parse' (transform.json_parse) has no input port 'text' (known: json)",
        ),
        (
            link("log", "message", "req", "headers"),
            "connections[0].to_port: node 'req' (http.request) has no input port 'headers' (known: body, url)",
        ),
        (
            link("req", "text", "log", "message"),
            "connections[0].from_port: node 'req' (http.request) has no output port 'text'"
            " (known: body, headers, json, status)",
        ),
    ],
)
async def test_unknown_ports_are_rejected_naming_node_and_port(client, connection, expected):
    nodes = [node("parse", "transform.json_parse"), node("log", "debug.log"), node("req", "http.request")]
    assert await _error(client, nodes, [connection]) == expected


async def test_any_port_types_accept_any_port_name(client):
    response = await client.post(
        "/api/workflows",
        json={
            "name": "any ports",
            "nodes": [
                node("s", "transform.set", a=1),
                node("log", "debug.log"),
                node("wait", "time.delay", delay_ms=0),
                node("m", "control.merge"),
            ],
            "connections": [
                link("s", "a", "log", "anything"),
                link("s", "a", "wait", "whatever"),
                link("wait", "whatever", "m", "here"),
            ],
        },
    )
    assert response.status == 201, await response.json()


async def test_disallowed_ports_on_fixed_types_even_for_merge_output(client):
    error = await _error(
        client,
        [node("s", "transform.set", a=1), node("m", "control.merge"), node("log", "debug.log")],
        [link("s", "a", "m", "x"), link("m", "out", "log", "message")],
    )
    assert error == "connections[1].from_port: node 'm' (control.merge) has no output port 'out' (known: merged)"


async def test_unknown_node_type_lists_the_known_ones(client):
    error = await _error(client, [node("x", "http.fetch")])
    assert error == f"nodes[0].node_type: unknown node type 'http.fetch' (known: {', '.join(BUILTIN_TYPES)})"


async def test_node_list_is_sorted_and_declares_ports_and_config(client):
    response = await client.get("/api/nodes")
    assert response.status == 200
    listed = await response.json()
    assert [n["type"] for n in listed] == BUILTIN_TYPES
    for entry in listed:
        assert set(entry) >= {"type", "description", "category", "inputs", "outputs", "config"}
        assert entry["description"]
    http = next(n for n in listed if n["type"] == "http.request")
    assert http["category"] == "http"
    assert http["inputs"] == [
        {"name": "url", "description": "The URL to request (or config 'url')", "required": True, "type": "String"},
        {
            "name": "body",
            "description": "Request body: Json is sent as JSON, String as text, Bytes as bytes",
            "required": False,
            "type": "Any",
        },
    ]
    assert [(p["name"], p["type"]) for p in http["outputs"]] == [
        ("status", "Number"),
        ("body", "String"),
        ("headers", "Object"),
        ("json", "Json"),
    ]
    method = next(k for k in http["config"] if k["name"] == "method")
    assert method == {
        "name": "method",
        "type": "String",
        "default": "GET",
        "description": "HTTP method",
        "required": False,
        "choices": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
    }
    categories = {n["type"]: n["category"] for n in listed}
    assert categories["debug.log"] == "debug"
    assert categories["time.delay"] == "time"
    assert categories["control.if"] == "control"
    assert categories["transform.template"] == "transform"
    flexible = {n["type"] for n in listed if n["any_inputs"]}
    assert flexible == {"debug.log", "time.delay", "control.merge", "transform.template"}
    assert {n["type"] for n in listed if n["any_outputs"]} == {"time.delay", "transform.set"}
