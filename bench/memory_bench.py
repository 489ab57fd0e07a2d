"""Measurement 5: the server's resident memory after 1,000 and after 20,000 executions.

A fresh flowengine server (SQLite history, default retention) executes the one-node workflow
with 32 concurrent clients; VmRSS is read from /proc after each point, once the server has been
idle long enough for the history writer to catch up. Flat means under 10% growth.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import workflows
from .common import Profile, flowengine_server, http_json, register, rss_kib
from .http_bench import BODY, WORKFLOW_ID
from .loadgen import run_requests

__all__ = ["MemoryResult", "measure_memory"]

SETTLE_SECONDS = 1.0  # idle time before reading RSS: lets batched history writes land


@dataclass
class MemoryResult:
    points: list[tuple[int, int]]  # (executions so far, VmRSS KiB)
    seconds: float  # wall time of all executions

    @property
    def growth(self) -> float:
        (_, first), (_, last) = self.points[0], self.points[-1]
        return (last - first) / first


def measure_memory(profile: Profile) -> MemoryResult:
    checkpoints = sorted(profile.memory_points)
    with tempfile.TemporaryDirectory(prefix="flowengine-bench-") as tmp:
        with flowengine_server("flowengine-memory-growth", str(Path(tmp) / "history.db")) as server:
            register(server, workflows.one_node_set(WORKFLOW_ID))
            url = f"{server.url}/api/workflows/{WORKFLOW_ID}/execute"
            done = 0
            points = []
            elapsed = 0.0
            for checkpoint in checkpoints:
                result = run_requests(url, BODY, requests=checkpoint - done, connections=profile.connections)
                if result.errors or result.requests != checkpoint - done:
                    raise RuntimeError(f"{result.errors} failed of {result.requests} executions")
                done = checkpoint
                elapsed += result.seconds
                time.sleep(SETTLE_SECONDS)
                points.append((done, rss_kib(server.pid)))
            status, history = http_json("GET", f"{server.url}/api/executions?limit=1")
            if status != 200:
                raise RuntimeError(f"GET /api/executions gave {status}: {history}")
    return MemoryResult(points, elapsed)
