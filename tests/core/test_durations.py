"""Every duration_ms is an integer (milliseconds, truncated) with duration_us beside it: in
events, the execute response, history summaries and node records, and for rows written before
durations were integers (fractional milliseconds, no duration_us column)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

from support.api import execute, link, node, register
from flowengine.runtime.store import _SCHEMA
from flowengine.server.keys import STORE


def _integer_pair(holder: dict) -> int:
    """Check the pair and give the microseconds."""
    ms, us = holder["duration_ms"], holder["duration_us"]
    assert type(ms) is int and type(us) is int, holder
    assert ms == us // 1000
    return us


async def test_execute_response_events_and_history_carry_integer_durations(client):
    document = {
        "name": "timed",
        "nodes": [node("wait", "time.delay", delay_ms=30), node("log", "debug.log")],
        "connections": [link("wait", "message", "log", "message")],
    }
    workflow_id = await register(client, document)
    body = await execute(client, workflow_id, {"message": "hi"})
    total_us = _integer_pair(body)
    assert total_us >= 30_000
    response = await client.get(f"/api/executions/{body['execution_id']}/events")
    events = await response.json()
    completed = {e["node_id"]: e for e in events if e["type"] == "NodeCompleted"}
    assert _integer_pair(completed["wait"]) >= 30_000
    assert _integer_pair(completed["log"]) < total_us
    finished = events[-1]
    assert finished["type"] == "WorkflowCompleted"
    assert _integer_pair(finished) == total_us
    # The event text itself has no fraction (a typed client parsing u64 must not see "8.637").
    text = await (await client.get(f"/api/executions/{body['execution_id']}/events")).text()
    assert '"duration_ms":' in text and "." not in text.split('"duration_ms":')[1].split(",")[0]

    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert _integer_pair(record) == total_us
    assert [_integer_pair(entry) for entry in record["nodes"]] == [
        completed["wait"]["duration_us"],
        completed["log"]["duration_us"],
    ]
    page = await (await client.get(f"/api/executions?workflow_id={workflow_id}")).json()
    assert _integer_pair(page["executions"][0]) == total_us


async def test_failed_nodes_report_integer_durations(client):
    workflow_id = await register(client, {"name": "bad", "nodes": [node("parse", "transform.json_parse", json="{no")]})
    body = await execute(client, workflow_id, expect=500)
    _integer_pair(body)
    events = await (await client.get(f"/api/executions/{body['execution_id']}/events")).json()
    failed = [e for e in events if e["type"] == "NodeFailed"]
    assert len(failed) == 1
    _integer_pair(failed[0])


async def test_durations_are_stored_as_integers(client):
    workflow_id = await register(client, {"name": "one", "nodes": [node("log", "debug.log", message="x")]})
    body = await execute(client, workflow_id)
    store = client.app[STORE]
    await store.flush()
    rows = await store._query("SELECT duration_ms, typeof(duration_us) AS kind, duration_us FROM executions WHERE id = ?",
                              (body["execution_id"],))
    assert rows == [{"duration_ms": body["duration_ms"], "kind": "integer", "duration_us": body["duration_us"]}]


_LEGACY_NODES = [{"node_id": "a", "node_type": "debug.log", "status": "succeeded", "attempts": 1,
                  "started_at": "2026-11-28T10:00:00.000Z", "duration_ms": 2.718, "outputs": None, "error": None,
                  "cached": False}]


def _legacy_database(path: str) -> None:
    """A database as the previous release made it: no duration_us column, fractional ms."""
    old_schema = _SCHEMA.replace(",\n    duration_us INTEGER", "")
    assert old_schema != _SCHEMA
    db = sqlite3.connect(path)
    db.executescript(old_schema)
    db.execute(
        "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, status, started_at, finished_at,"
        " duration_ms, attempts, nodes, events) VALUES ('old', 'gone', 1, '{\"type\":\"manual\",\"id\":null}', '{}',"
        " 'succeeded', '2026-11-28T10:00:00.000Z', '2026-11-28T10:00:00.009Z', 8.637, 1, ?, '[]')",
        (json.dumps(_LEGACY_NODES),),
    )
    db.commit()
    db.close()


async def test_rows_from_before_integer_durations_are_converted_on_read(make_client, config):
    _legacy_database(config.db)
    client = await make_client(app=None)
    record = await (await client.get("/api/executions/old")).json()
    assert (record["duration_ms"], record["duration_us"]) == (8, 8637)
    assert [(entry["duration_ms"], entry["duration_us"]) for entry in record["nodes"]] == [(2, 2718)]
    page = await (await client.get("/api/executions")).json()
    assert [(row["id"], row["duration_ms"], row["duration_us"]) for row in page["executions"]] == [("old", 8, 8637)]
    # New executions on the upgraded database store both.
    workflow_id = await register(client, {"name": "new", "nodes": [node("log", "debug.log", message="x")]})
    body = await execute(client, workflow_id)
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert (record["duration_ms"], record["duration_us"]) == (body["duration_ms"], body["duration_us"])


async def test_openapi_declares_integer_durations(client):
    spec = await (await client.get("/openapi.json")).json()
    for name in ("ExecutionResult", "ExecutionSummary", "NodeRecord"):
        properties = spec["components"]["schemas"][name]["properties"]
        assert "integer" in json.dumps(properties["duration_ms"]) and "integer" in json.dumps(properties["duration_us"])
        assert "number" not in json.dumps(properties["duration_ms"])


async def test_started_and_finished_at_are_as_far_apart_as_the_duration(client):
    # Both moments are whole milliseconds on the wall clock, the finish being the start plus the
    # duration measured on the monotonic clock: they differ by the truncated duration, or one
    # millisecond more when the start's dropped fraction and the duration's add up past one.
    document = {"name": "timed", "nodes": [node("wait", "time.delay", delay_ms=25)], "connections": []}
    workflow_id = await register(client, document)
    body = await execute(client, workflow_id, {})
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    started, finished = (
        datetime.strptime(record[name], "%Y-%m-%dT%H:%M:%S.%f%z") for name in ("started_at", "finished_at")
    )
    apart_ms = (finished - started) // timedelta(milliseconds=1)
    assert body["duration_ms"] >= 25
    assert apart_ms in (body["duration_ms"], body["duration_ms"] + 1), (record, body)
