"""Measurement 7: memory of a server running the largest retry workflow the limits allow.

One node that always fails, retried ``max_attempts: 1000`` times with no delay, under
``RetryWorkflow`` 1000: a million node attempts in one execution, each reported by a Warning
event. The server runs it (``?wait=false``) for the profile's duration while VmRSS is read every
few seconds; then it is cancelled and its stored record is measured. Flat memory and a bounded
record are the point (FLOWENGINE_MAX_RECORDED_EVENTS keeps the first and latest events).
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .common import Profile, flowengine_server, http_json, rss_kib

__all__ = ["RetryMemoryResult", "measure_retry_memory"]

WORKFLOW = {
    "id": "bench-retry-1000x1000",
    "name": "always fails, retried 1000 x 1000",
    "nodes": [
        {
            "id": "fail",
            "node_type": "transform.json_parse",
            "config": {"json": {"type": "String", "value": "not json"}},
            "retry_policy": {"max_attempts": 1000, "delay_ms": 0, "backoff_multiplier": 1},
        }
    ],
    "settings": {"on_error": {"RetryWorkflow": {"max_attempts": 1000}}},
}
SAMPLE_SECONDS = 2.0


@dataclass
class RetryMemoryResult:
    samples: list[tuple[float, int]]  # (seconds since the start, VmRSS KiB)
    events_emitted: int  # seq of the last event when it was cancelled
    recorded_events: int  # events in the stored record
    record_bytes: int

    @property
    def growth(self) -> float:
        """RSS growth from the first sample after warm-up (the second) to the last."""
        first, last = self.samples[1][1], self.samples[-1][1]
        return (last - first) / first


def measure_retry_memory(profile: Profile) -> RetryMemoryResult:
    seconds = 60.0 if profile.name == "full" else 12.0
    with tempfile.TemporaryDirectory(prefix="flowengine-bench-") as tmp:
        with flowengine_server("flowengine-retry-memory", str(Path(tmp) / "history.db")) as server:
            status, body = http_json("POST", f"{server.url}/api/workflows", WORKFLOW)
            if status != 201:
                raise RuntimeError(f"registering the workflow gave {status}: {body}")
            status, body = http_json("POST", f"{server.url}/api/workflows/{WORKFLOW['id']}/execute?wait=false", {})
            if status != 202:
                raise RuntimeError(f"execute gave {status}: {body}")
            execution_id = body["execution_id"]
            started = time.monotonic()
            samples = []
            while True:
                elapsed = time.monotonic() - started
                samples.append((elapsed, rss_kib(server.pid)))
                if elapsed >= seconds:
                    break
                time.sleep(SAMPLE_SECONDS)
            status, body = http_json("POST", f"{server.url}/api/executions/{execution_id}/cancel", {})
            if status != 200:
                raise RuntimeError(f"cancel gave {status}: {body} (did the execution end early?)")
            with urllib.request.urlopen(f"{server.url}/api/executions/{execution_id}/events", timeout=60) as response:
                record = response.read()
    events = json.loads(record)
    return RetryMemoryResult(samples, events[-1]["seq"], len(events), len(record))
