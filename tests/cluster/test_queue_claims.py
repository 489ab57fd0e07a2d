"""The claims that make triggers fire once on a shared database, seen from a second process's
side: the same event reaching another process, or the same cron tick fired by another one,
finds the start taken and starts nothing more."""

from __future__ import annotations

import asyncio

from flowengine.server.keys import CATALOG, RUNS

from support.api import node, register

HEARTBEAT = {"node_heartbeat": 0.2, "node_timeout": 1.0}


async def _executions(client, workflow_id: str) -> list[dict]:
    response = await client.get(f"/api/executions?workflow_id={workflow_id}")
    return (await response.json())["executions"]


async def _settled(client, workflow_id: str, count: int) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        found = await _executions(client, workflow_id)
        if len(found) >= count and all(row["status"] not in ("queued", "running") for row in found):
            return found
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.02)


async def test_an_event_seen_again_elsewhere_starts_its_trigger_once(make_client, pg_url):
    client = await make_client(db=pg_url, **HEARTBEAT)
    source = await register(client, {"name": "source", "nodes": [node("s", "transform.set", x=1)]})
    trigger = {"id": "after", "trigger_type": {"type": "Event", "event_type": "WorkflowCompleted", "workflow_id": source}}
    target = await register(client, {"name": "target", "nodes": [node("log", "debug.log")], "triggers": [trigger]})
    result = await (await client.post(f"/api/workflows/{source}/execute")).json()
    [started] = await _settled(client, target, 1)
    assert started["trigger"]["source_execution_id"] == result["execution_id"]

    events = await (await client.get(f"/api/executions/{result['execution_id']}/events")).json()
    completed = next(event for event in events if event["type"] == "WorkflowCompleted")
    app = client.server.app
    workflow = app[CATALOG].get(target)
    outcome = await app[RUNS].queue.start_event(workflow, workflow.triggers[0], completed, max_depth=8, max_chain=64)
    assert outcome == "taken"
    await asyncio.sleep(0.2)
    assert len(await _executions(client, target)) == 1


async def test_a_cron_tick_fired_again_elsewhere_is_taken(make_client, pg_url):
    client = await make_client(db=pg_url, **HEARTBEAT)
    clock = {"id": "clock", "trigger_type": {"type": "Cron", "expression": "0 0 1 1 *"}}  # not during the test
    ticker = await register(client, {"name": "ticker", "nodes": [node("log", "debug.log")], "triggers": [clock]})
    app = client.server.app
    workflow = app[CATALOG].get(ticker)
    queue = app[RUNS].queue
    tick = "2026-01-01T00:00:00.000Z"
    outcomes = await asyncio.gather(*(queue.fire_cron(workflow, workflow.triggers[0], tick) for _ in range(3)))
    assert sorted(outcomes) == ["queued", "taken", "taken"], outcomes
    [ran] = await _settled(client, ticker, 1)
    assert ran["status"] == "succeeded" and ran["trigger"] == {"type": "cron", "id": "clock"}
    record = await (await client.get(f"/api/executions/{ran['id']}")).json()
    assert record["inputs"]["scheduled_at"]["value"] == tick
    assert await queue.fire_cron(workflow, workflow.triggers[0], tick) == "taken"
