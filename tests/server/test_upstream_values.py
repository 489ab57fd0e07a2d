"""Smaller upstream forms: a missing ``description`` reads back null, ``Bytes`` given as an
array of byte numbers, ``Data`` events naming their port, and the OpenAPI document at the
upstream path ``/api-docs/openapi.json``."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import WSMsgType

from flowengine.nodes.api import NodeContext, NodeType
from flowengine.server.keys import REGISTRY

from support.api import execute, node, register


async def test_a_missing_description_reads_back_null(client):
    await register(client, {"id": "bare", "name": "Bare"})
    await register(client, {"id": "nulled", "name": "Nulled", "description": None})
    await register(client, {"id": "empty", "name": "Empty", "description": ""})
    await register(client, {"id": "told", "name": "Told", "description": "says what it does"})

    shown = {
        workflow_id: (await (await client.get(f"/api/workflows/{workflow_id}")).json())["description"]
        for workflow_id in ("bare", "nulled", "empty", "told")
    }
    assert shown == {"bare": None, "nulled": None, "empty": "", "told": "says what it does"}
    listed = {item["id"]: item["description"] for item in await (await client.get("/api/workflows")).json()}
    assert listed == shown


async def test_bytes_given_as_byte_numbers_come_back_as_base64(client):
    document = {
        "id": "bytes",
        "name": "Bytes",
        "nodes": [{"id": "log", "node_type": "debug.log", "config": {"message": {"type": "Bytes", "value": [104, 105, 0, 255]}}}],
    }
    await register(client, document)
    stored = await (await client.get("/api/workflows/bytes")).json()
    assert stored["nodes"][0]["config"]["message"] == {"type": "Bytes", "value": "aGkA/w=="}
    body = await execute(client, "bytes")
    assert body["outputs"]["log"]["message"] == {"type": "Bytes", "value": "aGkA/w=="}

    # Inputs take the same form, an empty array included.
    body = await execute(client, "bytes", {"message": {"type": "Bytes", "value": [0, 1, 2]}})
    assert body["outputs"]["log"]["message"] == {"type": "Bytes", "value": "AAEC"}
    body = await execute(client, "bytes", {"message": {"type": "Bytes", "value": []}})
    assert body["outputs"]["log"]["message"] == {"type": "Bytes", "value": ""}
    # Base64 is still accepted.
    body = await execute(client, "bytes", {"message": {"type": "Bytes", "value": "aGk="}})
    assert body["outputs"]["log"]["message"] == {"type": "Bytes", "value": "aGk="}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([104, 256], "nodes[0].config.message.value[1]: a Bytes array holds byte numbers 0-255, got 256"),
        ([-1], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got -1"),
        ([1.5], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got 1.5"),
        ([1.0], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got 1.0"),
        ([True], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got a boolean"),
        (["a"], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got a string"),
        ([[1]], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got an array"),
        ([10**30], "nodes[0].config.message.value[0]: a Bytes array holds byte numbers 0-255, got a number"),
        (
            {"bytes": [1]},
            "nodes[0].config.message.value: Bytes must hold a base64 string or an array of byte numbers 0-255,"
            " got an object",
        ),
        ("not base64!", "nodes[0].config.message.value: Bytes must hold valid base64"),
    ],
)
async def test_bad_bytes_are_a_400_naming_the_path(client, payload: Any, message: str):
    document = {
        "name": "Bad bytes",
        "nodes": [{"id": "log", "node_type": "debug.log", "config": {"message": {"type": "Bytes", "value": payload}}}],
    }
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert await response.json() == {"error": message}


async def test_bad_bytes_in_inputs_are_a_400(client):
    await register(client, {"id": "log", "name": "Log", "nodes": [node("log", "debug.log")]})
    response = await client.post(
        "/api/workflows/log/execute", json={"inputs": {"message": {"type": "Bytes", "value": [300]}}}
    )
    assert response.status == 400
    assert "a Bytes array holds byte numbers 0-255, got 300" in (await response.json())["error"]


async def test_data_events_name_their_port(client):
    def streamer(ctx: NodeContext) -> dict[str, Any]:
        ctx.data({"row": 1})
        ctx.data("partial", port="partial_result")
        return {"ok": True}

    client.app[REGISTRY].register(NodeType("test.streamer", "Streams data", "test", streamer, any_outputs=True))
    workflow_id = await register(client, {"name": "stream", "nodes": [node("s", "test.streamer")]})
    async with client.ws_connect("/api/events?types=NodeEvent,WorkflowCompleted") as ws:
        await execute(client, workflow_id)
        events = []
        while not events or events[-1]["type"] != "WorkflowCompleted":
            message = await ws.receive(timeout=10)
            assert message.type == WSMsgType.TEXT
            events.append(message.json())
    assert [event["event"] for event in events[:-1]] == [
        {"event_type": "Data", "port": "output", "value": {"type": "Json", "value": {"row": 1}}},
        {"event_type": "Data", "port": "partial_result", "value": {"type": "String", "value": "partial"}},
    ]


async def test_the_openapi_document_is_also_at_the_upstream_path(client):
    ours = await client.get("/openapi.json")
    upstream = await client.get("/api-docs/openapi.json")
    assert (ours.status, upstream.status) == (200, 200)
    assert upstream.content_type == "application/json"
    text = await upstream.text()
    assert text == await ours.text()
    document = await upstream.json()
    assert {"/openapi.json", "/api-docs/openapi.json"} <= set(document["paths"])


async def test_the_upstream_openapi_path_needs_the_read_scope(make_client):
    client = await make_client(api_keys={"rk_reader_0123456789": "read"})
    assert (await client.get("/api-docs/openapi.json")).status == 401
    response = await client.get("/api-docs/openapi.json", headers={"Authorization": "Bearer rk_reader_0123456789"})
    assert response.status == 200
