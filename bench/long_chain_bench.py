"""Measurement 8, over HTTP: a 10,000-node chain of ``time.delay`` 0 nodes executed end to end,
one request at a time, per node against the bare handler awaiting a chain of 10,000 bare asyncio
tasks (``?chain=10000``), and what its history costs: bytes stored per event, against the bytes
of the events as published (``GET /api/executions/{id}/events``).

Both servers run in the same repeat, alternately; the per-node figure is the request latency
divided by the node count (the request's own cost is under 1% of it).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from . import workflows
from .common import Profile, bare_server, flowengine_server, http_json, median

__all__ = ["LongChainResult", "measure_long_chain"]

NODES = 10_000
WORKFLOW_ID = "bench-delay-chain"
TARGET_RATIO = 4.0  # at most 4x the bare asyncio chain per node


@dataclass
class LongChainResult:
    flowengine_us: list[float] = field(default_factory=list)  # per node, per repeat
    bare_us: list[float] = field(default_factory=list)
    events: int = 0
    stored_bytes: int = 0  # the execution's events column in SQLite
    published_bytes: int = 0  # the same events as listeners get them

    @property
    def ratio(self) -> float:
        return median(self.flowengine_us) / median(self.bare_us)


def _timed_post(url: str) -> float:
    request = urllib.request.Request(url, data=b'{"inputs": {}}', method="POST", headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
    return time.perf_counter() - started


def measure_long_chain(profile: Profile) -> LongChainResult:
    result = LongChainResult()
    with tempfile.TemporaryDirectory(prefix="flowengine-bench-") as tmp:
        db = str(Path(tmp) / "history.db")
        with flowengine_server("flowengine-delay-chain", db) as server, bare_server() as bare:
            document = workflows.chain(NODES, "time.delay", WORKFLOW_ID)
            for item in document["nodes"]:
                item["config"] = {"delay_ms": {"type": "Number", "value": 0}}
            status, body = http_json("POST", f"{server.url}/api/workflows", document)
            if status != 201:
                raise RuntimeError(f"registering the chain answered {status}: {body}")
            execute = f"{server.url}/api/workflows/{WORKFLOW_ID}/execute"
            bare_execute = f"{bare.url}/api/workflows/any/execute?chain={NODES}"
            _timed_post(execute), _timed_post(bare_execute)  # warm: the plan is built, the pools grown
            for _ in range(profile.repeats):
                result.flowengine_us.append(_timed_post(execute) / NODES * 1e6)
                result.bare_us.append(_timed_post(bare_execute) / NODES * 1e6)
            status, listed = http_json("GET", f"{server.url}/api/executions?workflow_id={WORKFLOW_ID}&limit=1")
            execution_id = listed["executions"][0]["id"]
            with urllib.request.urlopen(f"{server.url}/api/executions/{execution_id}/events", timeout=60) as response:
                published = response.read()
        with closing(sqlite3.connect(db)) as connection:
            (stored,) = connection.execute("SELECT events FROM executions WHERE id = ?", (execution_id,)).fetchone()
    result.published_bytes = len(published)
    result.stored_bytes = len(stored.encode())
    result.events = published.count(b'"seq":')
    return result
