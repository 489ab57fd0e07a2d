"""The sinks' outputs in an execution's result are encoded only when asked for: the execute
answer must be the same whether the nodes' outputs were already encoded for listeners or not."""

from __future__ import annotations

import json

from flowengine.core.engine import Engine
from flowengine.core.events import EventBus
from flowengine.core.model import parse_workflow
from flowengine.nodes import builtin_registry

from support.api import link, node, register, typed
from support.engine import workflow
from support.websocket import receive_until

VALUES = {"text": "grüße ✓", "number": 2.5, "flag": True, "items": [1, "two", None], "nested": {"a": {"b": []}}}


def _fan_out(width: int) -> dict:
    """A root set node fanning out to ``width`` sink debug.log nodes, plus a sink set node."""
    nodes = [node("root", "transform.set", **VALUES), node("lone", "transform.set", only="me")]
    nodes += [node(f"sink{i}", "debug.log") for i in range(width)]
    ports = list(VALUES)
    connections = [link("root", ports[i % len(ports)], f"sink{i}", "message") for i in range(width)]
    return workflow(nodes, connections)


def _expected(width: int) -> dict:
    ports = list(VALUES)
    expected = {"lone": {"only": typed("me")}}
    for i in range(width):
        expected[f"sink{i}"] = {"message": typed(VALUES[ports[i % len(ports)]])}
    return expected


async def test_the_answer_is_the_same_with_and_without_listeners(client):
    width = 25
    workflow_id = await register(client, _fan_out(width))
    quiet = await client.post(f"/api/workflows/{workflow_id}/execute")
    quiet_text = await quiet.text()
    ws = await client.ws_connect(f"/api/events?workflow_id={workflow_id}")
    heard = await client.post(f"/api/workflows/{workflow_id}/execute")
    heard_text = await heard.text()
    events = await receive_until(ws)
    await ws.close()
    assert quiet.status == heard.status == 200
    quiet_body, heard_body = json.loads(quiet_text), json.loads(heard_text)
    assert quiet_body["outputs"] == heard_body["outputs"] == _expected(width)
    # Byte for byte, apart from the id and the timings.
    assert quiet_text.split('"outputs":')[1] == heard_text.split('"outputs":')[1]
    completed = {event["node_id"]: event["outputs"] for event in events if event["type"] == "NodeCompleted"}
    assert {node_id: completed[node_id] for node_id in heard_body["outputs"]} == heard_body["outputs"]


async def test_the_result_gives_the_same_outputs_as_a_dict_and_as_text():
    registry = builtin_registry(use_entry_points=False)
    engine = Engine(registry, EventBus())
    result = await engine.execute(parse_workflow(_fan_out(7), registry))
    assert result.status == "succeeded"
    assert json.loads(result.outputs_json) == result.outputs == _expected(7)
    assert result.outputs is result.outputs  # encoded once
