"""The cluster's run queue, through real processes on one PostgreSQL database: a ``?wait=false``
execution that finds no free slot is queued (the 202 says so), survives the death of the process
that accepted it, can be cancelled while queued, and the queue is bounded (503). Event-triggered
starts go through the queue too, with each chain's budget counted in the database."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from support.api import link, node
from support.cluster import get_execution, wait_for_status
from support.clusterprocs import kill, metric, post, until

ONE_SLOT = {"FLOWENGINE_MAX_CONCURRENT_EXECUTIONS": "1"}
SLOW = {"id": "slow", "name": "slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
QUICK = {"id": "quick", "name": "quick", "nodes": [node("a", "transform.set", greeting="hello")]}


async def _occupy_the_slot(session: aiohttp.ClientSession, base: str) -> str:
    for document in (SLOW, QUICK):
        status, body, _ = await post(session, f"{base}/api/workflows", document)
        assert status == 201, body
    status, body, _ = await post(session, f"{base}/api/workflows/slow/execute?wait=false")
    assert status == 202 and body["status"] == "running", body
    return body["execution_id"]


async def test_a_queued_202_survives_kill_9_of_its_process_and_runs_on_another(processes):
    async with aiohttp.ClientSession() as session:
        a_process, a = await processes.start(session, **ONE_SLOT)
        await _occupy_the_slot(session, a)
        status, body, headers = await post(session, f"{a}/api/workflows/quick/execute?wait=false")
        assert status == 202 and body["status"] == "queued", body
        assert headers["Location"].endswith(f"/api/executions/{body['execution_id']}")
        execution_id = body["execution_id"]
        status, record = await get_execution(session, a, execution_id)
        assert record["status"] == "queued", record
        async with session.get(f"{a}/api/executions?status=queued") as response:
            assert [row["id"] for row in (await response.json())["executions"]] == [execution_id]

        kill(a_process)
        _, b = await processes.start(session)
        record = await wait_for_status(session, b, execution_id, "succeeded")
        assert record["status"] == "succeeded", record
        assert record["nodes"][0]["status"] == "succeeded", record


# With answers that do not wait for commits too: the running row is committed before it is queued.
@pytest.mark.parametrize("ack", ["commit", "async"])
async def test_a_queued_execution_is_cancelled_in_the_database_and_the_queue_is_bounded(processes, ack):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(
            session, FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS="1", FLOWENGINE_HISTORY_ACK=ack, **ONE_SLOT
        )
        await _occupy_the_slot(session, a)
        status, queued, _ = await post(session, f"{a}/api/workflows/quick/execute?wait=false")
        assert status == 202 and queued["status"] == "queued", queued

        status, body, headers = await post(session, f"{a}/api/workflows/quick/execute?wait=false")
        assert status == 503, body
        assert headers["Retry-After"] == "1"
        assert "FLOWENGINE_MAX_CLUSTER_QUEUED_EXECUTIONS" in body["error"]
        async with session.get(f"{a}/api/executions?workflow_id=quick") as response:
            listed = await response.json()
        assert listed["total"] == 1, listed  # the refused one left no record

        # Queued in the database, not in this process: cancelled there.
        status, body, _ = await post(session, f"{a}/api/executions/{queued['execution_id']}/cancel")
        assert (status, body["status"], body["message"]) == (200, "cancelled", "Execution cancelled"), body
        status, record = await get_execution(session, a, queued["execution_id"])
        assert record["status"] == "cancelled" and record["finished_at"] is not None, record
        status, body, _ = await post(session, f"{a}/api/executions/{queued['execution_id']}/cancel")
        assert status == 409 and "already finished (status cancelled)" in body["error"], body
        status, body, _ = await post(session, f"{a}/api/workflows/quick/execute?wait=false")
        assert status == 202 and body["status"] == "queued", body  # its place is free again


def _on_any_completion(name: str) -> dict:
    return {
        "id": name,
        "name": name,
        "nodes": [node("log", "debug.log")],
        "triggers": [{"id": f"on-{name}", "trigger_type": {"type": "Event", "event_type": "WorkflowCompleted"}}],
    }


async def test_an_event_chain_run_by_two_processes_keeps_its_budget_of_64(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        # Four workflows that each start on any other's completion would triple at every level;
        # the chain's members run on both processes, which count its starts in the database.
        for name in ("w1", "w2", "w3", "w4"):
            status, body, _ = await post(session, f"{a}/api/workflows", _on_any_completion(name))
            assert status == 201, body
        status, body, _ = await post(session, f"{b}/api/workflows/w1/execute")
        assert status == 200, body

        async def settled() -> list[dict]:
            async with session.get(f"{a}/api/executions?limit=500") as response:
                found = (await response.json())["executions"]
            done = len(found) >= 65 and all(row["status"] not in ("queued", "running") for row in found)
            return found if done else []

        everything = await until(settled)
        await asyncio.sleep(0.3)  # an extra start, were the budget not kept, would show up by now
        async with session.get(f"{a}/api/executions?limit=500") as response:
            everything = (await response.json())["executions"]
        assert len(everything) == 1 + 64, len(everything)
        assert all(row["status"] == "succeeded" for row in everything)
        claimed = [await metric(session, base, "flowengine_cluster_queue_claimed_total") for base in (a, b)]
        assert sum(claimed) == 64, claimed


def _flaky(version: int) -> dict:
    """Version 1 fails at ``parse``; version 2 replaces it with a node that takes any text."""
    step = node("parse", "transform.json_parse") if version == 1 else node("parse", "debug.log")
    port = "json" if version == 1 else "message"
    return {
        "id": "flaky",
        "name": "flaky",
        "nodes": [node("source", "transform.set", text="{not json"), step],
        "connections": [link("source", "text", "parse", port)],
    }


async def test_a_queued_retry_from_failure_keeps_its_cached_outputs_on_the_process_that_runs_it(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session, **ONE_SLOT)
        status, body, _ = await post(session, f"{a}/api/workflows", _flaky(1))
        assert status == 201, body
        status, failed, _ = await post(session, f"{a}/api/workflows/flaky/execute")
        assert status == 500, failed
        await _occupy_the_slot(session, a)
        async with session.put(f"{a}/api/workflows/flaky", json=_flaky(2)) as response:
            assert response.status == 200, await response.text()
        retry = f"{a}/api/executions/{failed['execution_id']}/retry?wait=false"
        status, queued, _ = await post(session, retry, {"from_failure": True})
        assert status == 202 and queued["status"] == "queued" and queued["retry_of"] == failed["execution_id"], queued

        _, b = await processes.start(session)
        record = await wait_for_status(session, b, queued["execution_id"], "succeeded")
        assert record["status"] == "succeeded" and record["retry_of"] == failed["execution_id"], record
        nodes = {entry["node_id"]: entry for entry in record["nodes"]}
        assert nodes["source"]["cached"] is True and nodes["parse"]["cached"] is False, nodes
