"""debug.log and time.delay, run through the HTTP API and watched over /api/events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from support.api import execute, link, node, register
from support.websocket import receive_until


async def _watch(client, workflow_id: str, inputs: dict[str, Any] | None = None, expect: int = 200):
    """Execute while listening on the WebSocket; the response and the execution's events."""
    async with client.ws_connect(f"/api/events?workflow_id={workflow_id}") as ws:
        body = await execute(client, workflow_id, inputs, expect=expect)
        events = await receive_until(ws)
    return body, events


def _node_events(events: list[dict[str, Any]], node_id: str) -> list[dict[str, Any]]:
    return [e["event"] for e in events if e["type"] == "NodeEvent" and e["node_id"] == node_id]


# -- debug.log ------------------------------------------------------------------------------


async def test_debug_log_emits_info_events_logs_and_passes_message_through(client, caplog):
    workflow_id = await register(
        client,
        {
            "name": "log",
            "nodes": [node("s", "transform.set", msg="hello", extra={"n": 1}), node("log", "debug.log")],
            "connections": [link("s", "msg", "log", "message"), link("s", "extra", "log", "extra")],
        },
    )
    with caplog.at_level(logging.INFO, logger="flowengine.nodes.debug"):
        body, events = await _watch(client, workflow_id)
    assert body["outputs"]["log"] == {"message": {"type": "String", "value": "hello"}}
    assert _node_events(events, "log") == [
        {"event_type": "Info", "message": "hello"},
        {"event_type": "Info", "message": 'extra: {"n": 1}', "port": "extra"},
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "flowengine.nodes.debug"]
    assert logged == ["[log] hello", '[log] extra: {"n": 1}']


async def test_debug_log_as_root_logs_the_execution_inputs(client):
    workflow_id = await register(client, {"name": "log", "nodes": [node("log", "debug.log")]})
    body, events = await _watch(client, workflow_id, {"message": 42, "who": "me"})
    assert body["outputs"]["log"] == {"message": {"type": "Number", "value": 42}}
    assert [e["message"] for e in _node_events(events, "log")] == ["42", "who: me"]


async def test_debug_log_without_message_has_no_output(client):
    workflow_id = await register(client, {"name": "log", "nodes": [node("log", "debug.log")]})
    body, events = await _watch(client, workflow_id, {"other": True})
    assert body["status"] == "succeeded"
    assert body["outputs"]["log"] == {}
    assert [e["message"] for e in _node_events(events, "log")] == ["other: true"]


# -- time.delay -----------------------------------------------------------------------------


async def test_delay_passes_inputs_through_unchanged(client):
    workflow_id = await register(
        client,
        {
            "name": "delay",
            "nodes": [
                {"id": "s", "node_type": "transform.set", "config": {
                    "text": {"type": "String", "value": "hi"}, "blob": {"type": "Bytes", "value": "AAE="}}},
                node("wait", "time.delay", delay_ms=1),
                node("log", "debug.log"),
            ],
            "connections": [
                link("s", "text", "wait", "text"),
                link("s", "blob", "wait", "data"),
                link("wait", "text", "log", "message"),
                link("wait", "data", "log", "data"),
            ],
        },
    )
    body, events = await _watch(client, workflow_id)
    completed = next(e for e in events if e["type"] == "NodeCompleted" and e["node_id"] == "wait")
    assert completed["outputs"] == {
        "text": {"type": "String", "value": "hi"},
        "data": {"type": "Bytes", "value": "AAE="},
    }
    assert _node_events(events, "wait") == [{"event_type": "Info", "message": "waiting 1 ms"}]
    assert body["outputs"]["log"] == {"message": {"type": "String", "value": "hi"}}


async def test_delay_as_root_passes_execution_inputs_through(client):
    workflow_id = await register(client, {"name": "d", "nodes": [node("wait", "time.delay", delay_ms=0)]})
    body = await execute(client, workflow_id, {"a": 1, "b": {"type": "Bytes", "value": "AAE="}})
    assert body["outputs"]["wait"] == {"a": {"type": "Number", "value": 1}, "b": {"type": "Bytes", "value": "AAE="}}


async def test_delay_waits_its_whole_delay_when_the_loop_wakes_it_early(client, monkeypatch):
    # uvloop keeps time in whole milliseconds and can end a 25 ms sleep at 24.6 ms; stand in for
    # it with a sleep that ends after half of what was asked, and expect the node to sleep again.
    from flowengine.nodes import timing

    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def early_sleep(seconds: float) -> None:
        asked.append(seconds)
        await real_sleep(seconds / 2)

    monkeypatch.setattr(timing.asyncio, "sleep", early_sleep)
    workflow_id = await register(client, {"name": "d", "nodes": [node("wait", "time.delay", delay_ms=40)]})
    body = await execute(client, workflow_id, {})
    monkeypatch.undo()
    assert body["duration_us"] >= 40_000, body
    waits = [seconds for seconds in asked if seconds > 0]  # the server's own sleep(0) calls aside
    assert len(waits) >= 2 and waits[0] == 0.04 and all(later < 0.04 for later in waits[1:]), asked


async def test_delay_is_cancelled_by_the_cancel_endpoint(client):
    workflow_id = await register(
        client,
        {
            "name": "slow",
            "nodes": [node("wait", "time.delay", delay_ms=60_000), node("after", "debug.log")],
            "connections": [link("wait", "x", "after", "message")],
        },
    )
    async with client.ws_connect(f"/api/events?workflow_id={workflow_id}&types=NodeStarted") as ws:
        started = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={"inputs": {"x": 1}})
        execution_id = (await started.json())["execution_id"]
        assert (await asyncio.wait_for(ws.receive_json(), 5))["node_id"] == "wait"
    # The delay is sleeping now; a non-cancellable wait would keep this request open a minute.
    response = await asyncio.wait_for(client.post(f"/api/executions/{execution_id}/cancel"), 5)
    assert (await response.json())["status"] == "cancelled"
    record = await (await client.get(f"/api/executions/{execution_id}")).json()
    statuses = {n["node_id"]: n["status"] for n in record["nodes"]}
    assert statuses == {"wait": "cancelled", "after": "pending"}


async def test_delay_is_cancelled_by_the_node_timeout(client):
    document = {"name": "d", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
    document["nodes"][0]["timeout_ms"] = 20
    workflow_id = await register(client, document)
    body = await asyncio.wait_for(execute(client, workflow_id, expect=500), 5)
    assert body["error"] == "Node execution failed: node 'wait' (time.delay): timed out after 20 ms (timeout_ms)"


async def test_delay_default_is_listed_and_negative_is_rejected(client):
    nodes = {n["type"]: n for n in await (await client.get("/api/nodes")).json()}
    assert nodes["time.delay"]["config"][0]["name"] == "delay_ms"
    assert nodes["time.delay"]["config"][0]["default"] == 1000
    response = await client.post("/api/workflows", json={"name": "d", "nodes": [node("w", "time.delay", delay_ms=-1)]})
    assert response.status == 400
    assert (await response.json())["error"] == "nodes[0].config: node 'w' (time.delay): delay_ms must be from 0 to 2147483647 ms, got -1"
