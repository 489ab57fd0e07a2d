"""Cron exactly once across processes: three processes on one PostgreSQL database and a
trigger firing every second give one execution per tick (however many processes fire it), run
by more than one process (each claims from the shared run queue)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp

from support.api import node
from support.clusterprocs import metric, post, until

EVERY_SECOND = {
    "id": "ticker",
    "name": "ticker",
    "nodes": [node("a", "transform.set", greeting="tick")],
    "triggers": [{"id": "clock", "trigger_type": {"type": "Cron", "expression": "* * * * * *"}}],
}


async def _executions(session: aiohttp.ClientSession, base: str) -> list[dict]:
    async with session.get(f"{base}/api/executions?workflow_id=ticker&limit=500") as response:
        return (await response.json())["executions"]


async def test_three_processes_run_each_tick_once_and_share_the_work(processes):
    async with aiohttp.ClientSession() as session:
        bases = [base for _, base in await asyncio.gather(*(processes.start(session) for _ in range(3)))]
        status, body, _ = await post(session, f"{bases[0]}/api/workflows", EVERY_SECOND)
        assert status == 201, body

        async def claimers() -> list[float]:
            counts = [await metric(session, base, "flowengine_cluster_queue_claimed_total") for base in bases]
            return counts if sum(1 for count in counts if count) >= 2 and sum(counts) >= 3 else []

        # Ticks go on until at least two processes have run some (a bound on a hang, not a
        # speed expectation: usually within three or four ticks).
        claimed = await until(claimers, timeout=30, interval=0.2)
        async with session.delete(f"{bases[1]}/api/workflows/ticker") as response:
            assert response.status == 200
        assert claimed, "fewer than two processes ran the ticks"

        async def settled() -> list[dict]:
            found = await _executions(session, bases[2])
            return found if all(row["status"] not in ("queued", "running") for row in found) else []

        executions = await until(settled)
        await asyncio.sleep(0.3)  # a tick being queued as the delete returned shows up
        executions = await _executions(session, bases[2])
        assert all(row["trigger"] == {"type": "cron", "id": "clock"} for row in executions)
        ticks = []
        for row in executions:
            async with session.get(f"{bases[0]}/api/executions/{row['id']}") as response:
                ticks.append((await response.json())["inputs"]["scheduled_at"]["value"])
        assert len(ticks) == len(set(ticks)), sorted(ticks)  # no tick ran twice
        seconds = sorted(datetime.fromisoformat(tick.replace("Z", "+00:00")).timestamp() for tick in ticks)
        assert seconds == [seconds[0] + step for step in range(len(seconds))], ticks  # none missed
        # Every tick queued is run by some process.
        total_claimed = sum([await metric(session, base, "flowengine_cluster_queue_claimed_total") for base in bases])
        total_queued = sum([await metric(session, base, "flowengine_cluster_queue_queued_total") for base in bases])
        assert total_queued == len(executions) and total_claimed >= len(executions) - 1, (total_queued, total_claimed)
