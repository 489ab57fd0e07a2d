"""Ports ``output`` and ``input``, which the upstream SDK's ``Flow >>`` wires on every node type:
what they mean on each fixed-port type (listed as ``port_aliases`` by GET /api/nodes), ordinary
names on types that accept any name, and every other unknown port still refused."""

from __future__ import annotations

from support.api import execute, link, node, register

EXPECTED_ALIASES = {
    "control.if": {"input": "value", "output": "*"},
    "control.merge": {"output": "merged"},
    "debug.log": {"output": "message"},
    "http.request": {"input": "body", "output": "*"},
    "time.delay": {},
    "transform.get": {"input": "value", "output": "value"},
    "transform.json_parse": {"input": "json", "output": "parsed"},
    "transform.json_stringify": {"input": "value", "output": "json"},
    "transform.set": {"output": "*"},
    "transform.template": {"output": "text"},
}


async def test_node_listing_says_what_output_and_input_mean(client):
    listed = {entry["type"]: entry["port_aliases"] for entry in await (await client.get("/api/nodes")).json()}
    assert listed == EXPECTED_ALIASES


async def test_a_chain_wired_output_to_input_on_fixed_port_types(client):
    document = {
        "name": "sdk-chain",
        "nodes": [
            node("text", "transform.set", doc='{"items": [{"name": "first"}]}'),
            node("parse", "transform.json_parse"),
            node("pick", "transform.get", path="items[0]"),
            node("write", "transform.json_stringify"),
            node("log", "debug.log"),
        ],
        "connections": [
            link("text", "doc", "parse", "input"),
            link("parse", "output", "pick", "input"),
            link("pick", "output", "write", "input"),
            link("write", "output", "log", "message"),
        ],
    }
    workflow_id = await register(client, document)
    body = await execute(client, workflow_id)
    assert body["outputs"]["log"]["message"] == {"type": "String", "value": '{"name": "first"}'}
    # The stored document keeps the names the client used.
    stored = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert [(c["from_port"], c["to_port"]) for c in stored["connections"]][:2] == [("doc", "input"), ("output", "input")]


async def test_output_of_a_type_without_a_main_output_is_all_outputs_as_an_object(client):
    document = {
        "name": "all",
        "nodes": [node("consts", "transform.set", a=1, b="two"), node("log", "debug.log")],
        "connections": [link("consts", "output", "log", "message")],
    }
    body = await execute(client, await register(client, document))
    assert body["outputs"]["log"]["message"] == {
        "type": "Object",
        "value": {"a": {"type": "Number", "value": 1}, "b": {"type": "String", "value": "two"}},
    }


async def test_output_of_control_if_holds_the_branch_taken(client):
    document = {
        "name": "if",
        "nodes": [node("check", "control.if", operator="gt", compare=3), node("log", "debug.log")],
        "connections": [link("check", "output", "log", "message")],
    }
    body = await execute(client, await register(client, document), {"value": 5})
    assert body["outputs"]["log"]["message"]["value"] == {"true": {"type": "Number", "value": 5}}


async def test_real_ports_named_output_and_input_keep_their_meaning(client):
    # transform.set makes a port per config entry: one named "output" is an ordinary port.
    document = {
        "name": "real",
        "nodes": [node("consts", "transform.set", output="mine", other="x"), node("log", "debug.log")],
        "connections": [link("consts", "output", "log", "input")],
    }
    body = await execute(client, await register(client, document))
    # debug.log accepts any input name: "input" is an ordinary port; its message is unset.
    assert "message" not in body["outputs"]["log"]
    events = await (await client.get(f"/api/executions/{body['execution_id']}/events")).json()
    infos = [e["event"]["message"] for e in events if e["type"] == "NodeEvent" and e["node_id"] == "log"]
    assert "input: mine" in infos


async def test_other_unknown_ports_are_still_refused_with_the_same_message(client):
    cases = [
        (link("a", "parsed", "b", "nope"), "connections[0].to_port: node 'b' (transform.json_parse) has no input port 'nope' (known: json)"),
        (link("a", "nope", "b", "json"), "connections[0].from_port: node 'a' (transform.json_parse) has no output port 'nope' (known: parsed)"),
        (link("a", "input", "b", "json"), "connections[0].from_port: node 'a' (transform.json_parse) has no output port 'input' (known: parsed)"),
        (link("a", "parsed", "b", "output"), "connections[0].to_port: node 'b' (transform.json_parse) has no input port 'output' (known: json)"),
    ]
    for connection, message in cases:
        document = {
            "name": "bad",
            "nodes": [node("a", "transform.json_parse"), node("b", "transform.json_parse")],
            "connections": [connection],
        }
        response = await client.post("/api/workflows", json=document)
        assert response.status == 400
        assert (await response.json())["error"] == message


async def test_input_on_a_type_without_inputs_is_refused(client):
    document = {
        "name": "bad",
        "nodes": [node("a", "debug.log"), node("consts", "transform.set", x=1)],
        "connections": [link("a", "output", "consts", "input")],
    }
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert (await response.json())["error"] == (
        "connections[0].to_port: node 'consts' (transform.set) has no input port 'input' (known: none)"
    )


async def test_http_request_input_is_the_body_and_output_all_outputs(client, aiohttp_server):
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"got": await request.json()})

    app = web.Application()
    app.router.add_post("/echo", echo)
    server = await aiohttp_server(app)
    document = {
        "name": "http",
        "nodes": [
            node("payload", "transform.json_parse", json='{"n": 1}'),
            node("call", "http.request", url=f"http://127.0.0.1:{server.port}/echo", method="POST"),
            node("log", "debug.log"),
        ],
        "connections": [link("payload", "output", "call", "input"), link("call", "output", "log", "message")],
    }
    body = await execute(client, await register(client, document))
    everything = body["outputs"]["log"]["message"]
    assert everything["type"] == "Object"
    assert set(everything["value"]) == {"status", "body", "headers", "json"}
    assert everything["value"]["json"] == {"type": "Json", "value": {"got": {"n": 1}}}
