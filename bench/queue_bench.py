"""The cluster's run queue on PostgreSQL (not part of ``make bench``: it needs the PostgreSQL
binaries, and the cron part takes a minute).

``python -m bench.queue_bench [--executions N] [--repeats R] [--cron-seconds S]``

a. Queue dispatch: N executions of a one-node workflow are put into the run queue at once (rows
   written straight into the database, so no HTTP is measured), then two flowengine processes
   claim and run them; executions per second from the NOTIFY to the last one recorded, and how
   many each process ran. Median of R repeats.
b. Cron exactly once: three processes and a ``* * * * * *`` trigger for S seconds (default 60;
   0 skips it): how many executions, how many distinct ticks, duplicates, and how many
   each process ran (its ``flowengine_cluster_queue_claimed_total``).

A throwaway cluster with fsync on (tests/support/postgres.py), or ``BENCH_PG_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
import urllib.request
import uuid
from typing import Any

from . import workflows
from .common import flowengine_server, http_json, median, register
from .postgres_bench import _cluster
from .report import table

WORKFLOW_ID = "bench-queue"


def _claimed(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^flowengine_cluster_queue_claimed_total ([0-9.e+]+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


async def _fill_and_wait(db: str, count: int) -> float:
    """Queue ``count`` executions in one transaction, wake the processes, and wait until every
    one is recorded: seconds from the notification to the last record."""
    import asyncpg

    connection = await asyncpg.connect(db)
    try:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        async with connection.transaction():
            await connection.executemany(
                "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, status, started_at)"
                " VALUES ($1, $2, 1, '{\"type\":\"manual\",\"id\":null}', '{}', 'queued', $3)",
                [(execution_id, WORKFLOW_ID, now) for execution_id in ids],
            )
            await connection.executemany("INSERT INTO run_queue (execution_id) VALUES ($1)", [(i,) for i in ids])
        began = time.perf_counter()
        await connection.execute("SELECT pg_notify('flowengine_queue', '')")
        while True:
            left = await connection.fetchval(
                "SELECT count(*) FROM executions WHERE id = ANY($1::text[]) AND status IN ('queued', 'running')", ids
            )
            if not left:
                return time.perf_counter() - began
            await asyncio.sleep(0.01)
    finally:
        await connection.close()


def measure_dispatch(db: str, executions: int, repeats: int) -> list[list[Any]]:
    rates: list[float] = []
    shares: list[str] = []
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(flowengine_server(f"flowengine-queue-{n}", db)) for n in "ab"]
        register(servers[0], workflows.one_node_set(WORKFLOW_ID))
        asyncio.run(_fill_and_wait(db, 500))  # warm-up
        for repeat in range(repeats):
            before = [_claimed(server.url) for server in servers]
            seconds = asyncio.run(_fill_and_wait(db, executions))
            ran = [_claimed(server.url) - earlier for server, earlier in zip(servers, before)]
            rates.append(executions / seconds)
            shares.append(" / ".join(str(count) for count in ran))
            print(f"  dispatch repeat {repeat + 1}: {executions / seconds:,.0f} executions/s ({shares[-1]})", file=sys.stderr)
    return [[f"{executions:,} queued executions, 2 processes", f"{median(rates):,.0f}", ", ".join(shares)]]


def measure_cron(db: str, seconds: int) -> list[list[Any]]:
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(flowengine_server(f"flowengine-cron-{n}", db)) for n in "abc"]
        document = {
            **workflows.one_node_set("bench-cron"),
            "triggers": [{"id": "clock", "trigger_type": {"type": "Cron", "expression": "* * * * * *"}}],
        }
        register(servers[0], document)
        time.sleep(seconds)
        http_json("DELETE", f"{servers[1].url}/api/workflows/bench-cron")
        time.sleep(1)
        ticks: list[str] = []
        before: int | None = None
        while True:
            query = "workflow_id=bench-cron&limit=500" + (f"&before={before}" if before else "")
            _, page = http_json("GET", f"{servers[2].url}/api/executions?{query}")
            for row in page["executions"]:
                _, record = http_json("GET", f"{servers[2].url}/api/executions/{row['id']}")
                ticks.append(record["inputs"]["scheduled_at"]["value"])
            before = page["next"]
            if before is None:
                break
        ran = [_claimed(server.url) for server in servers]
    duplicates = len(ticks) - len(set(ticks))
    return [[f"3 processes, `* * * * * *` for {seconds} s", len(ticks), len(set(ticks)), duplicates, " / ".join(map(str, ran))]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_bench", description=__doc__)
    parser.add_argument("--executions", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cron-seconds", type=int, default=60)
    args = parser.parse_args(argv)
    with _cluster() as (cluster, _postmaster):
        dispatch = measure_dispatch(cluster.create_database(), args.executions, args.repeats)
        print("### Run queue dispatch (PostgreSQL, fsync on)\n")
        print(table(["configuration", "executions/s (median)", "run by a / b, per repeat"], dispatch))
        if args.cron_seconds:
            cron = measure_cron(cluster.create_database(), args.cron_seconds)
            print("\n### Cron exactly once\n")
            print(table(["configuration", "executions", "distinct ticks", "duplicates", "run by a / b / c"], cron))
    return 0


if __name__ == "__main__":
    sys.exit(main())
