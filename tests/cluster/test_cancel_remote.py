"""Cancel from any process: a cancel asked on B of an execution running on A reaches A through
the database (a notification), A stops it as a local cancel would (``NodeFailed`` with
``cancelled: true``), and B answers as a local cancel does, once A recorded it."""

from __future__ import annotations

import aiohttp
import asyncpg

from support.api import node
from support.cluster import get_execution, wait_for_status
from support.clusterprocs import metric, post
from support.websocket import receive_until

SLOW = {"id": "slow", "name": "slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}


async def test_cancel_on_b_stops_the_execution_running_on_a(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", SLOW)
        assert status == 201, body
        async with session.ws_connect(f"{a}/api/events?workflow_id=slow") as ws:
            status, started, _ = await post(session, f"{a}/api/workflows/slow/execute?wait=false")
            assert status == 202 and started["status"] == "running", started
            execution_id = started["execution_id"]
            await receive_until(ws, event_type="NodeStarted")

            status, answer, _ = await post(session, f"{b}/api/executions/{execution_id}/cancel")
            assert status == 200, answer
            assert answer == {"execution_id": execution_id, "status": "cancelled", "message": "Execution cancelled"}

            events = await receive_until(ws)
        failed = [event for event in events if event["type"] == "NodeFailed"]
        assert len(failed) == 1 and failed[0]["node_id"] == "wait" and failed[0]["cancelled"] is True, events
        assert events[-1]["status"] == "cancelled", events[-1]
        status, record = await get_execution(session, b, execution_id)
        assert record["status"] == "cancelled", record
        assert await metric(session, a, "flowengine_cluster_remote_cancels_total") == 1

        # Asked again, anywhere: it has finished.
        status, body, _ = await post(session, f"{b}/api/executions/{execution_id}/cancel")
        assert status == 409 and "already finished (status cancelled)" in body["error"], (status, body)


async def test_a_cancel_whose_notification_was_lost_is_found_on_the_heartbeat(processes, pg_url):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", SLOW)
        assert status == 201, body
        status, started, _ = await post(session, f"{a}/api/workflows/slow/execute?wait=false")
        assert status == 202, started
        # What a cancel on another process writes, without its notification.
        connection = await asyncpg.connect(pg_url)
        try:
            await connection.execute("UPDATE executions SET cancel_requested = true WHERE id = $1", started["execution_id"])
        finally:
            await connection.close()
        record = await wait_for_status(session, a, started["execution_id"], "cancelled")
        assert record["status"] == "cancelled", record
        assert record["nodes"][0]["status"] == "cancelled", record
