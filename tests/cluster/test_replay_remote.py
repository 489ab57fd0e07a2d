"""A replay on one process of an execution another process runs: the events so far from the
process that runs it, then the live ones, with no gap and no duplicate; and the execution's
live node statuses and events so far from any process. Real processes on a real PostgreSQL database."""

from __future__ import annotations

import json

import aiohttp

from support.cluster import get_execution
from support.clusterprocs import LISTENER_HEARTBEAT, chain, metric, post, receive_frames

NODES = 66  # 3 events each, plus WorkflowStarted and WorkflowCompleted: 200 events
EVENTS = 3 * NODES + 2


# Short heartbeats: a lost LISTEN connection is found, and listeners are announced, within a
# fraction of a second.
PROCESS_ENVIRONMENT = {"FLOWENGINE_NODE_HEARTBEAT": LISTENER_HEARTBEAT}


async def test_replay_on_b_attached_mid_run_to_a_200_event_execution_on_a_gets_every_seq_once(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", chain(NODES, 15))
        assert status == 201, body
        async with session.ws_connect(f"{a}/api/events?workflow_id=chain") as local:
            status, started, _ = await post(session, f"{a}/api/workflows/chain/execute?wait=false", {"inputs": {"v": 1}})
            assert status == 202, started
            execution_id = started["execution_id"]
            seen = []
            while not seen or json.loads(seen[-1])["seq"] < 30:
                seen.append((await local.receive(timeout=30)).data)

            # B asks A for the live node statuses.
            status, record = await get_execution(session, b, execution_id)
            assert status == 200 and record["status"] == "running", record
            statuses = [item["status"] for item in record["nodes"]]
            assert [item["node_id"] for item in record["nodes"]] == [f"n{at}" for at in range(NODES)]
            assert statuses[0] == "succeeded" and "running" in statuses and statuses[-1] == "pending", statuses

            # And for its events so far: what A's listener got, in seq order from 1.
            async with session.get(f"{b}/api/executions/{execution_id}/events") as response:
                assert response.status == 200
                so_far = await response.json()
            assert len(so_far) >= 30 and [event["seq"] for event in so_far] == list(range(1, len(so_far) + 1))
            while json.loads(seen[-1])["seq"] < len(so_far):
                seen.append((await local.receive(timeout=30)).data)
            assert so_far == [json.loads(frame) for frame in seen[: len(so_far)]]

            async with session.ws_connect(f"{b}/api/events?execution_id={execution_id}&replay=true") as replay:
                # Still running once the replay is attached: part of it replayed, the rest live.
                status, record = await get_execution(session, a, execution_id)
                assert record["status"] == "running", record
                frames = await receive_frames(replay, execution_id)
            seen += await receive_frames(local, execution_id)
        assert [json.loads(frame)["seq"] for frame in frames] == list(range(1, EVENTS + 1))
        assert frames == seen  # the frames a listener on A got
        assert await metric(session, b, "flowengine_cluster_events_received_total") > 0  # the live part came from A

        # Once it has ended, B replays it from the history, and shows how each node ended.
        async with session.ws_connect(f"{b}/api/events?execution_id={execution_id}&replay=true&batch=true") as replay:
            message = await replay.receive(timeout=30)
        assert [event["seq"] for event in json.loads(message.data)] == list(range(1, EVENTS + 1))
        status, record = await get_execution(session, b, execution_id)
        assert record["status"] == "succeeded" and {item["status"] for item in record["nodes"]} == {"succeeded"}
