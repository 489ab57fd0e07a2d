"""Events across processes: two flowengine processes on one PostgreSQL database, executions
run on A, one WebSocket listener on A (local) and one on B (remote, its events through
LISTEN/NOTIFY).

a. Latency: small executions (a 3-node no-op chain, 8 events) one after the other, spaced out;
   for each event, its arrival at B's listener minus its arrival at A's listener (both read by
   this process on one event loop): what crossing adds, p50 and p99.
b. Throughput: one execution of a 5,000-node chain of plain no-op bodies (10,002 events,
   emitted in bursts of about a thousand per loop turn); events per second at each listener,
   from the execute request to the listener's last frame.

``.venv/bin/python -m bench.cluster_events_bench [--quick]``; the cluster is a throwaway one from
the PostgreSQL binaries (fsync on), or ``BENCH_PG_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp

from . import workflows
from .common import flowengine_server, http_json, median
from .postgres_bench import _cluster

LATENCY_WORKFLOW = "bench-events-small"
BURST_WORKFLOW = "bench-events-burst"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class _Reader:
    """A listener's frames: arrival time of each (execution id, seq), and its completions."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, int], float] = {}
        self.completed: dict[str, asyncio.Future[None]] = {}

    def completion(self, execution_id: str) -> asyncio.Future[None]:
        if execution_id not in self.completed:
            self.completed[execution_id] = asyncio.get_running_loop().create_future()
        return self.completed[execution_id]

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            now = time.perf_counter()
            event = json.loads(message.data)
            self.arrivals[(event["execution_id"], event["seq"])] = now
            if event["type"] == "WorkflowCompleted":
                future = self.completion(event["execution_id"])
                if not future.done():
                    future.set_result(None)


async def _execute(session: aiohttp.ClientSession, a: str, workflow_id: str, readers: list[_Reader]) -> tuple[str, float]:
    """Run it on A and wait until every listener has its end: its id and when it was asked for."""
    sent = time.perf_counter()
    async with session.post(f"{a}/api/workflows/{workflow_id}/execute", json={}) as response:
        body = await response.json()
        assert response.status == 200, body
    execution_id = body["execution_id"]
    await asyncio.wait_for(asyncio.gather(*(reader.completion(execution_id) for reader in readers)), 120)
    return execution_id, sent


async def _measure(a: str, b: str, executions: int) -> dict[str, Any]:
    local, remote = _Reader(), _Reader()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{a}/api/events", max_msg_size=0) as local_ws,
        session.ws_connect(f"{b}/api/events", max_msg_size=0) as remote_ws,
    ):
        await _wait_for_interest(session, a)
        tasks = [asyncio.ensure_future(local.read(local_ws)), asyncio.ensure_future(remote.read(remote_ws))]
        try:
            small = set()
            for _ in range(executions):
                small.add((await _execute(session, a, LATENCY_WORKFLOW, [local, remote]))[0])
                await asyncio.sleep(0.005)
            burst, sent = await _execute(session, a, BURST_WORKFLOW, [local, remote])
        finally:
            for task in tasks:
                task.cancel()
    added_ms = [(remote.arrivals[key] - at) * 1000 for key, at in local.arrivals.items() if key[0] in small]
    rates = {}
    for name, reader in (("local", local), ("remote", remote)):
        times = [at for key, at in reader.arrivals.items() if key[0] == burst]
        rates[name] = len(times) / (max(times) - sent)  # from the request to the last frame
    return {"added_ms": added_ms, "rates": rates}


async def _wait_for_interest(session: aiohttp.ClientSession, a: str) -> None:
    for _ in range(500):
        async with session.get(f"{a}/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith("flowengine_cluster_remote_listener_filters ") and float(line.split()[1]) >= 1:
                return
        await asyncio.sleep(0.02)
    raise RuntimeError("process A never learnt of B's listener")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_events_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer executions and a smaller burst")
    args = parser.parse_args(argv)
    executions, burst_nodes = (100, 1_000) if args.quick else (500, 5_000)
    with _cluster() as (cluster, _postmaster), contextlib.ExitStack() as stack:
        url = cluster.create_database()
        a = stack.enter_context(flowengine_server("flowengine-events-a", url, FLOWENGINE_MAX_RECORDED_EVENTS="20000"))
        b = stack.enter_context(flowengine_server("flowengine-events-b", url))
        for document in (
            workflows.chain(3, "bench.noop_sync", LATENCY_WORKFLOW),
            workflows.chain(burst_nodes, "bench.noop_sync", BURST_WORKFLOW),
        ):
            status, body = http_json("POST", f"{a.url}/api/workflows", document)
            if status != 201:
                raise RuntimeError(f"registering gave {status}: {body}")
        result = asyncio.run(_measure(a.url, b.url, executions))
    added = result["added_ms"]
    print(f"cross-process events: {executions} executions of 3 nodes, {len(added)} events on both listeners", file=sys.stderr)
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| latency added by crossing (B's listener minus A's), p50 | {median(added):.2f} ms |")
    print(f"| same, p99 | {_percentile(added, 0.99):.2f} ms |")
    print(f"| events/s to one remote listener ({2 * burst_nodes + 2:,}-event execution), B | {result['rates']['remote']:,.0f} |")
    print(f"| same execution, local listener on A | {result['rates']['local']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
