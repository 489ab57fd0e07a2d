"""What keeps one request, one execution or one stored row from taking the server down:
registration is all or nothing, a damaged store still starts, records and documents are
bounded, and answers wait for the history to be on disk."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from contextlib import closing

from flowengine.lib.logthrottle import ThrottledLog
from flowengine.server.keys import CATALOG, RUNS, STORE

from support.api import execute, link, node, register

NEVER_FIRES = {
    "name": "never",
    "nodes": [node("a", "debug.log")],
    "triggers": [{"id": "t", "trigger_type": {"type": "Cron", "expression": "0 0 * * 7/1"}}],
}


async def test_a_cron_that_never_fires_is_refused_and_nothing_is_stored(client):
    response = await client.post("/api/workflows", json={"id": "never", **NEVER_FIRES})
    assert response.status == 400
    assert "triggers[0].trigger_type.expression" in (await response.json())["error"]
    assert (await client.get("/api/workflows/never")).status == 404
    assert (await client.get("/api/workflows")).status == 200


async def test_damaged_rows_in_the_store_do_not_stop_start_up(make_client, config):
    first = await make_client()
    await register(first, {"id": "fine", "name": "fine", "nodes": [node("a", "debug.log")]})
    for damaged in ("bad-json", "bad-cron", "bad-type"):
        await register(first, {"id": damaged, "name": damaged, "nodes": [node("a", "debug.log")]})
    await first.close()
    with closing(sqlite3.connect(config.db)) as db:  # what an old version or a bad disk left
        db.execute("UPDATE workflows SET document = '{not json' WHERE id = 'bad-json'")
        db.execute("UPDATE workflows SET document = ? WHERE id = 'bad-cron'", (json.dumps(NEVER_FIRES),))
        broken_type = {"name": "t", "nodes": [{"id": "a", "node_type": "gone.plugin"}]}
        db.execute("UPDATE workflows SET document = ? WHERE id = 'bad-type'", (json.dumps(broken_type),))
        db.commit()

    second = await make_client()
    assert (await second.get("/health")).status == 200
    assert (await second.get("/api/workflows/fine")).status == 200
    for damaged in ("bad-json", "bad-cron", "bad-type"):
        response = await second.get(f"/api/workflows/{damaged}")
        assert response.status == 404
        assert "cannot be loaded" in (await response.json())["error"]
    # PUT repairs one, DELETE removes another.
    response = await second.put("/api/workflows/bad-cron", json={"name": "repaired", "nodes": [node("a", "debug.log")]})
    assert response.status == 200 and (await response.json())["version"] == 2
    assert (await second.delete("/api/workflows/bad-json")).status == 200
    assert sorted(item["id"] for item in await (await second.get("/api/workflows")).json()) == ["bad-cron", "fine"]


async def test_a_registration_that_fails_half_way_stores_nothing(make_client, config):
    client = await make_client()
    await register(client, {"id": "kept", "name": "version 1", "nodes": [node("a", "debug.log")]})

    def broken_listener(workflow_id, workflow):
        if workflow is not None and workflow.name == "poison":
            raise RuntimeError("a listener's bug")

    client.app[CATALOG].listeners.append(broken_listener)
    response = await client.post("/api/workflows", json={"id": "new", "name": "poison"})
    assert response.status == 500
    assert (await response.json()) == {"error": "internal error"}
    response = await client.put("/api/workflows/kept", json={"name": "poison"})
    assert response.status == 500
    assert (await client.get("/api/workflows/new")).status == 404
    kept = await (await client.get("/api/workflows/kept")).json()
    assert (kept["name"], kept["version"]) == ("version 1", 1)
    await client.close()

    restarted = await make_client()  # and nothing of either write reached the database
    assert (await restarted.get("/api/workflows/new")).status == 404
    kept = await (await restarted.get("/api/workflows/kept")).json()
    assert (kept["name"], kept["version"]) == ("version 1", 1)
    versions = await (await restarted.get("/api/workflows/kept/versions")).json()
    assert [entry["version"] for entry in versions] == [1]
    response = await restarted.put("/api/workflows/kept", json={"name": "version 2"})
    assert (await response.json())["version"] == 2


async def test_connections_per_workflow_are_limited(make_client):
    client = await make_client(max_workflow_connections=3)
    document = {
        "name": "wide",
        "nodes": [node("a", "time.delay", delay_ms=0), node("b", "time.delay", delay_ms=0)],
        "connections": [link("a", f"p{index}", "b", f"p{index}") for index in range(4)],
    }
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("connections: 4 connections is over the limit of 3")
    document["connections"] = document["connections"][:3]
    await register(client, document)


FAILING_RETRIED = {
    "name": "retries",
    "nodes": [
        {
            **node("parse", "transform.json_parse", json="not json"),
            "retry_policy": {"max_attempts": 20, "delay_ms": 0, "backoff_multiplier": 1},
        }
    ],
    "settings": {"on_error": {"RetryWorkflow": {"max_attempts": 10}}},
}


async def test_the_record_of_an_execution_is_capped_and_says_what_it_left_out(make_client):
    client = await make_client(max_recorded_events=50)
    workflow_id = await register(client, FAILING_RETRIED)
    ws = await client.ws_connect(f"/api/events?workflow_id={workflow_id}")
    body = await execute(client, workflow_id, expect=500)
    assert body["attempts"] == 10
    live = []
    while not live or live[-1]["type"] != "WorkflowCompleted":
        live.append(json.loads((await ws.receive(timeout=5)).data))
    await ws.close()
    # 10 workflow attempts x (NodeStarted, 19 Warnings, NodeFailed) + 9 RetryWorkflow warnings
    # + WorkflowStarted + WorkflowCompleted: all of them live, in order.
    assert len(live) == 10 * 21 + 9 + 2
    assert [event["seq"] for event in live] == list(range(1, len(live) + 1))

    recorded = await (await client.get(f"/api/executions/{body['execution_id']}/events")).json()
    assert len(recorded) == 51
    marker = recorded[25]
    dropped = len(live) - 50
    assert marker["event"]["events_dropped"] == dropped
    assert (marker["event"]["first_dropped_seq"], marker["event"]["last_dropped_seq"]) == (26, 25 + dropped)
    assert recorded[:25] == live[:25] and recorded[26:] == live[-25:]
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert record["status"] == "failed"
    assert [(entry["node_id"], entry["status"]) for entry in record["nodes"]] == [("parse", "failed")]


class _StalledWriter:
    """Holds the store's writer thread inside its next commit until released."""

    def __init__(self, store) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._commit = store._commit
        store._commit = self._stalled_commit

    def _stalled_commit(self, batch):
        self.entered.set()
        assert self.release.wait(30)
        return self._commit(batch)


async def test_answers_wait_for_the_history_and_a_full_queue_makes_new_work_wait(make_client, monkeypatch):
    client = await make_client(history_queue_bytes=64 * 1024, history_queue_wait=0.3)
    workflow_id = await register(client, {"name": "w", "nodes": [node("a", "time.delay", delay_ms=0)]})
    writer = _StalledWriter(client.app[STORE])
    url = f"/api/workflows/{workflow_id}/execute"
    big = {"inputs": {"payload": "x" * 100_000}}
    pending = asyncio.ensure_future(client.post(url + "?wait=false", json=big))
    await asyncio.get_running_loop().run_in_executor(None, writer.entered.wait, 5)
    await asyncio.sleep(0.2)
    assert not pending.done()  # no 202 while its start row is not on disk

    # The queue now holds more than FLOWENGINE_HISTORY_QUEUE_BYTES: new work waits, then 503.
    response = await client.post(url, json={})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert "FLOWENGINE_HISTORY_QUEUE_BYTES" in (await response.json())["error"]
    waiting = asyncio.ensure_future(client.post(url, json={}))
    await asyncio.sleep(0.1)
    writer.release.set()
    accepted = await pending
    assert accepted.status == 202
    assert (await waiting).status == 200
    execution_id = (await accepted.json())["execution_id"]
    for _ in range(100):
        record = await (await client.get(f"/api/executions/{execution_id}")).json()
        if record["status"] != "running":
            break
        await asyncio.sleep(0.02)
    assert record["status"] == "succeeded"
    assert client.app[RUNS].store.uncommitted_bytes == 0


async def test_the_async_mode_answers_before_the_commit(make_client):
    client = await make_client(history_ack="async")
    workflow_id = await register(client, {"name": "w", "nodes": [node("a", "time.delay", delay_ms=0)]})
    writer = _StalledWriter(client.app[STORE])
    first = await client.post(f"/api/workflows/{workflow_id}/execute", json={})
    assert first.status == 200  # answered with the writer stalled: the documented window
    second = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={})
    assert second.status == 202
    writer.release.set()


def test_throttled_log_summarises_repeats(caplog):
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("test.throttle"), interval=60, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="test.throttle")
    for _ in range(1000):
        throttled.warning(("refused",), "refused %s", "x")
    throttled.warning(("other",), "other")
    now[0] = 61
    throttled.warning(("refused",), "refused %s", "y")
    assert [record.getMessage() for record in caplog.records] == [
        "refused x",
        "other",
        "refused y (and 999 more like it in the last 60 s)",
    ]


async def test_event_trigger_refusals_do_not_flood_the_log(make_client, caplog):
    client = await make_client()
    source = await register(client, {"name": "source", "nodes": [node("a", "time.delay", delay_ms=0)]})
    for index in range(70):  # more listeners than one chain may start
        await register(
            client,
            {
                "name": f"listener {index}",
                "nodes": [node("a", "time.delay", delay_ms=0)],
                "triggers": [{"trigger_type": {"type": "Event", "event_type": "WorkflowCompleted", "workflow_id": source}}],
            },
        )
    caplog.set_level(logging.WARNING, logger="flowengine.runtime.triggers")
    await execute(client, source)
    await asyncio.sleep(0.5)
    refusals = [record for record in caplog.records if "not started" in record.getMessage()]
    assert len(refusals) == 1, [record.getMessage() for record in refusals]


async def test_a_deleted_workflows_metrics_series_go_with_it(client):
    workflow_id = await register(client, {"name": "short-lived", "nodes": [node("a", "time.delay", delay_ms=0)]})
    await execute(client, workflow_id)
    assert f'workflow="{workflow_id}"' in await (await client.get("/metrics")).text()
    assert (await client.delete(f"/api/workflows/{workflow_id}")).status == 200
    assert f'workflow="{workflow_id}"' not in await (await client.get("/metrics")).text()


async def test_a_stored_cron_whose_meaning_changed_is_reported_at_start_up(make_client, config, caplog):
    first = await make_client()
    await register(first, {"id": "sundays", "name": "s", "nodes": [node("a", "debug.log")]})
    await first.close()
    document = {"name": "s", "nodes": [node("a", "debug.log")],
                "triggers": [{"id": "weekly", "trigger_type": {"type": "Cron", "expression": "0 0 * * SUN-SUN"}}]}
    with closing(sqlite3.connect(config.db)) as db:  # stored by a version that read SUN-SUN as every day
        db.execute("UPDATE workflows SET document = ? WHERE id = 'sundays'", (json.dumps(document),))
        db.commit()
    caplog.set_level(logging.WARNING, logger="flowengine")
    second = await make_client()
    assert (await second.get("/api/workflows/sundays")).status == 200
    notes = [record.getMessage() for record in caplog.records if "weekly" in record.getMessage()]
    assert len(notes) == 1 and "Sunday only" in notes[0], notes
