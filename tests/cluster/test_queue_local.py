"""One process on its own SQLite file: an execution that waits for a free slot is ``queued`` in
the 202 and in the history while it waits, and ``queued`` is a status the search accepts."""

from __future__ import annotations

from flowengine.runtime.executions import _Slots

from support.api import node, register


async def test_a_202_without_a_free_slot_says_queued_until_the_slot_is_free(make_client):
    client = await make_client(max_concurrent_executions=1)
    slow = await register(client, {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]})
    running = await (await client.post(f"/api/workflows/{slow}/execute?wait=false")).json()
    assert running["status"] == "running", running
    response = await client.post(f"/api/workflows/{slow}/execute?wait=false")
    waiting = await response.json()
    assert response.status == 202 and waiting["status"] == "queued", waiting
    record = await (await client.get(f"/api/executions/{waiting['execution_id']}")).json()
    assert record["status"] == "queued", record
    listed = await (await client.get("/api/executions")).json()
    assert [row["status"] for row in listed["executions"]] == ["queued", "running"], listed

    # The first one ends: the waiting one takes its slot and runs.
    cancelled = await (await client.post(f"/api/executions/{running['execution_id']}/cancel")).json()
    assert cancelled["status"] == "cancelled", cancelled
    record = await (await client.get(f"/api/executions/{waiting['execution_id']}")).json()
    assert record["status"] == "running", record
    response = await client.post(f"/api/executions/{waiting['execution_id']}/cancel")
    assert response.status == 200 and (await response.json())["status"] == "cancelled"


async def test_queued_is_a_status_the_search_accepts(client):
    response = await client.get("/api/executions?status=queued")
    assert response.status == 200, await response.text()
    assert (await response.json())["executions"] == []
    response = await client.get("/api/executions?status=waiting")
    assert response.status == 400
    assert "queued" in (await response.json())["error"]


async def test_slots_for_a_claim_are_taken_only_when_free_and_nobody_waits():
    slots = _Slots(3)
    assert slots.take_many(2) == 2 and slots.free == 1
    assert slots.take_many(5) == 1 and slots.free == 0
    assert slots.take_many(-1) == 0 and slots.free == 0  # a negative room never frees slots
    slots.give_back()
    waiter = slots.queue()
    assert slots.take_many(1) == 0  # a waiter is first
    slots.give_back()
    assert waiter.done()
