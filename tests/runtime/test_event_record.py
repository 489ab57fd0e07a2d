"""The history keeps an execution's events in a compact form (core/eventlog.py) and gives back,
byte for byte, the texts its listeners were sent; history written before that form still reads."""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing

import pytest

from flowengine.core.eventlog import compact_event, event_head, expand, expand_json, full_event, pack
from flowengine.core.timestamps import epoch_millis, millis_timestamp, utc_timestamp

from support.api import execute, link, node, register


def _mixed_workflow() -> dict:
    """Every kind of event: started, completed with non-ASCII outputs, node events (debug.log),
    a failure, a skip, under ContinueOnError."""
    return {
        "name": "mixed events",
        "nodes": [
            node("greet", "transform.set", text="grüße, 世界 🚀 \"quoted\" \\ back"),
            node("log", "debug.log"),
            node("bad", "transform.json_parse"),
            node("never", "debug.log"),
            node("echo", "debug.log"),  # a root: logs the execution's inputs
        ],
        "connections": [
            link("greet", "text", "log", "message"),
            link("greet", "text", "bad", "json"),
            link("bad", "parsed", "never", "message"),
        ],
        "settings": {"on_error": "ContinueOnError"},
    }


async def test_the_record_gives_back_exactly_what_listeners_were_sent(client):
    workflow_id = await register(client, _mixed_workflow())
    ws = await client.ws_connect(f"/api/events?workflow_id={workflow_id}")
    # A lone surrogate in the inputs: no UTF-8 text can hold it, so it travels as its escape.
    response = await client.post(
        f"/api/workflows/{workflow_id}/execute",
        data='{"inputs": {"extra": {"type": "String", "value": "lone \\udc80 surrogate"}}}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status in (200, 500), await response.text()
    live = []
    while not live or json.loads(live[-1])["type"] != "WorkflowCompleted":
        live.append(await ws.receive_str(timeout=10))
    await ws.close()
    execution_id = json.loads(live[0])["execution_id"]
    assert any("\\udc80" in text for text in live)
    assert {json.loads(text)["type"] for text in live} >= {
        "WorkflowStarted", "NodeStarted", "NodeCompleted", "NodeEvent", "NodeFailed", "NodeSkipped", "WorkflowCompleted"
    }

    recorded = await (await client.get(f"/api/executions/{execution_id}/events")).text()
    assert recorded == "[" + ",".join(live) + "]"

    # The node records folded from the stored form carry each node's start time as published.
    record = await (await client.get(f"/api/executions/{execution_id}")).json()
    started = {json.loads(text)["node_id"]: json.loads(text)["timestamp"] for text in live if '"NodeStarted"' in text}
    assert {item["node_id"]: item["started_at"] for item in record["nodes"] if item["started_at"]} == started


@pytest.mark.sqlite_only
async def test_the_stored_record_is_compact(client, config):
    workflow_id = await register(client, _mixed_workflow())
    await client.post(f"/api/workflows/{workflow_id}/execute", json={})
    listed = await (await client.get(f"/api/executions?workflow_id={workflow_id}")).json()
    execution_id = listed["executions"][0]["id"]
    recorded = await (await client.get(f"/api/executions/{execution_id}/events")).text()
    with closing(sqlite3.connect(config.db)) as db:
        (stored,) = db.execute("SELECT events FROM executions WHERE id = ?", (execution_id,)).fetchone()
    # No ids, no timestamp texts: much smaller than what was published.
    assert stored.startswith("@2 ")
    assert execution_id not in stored and '"timestamp"' not in stored
    assert len(stored.encode()) < 0.7 * len(recorded.encode())


@pytest.mark.sqlite_only
async def test_history_written_before_the_compact_form_still_reads(client, config):
    workflow_id = await register(client, {"name": "old", "nodes": [node("a", "transform.set", x=1)]})
    result = await execute(client, workflow_id)
    execution_id = result["execution_id"]
    published = await (await client.get(f"/api/executions/{execution_id}/events")).text()
    with closing(sqlite3.connect(config.db)) as db, db:
        db.execute("UPDATE executions SET events = ? WHERE id = ?", (published, execution_id))
    assert await (await client.get(f"/api/executions/{execution_id}/events")).text() == published
    record = await (await client.get(f"/api/executions/{execution_id}")).json()
    assert [item["status"] for item in record["nodes"]] == ["succeeded"]


def test_expanding_a_compact_event_rebuilds_the_published_text():
    randomness = random.Random(20261129)
    head = event_head("0193e3a1-0000-7000-8000-000000000001", "wf-ü")
    origin = epoch_millis(1_764_400_000.5)
    lines, published = [], []
    for seq in range(1, 200):
        fields = json.dumps(
            {"node_id": f"n{seq}", "v": randomness.choice(["a", "ü", '"t":1}', ',"t":', "x\\ny", 3.5, None])},
            ensure_ascii=False, separators=(",", ":"),
        )[1:-1]
        body = f"{seq},{fields}"
        millis = origin + randomness.randrange(-5, 100_000)
        lines.append(compact_event("NodeEvent", body, millis - origin))
        published.append(full_event("NodeEvent", head, body, millis))
    assert expand(lines, origin, "0193e3a1-0000-7000-8000-000000000001", "wf-ü") == published
    stored = pack(lines, origin)
    assert expand_json(stored, "0193e3a1-0000-7000-8000-000000000001", "wf-ü") == "[" + ",".join(published) + "]"
    assert expand_json(pack([], origin), "x", "y") == "[]"
    assert expand_json(None, "x", "y") is None


def test_millisecond_timestamps_agree_with_datetime():
    from datetime import UTC, datetime

    randomness = random.Random(7)
    for _ in range(2000):
        millis = randomness.randrange(0, 4_000_000_000_000)
        expected = datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
        assert millis_timestamp(millis) == expected
        assert utc_timestamp(millis / 1000) == millis_timestamp(epoch_millis(millis / 1000))
