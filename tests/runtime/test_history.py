"""Execution history, background runs, cancel, retry, versions and retention."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

from flowengine.errors import NodeError
from flowengine.nodes import NodeType, Port
from flowengine.server.app import make_app
from flowengine.server.keys import REGISTRY, STORE

from support.api import execute, link, node, register
from support.websocket import receive_until


def _counting_types(calls: dict[str, int], fail: dict[str, bool]) -> list[NodeType]:
    def count(ctx):
        calls[ctx.node_id] = calls.get(ctx.node_id, 0) + 1
        return {"value": calls[ctx.node_id]}

    def flaky(ctx):
        calls[ctx.node_id] = calls.get(ctx.node_id, 0) + 1
        if fail["on"]:
            raise NodeError("flaky is failing")
        return {"value": ctx.input("value")}

    return [
        NodeType("test.count", "counts its runs", "test", count, outputs=(Port("value"),)),
        NodeType("test.flaky", "fails while told to", "test", flaky, inputs=(Port("value"),), outputs=(Port("value"),)),
    ]


@pytest.fixture
async def counting(make_client, config):
    calls: dict[str, int] = {}
    fail = {"on": True}
    app = make_app(config)
    for node_type in _counting_types(calls, fail):
        app[REGISTRY].register(node_type)
    client = await make_client(app=app)
    return client, calls, fail


async def _wait_for_status(client, execution_id: str, wanted: str, timeout: float = 5.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/api/executions/{execution_id}")
        record = await response.json()
        if record.get("status") == wanted:
            return record
        assert asyncio.get_running_loop().time() < deadline, record
        await asyncio.sleep(0.02)


def _chain() -> dict:
    return {
        "name": "chain",
        "nodes": [node("a", "transform.set", greeting="hi"), node("b", "debug.log")],
        "connections": [link("a", "greeting", "b", "message")],
    }


def _slow(delay_ms: int = 10_000) -> dict:
    return {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=delay_ms)], "connections": []}


async def test_execution_is_recorded_with_nodes_inputs_and_events(client):
    workflow_id = await register(client, _chain())
    result = await execute(client, workflow_id, {"who": "world"})
    response = await client.get(f"/api/executions/{result['execution_id']}")
    assert response.status == 200
    record = await response.json()
    assert record["id"] == result["execution_id"]
    assert record["workflow_id"] == workflow_id
    assert record["workflow_version"] == 1
    assert record["trigger"] == {"type": "manual", "id": None}
    assert record["inputs"] == {"who": {"type": "String", "value": "world"}}
    assert record["status"] == "succeeded"
    assert record["attempts"] == 1
    assert record["started_at"].endswith("Z") and record["finished_at"].endswith("Z")
    assert record["duration_ms"] >= 0
    by_id = {entry["node_id"]: entry for entry in record["nodes"]}
    assert by_id["a"]["status"] == "succeeded" and by_id["a"]["attempts"] == 1
    assert by_id["b"]["outputs"] == {"message": {"type": "String", "value": "hi"}}
    assert by_id["a"]["started_at"].endswith("Z")

    events = await (await client.get(f"/api/executions/{result['execution_id']}/events")).json()
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "WorkflowStarted" and events[-1]["type"] == "WorkflowCompleted"
    assert events[0]["trigger"] == {"type": "manual", "id": None}
    # The first and last events are stamped with the execution's own start and finish times.
    assert (events[0]["timestamp"], events[-1]["timestamp"]) == (record["started_at"], record["finished_at"])


async def test_unknown_execution_is_404(client):
    for method, path in (
        ("GET", "/api/executions/nope"),
        ("GET", "/api/executions/nope/events"),
        ("DELETE", "/api/executions/nope"),
        ("POST", "/api/executions/nope/cancel"),
        ("POST", "/api/executions/nope/retry"),
    ):
        response = await client.request(method, path)
        assert response.status == 404, path
        assert "nope" in (await response.json())["error"]


async def test_list_filters_and_cursor_pagination(client):
    first = await register(client, _chain())
    failing = await register(
        client, {"name": "fails", "nodes": [node("g", "transform.get", path="x")], "connections": []}
    )
    ids = [(await execute(client, first))["execution_id"] for _ in range(5)]
    failed = await execute(client, failing, {"value": {"y": 1}}, expect=500)

    everything = await (await client.get("/api/executions")).json()
    assert [item["id"] for item in everything["executions"]] == [failed["execution_id"], *reversed(ids)]
    assert everything["next"] is None

    seen = []
    cursor = None
    while True:
        query = "/api/executions?workflow_id=" + first + "&limit=2" + (f"&before={cursor}" if cursor else "")
        page = await (await client.get(query)).json()
        assert len(page["executions"]) <= 2
        seen.extend(item["id"] for item in page["executions"])
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))

    only_failed = await (await client.get("/api/executions?status=failed")).json()
    assert [item["id"] for item in only_failed["executions"]] == [failed["execution_id"]]
    assert only_failed["executions"][0]["error"].startswith("Node execution failed: node 'g'")

    bad = await client.get("/api/executions?status=exploded")
    assert bad.status == 400 and "exploded" in (await bad.json())["error"]
    bad = await client.get("/api/executions?limit=zero")
    assert bad.status == 400


async def test_wait_false_answers_202_then_completes(client):
    # Half a second: the GET below must come while it runs, even on a busy machine.
    workflow_id = await register(client, _slow(delay_ms=500))
    response = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={})
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "running"
    assert response.headers["Location"] == f"/api/executions/{body['execution_id']}"
    running = await (await client.get(response.headers["Location"])).json()
    assert running["status"] == "running"
    assert running["nodes"][0]["status"] == "running"
    record = await _wait_for_status(client, body["execution_id"], "succeeded")
    assert record["nodes"][0]["status"] == "succeeded"


async def test_cancel_background_execution(client):
    workflow_id = await register(client, _slow())
    body = await (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).json()
    execution_id = body["execution_id"]
    delete = await client.delete(f"/api/executions/{execution_id}")
    assert delete.status == 409
    response = await client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"
    record = await _wait_for_status(client, execution_id, "cancelled")
    assert record["nodes"][0]["status"] == "cancelled"
    events = await (await client.get(f"/api/executions/{execution_id}/events")).json()
    assert events[-1]["type"] == "WorkflowCompleted"
    assert events[-1]["success"] is False and events[-1]["status"] == "cancelled"
    again = await client.post(f"/api/executions/{execution_id}/cancel")
    assert again.status == 409
    assert "already finished" in (await again.json())["error"]


async def test_cancel_answers_the_synchronous_caller(client):
    workflow_id = await register(client, _slow())
    caller = asyncio.ensure_future(client.post(f"/api/workflows/{workflow_id}/execute", json={}))
    for _ in range(250):
        running = (await (await client.get("/api/executions?status=running")).json())["executions"]
        if running:
            break
        await asyncio.sleep(0.02)
    assert running, "the execution never showed up as running"
    cancel = await client.post(f"/api/executions/{running[0]['id']}/cancel")
    assert cancel.status == 200
    response = await asyncio.wait_for(caller, 5)
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "cancelled"
    assert body["execution_id"] == running[0]["id"]


async def test_retry_reruns_everything_and_from_failure_only_what_failed(counting):
    client, calls, fail = counting
    workflow_id = await register(
        client,
        {
            "name": "flaky",
            "nodes": [node("source", "test.count"), node("step", "test.flaky")],
            "connections": [link("source", "value", "step", "value")],
        },
    )
    original = await execute(client, workflow_id, {"n": 7}, expect=500)
    assert calls == {"source": 1, "step": 1}

    fail["on"] = False
    resumed = await client.post(f"/api/executions/{original['execution_id']}/retry", json={"from_failure": True})
    body = await resumed.json()
    assert resumed.status == 200, body
    assert body["status"] == "succeeded"
    assert calls == {"source": 1, "step": 2}  # the source was not run again
    assert body["outputs"] == {"step": {"value": {"type": "Number", "value": 1}}}
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert record["retry_of"] == original["execution_id"]
    assert record["inputs"] == {"n": {"type": "Number", "value": 7}}
    events = await (await client.get(f"/api/executions/{body['execution_id']}/events")).json()
    cached = [event for event in events if event["type"] == "NodeCompleted" and event["node_id"] == "source"]
    assert cached[0]["cached"] is True

    full = await client.post(f"/api/executions/{original['execution_id']}/retry")
    assert (await full.json())["status"] == "succeeded"
    assert calls == {"source": 2, "step": 3}

    background = await client.post(f"/api/executions/{original['execution_id']}/retry?wait=false")
    assert background.status == 202
    assert (await background.json())["retry_of"] == original["execution_id"]


async def test_versions_are_kept_and_executions_record_theirs(client):
    workflow_id = await register(client, _chain())
    first = await execute(client, workflow_id)
    changed = {**_chain(), "name": "chain v2"}
    response = await client.put(f"/api/workflows/{workflow_id}", json=changed)
    assert (await response.json())["version"] == 2
    second = await execute(client, workflow_id)
    versions = await (await client.get(f"/api/workflows/{workflow_id}/versions")).json()
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
    old = await (await client.get(f"/api/executions/{first['execution_id']}")).json()
    new = await (await client.get(f"/api/executions/{second['execution_id']}")).json()
    assert (old["workflow_version"], new["workflow_version"]) == (1, 2)
    missing = await client.get("/api/workflows/unknown/versions")
    assert missing.status == 404


async def test_deleting_a_workflow_keeps_its_executions(client):
    workflow_id = await register(client, _chain())
    result = await execute(client, workflow_id)
    assert (await client.delete(f"/api/workflows/{workflow_id}")).status == 200
    record = await client.get(f"/api/executions/{result['execution_id']}")
    assert record.status == 200
    assert (await record.json())["workflow_id"] == workflow_id
    retry = await client.post(f"/api/executions/{result['execution_id']}/retry")
    assert retry.status == 409


async def test_delete_execution(client):
    workflow_id = await register(client, _chain())
    result = await execute(client, workflow_id)
    response = await client.delete(f"/api/executions/{result['execution_id']}")
    assert response.status == 200
    assert (await client.get(f"/api/executions/{result['execution_id']}")).status == 404


async def test_retention_prunes_the_oldest(make_client):
    client = await make_client(max_executions=3)
    workflow_id = await register(client, _chain())
    ids = [(await execute(client, workflow_id))["execution_id"] for _ in range(8)]
    listed = await (await client.get("/api/executions")).json()
    assert [item["id"] for item in listed["executions"]] == list(reversed(ids[-3:]))
    assert (await client.get(f"/api/executions/{ids[0]}")).status == 404


async def test_retention_runs_in_passes_holding_at_most_a_tenth_more(make_client):
    # A pass every max_executions / 10 finished executions (here 2): between passes the history
    # holds up to that many more, and each pass brings it back to the limit.
    client = await make_client(max_executions=20)
    workflow_id = await register(client, _chain())
    counts = []
    for _ in range(25):
        await execute(client, workflow_id)
        listed = await (await client.get("/api/executions?limit=100")).json()
        counts.append(len(listed["executions"]))
    assert counts[:20] == list(range(1, 21))
    assert counts[20:] == [21, 20, 21, 20, 21]


async def test_history_survives_a_restart(aiohttp_client, config):
    first = await aiohttp_client(make_app(config))
    workflow_id = await register(first, _chain())
    result = await execute(first, workflow_id)
    await first.close()
    second = await aiohttp_client(make_app(dataclasses.replace(config)))
    record = await second.get(f"/api/executions/{result['execution_id']}")
    assert record.status == 200
    assert (await record.json())["status"] == "succeeded"
    events = json.loads(await (await second.get(f"/api/executions/{result['execution_id']}/events")).text())
    assert events[-1]["type"] == "WorkflowCompleted"


async def test_replay_of_a_finished_execution(client):
    workflow_id = await register(client, _chain())
    result = await execute(client, workflow_id)
    ws = await client.ws_connect(f"/api/events?execution_id={result['execution_id']}&replay=true")
    frames = await receive_until(ws)
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    recorded = await (await client.get(f"/api/executions/{result['execution_id']}/events")).json()
    assert frames == recorded
    await ws.close()

    typed = await client.ws_connect(
        f"/api/events?execution_id={result['execution_id']}&replay=true&types=NodeCompleted,WorkflowCompleted"
    )
    frames = await receive_until(typed)
    assert [frame["type"] for frame in frames] == ["NodeCompleted", "NodeCompleted", "WorkflowCompleted"]
    await typed.close()


async def test_replay_mid_execution_has_no_gap_and_no_duplicate(make_client, config):
    gate = asyncio.Event()

    async def wait_for_gate(ctx):
        ctx.info("waiting for the gate")
        await gate.wait()
        return {"value": "through"}

    app = make_app(config)
    app[REGISTRY].register(
        NodeType("test.gate", "waits for the test", "test", wait_for_gate, inputs=(Port("x"),), outputs=(Port("value"),))
    )
    client = await make_client(app=app)
    workflow_id = await register(
        client,
        {
            "name": "gated",
            "nodes": [node("a", "transform.set", x=1), node("gate", "test.gate"), node("log", "debug.log")],
            "connections": [link("a", "x", "gate", "x"), link("gate", "value", "log", "message")],
        },
    )
    started = await (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).json()
    execution_id = started["execution_id"]
    for _ in range(250):
        so_far = await (await client.get(f"/api/executions/{execution_id}/events")).json()
        if any(event["type"] == "NodeEvent" for event in so_far):
            break
        await asyncio.sleep(0.02)
    assert len(so_far) >= 4  # WorkflowStarted, a started+completed, gate started, its Info
    ws = await client.ws_connect(f"/api/events?execution_id={execution_id}&replay=true")
    gate.set()
    frames = await receive_until(ws)
    seqs = [frame["seq"] for frame in frames]
    assert seqs == list(range(1, len(frames) + 1)), seqs
    assert frames[: len(so_far)] == so_far
    assert frames[-1]["status"] == "succeeded"
    await ws.close()


async def test_replay_errors(client):
    import aiohttp

    with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
        await client.ws_connect("/api/events?execution_id=nope&replay=true")
    assert unknown.value.status == 404
    response = await client.get("/api/events?replay=true", headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 400
    assert "execution_id" in (await response.json())["error"]


async def test_a_lone_surrogate_in_outputs_is_answered_and_recorded(make_client, config):
    def odd(ctx):
        return {"text": "x\udc80y"}  # not encodable as UTF-8: a careless node can produce it

    app = make_app(config)
    app[REGISTRY].register(NodeType("test.odd", "outputs a lone surrogate", "test", odd, outputs=(Port("text"),)))
    client = await make_client(app=app)
    workflow_id = await register(client, {"name": "odd", "nodes": [node("o", "test.odd")]})
    ok = await execute(client, workflow_id)  # a normal JSON answer, the surrogate escaped
    assert ok["outputs"]["o"]["text"]["value"] == "x\udc80y"
    second = await execute(client, workflow_id)
    for result in (ok, second):  # both recorded: one bad value does not lose a batch
        record = await (await client.get(f"/api/executions/{result['execution_id']}")).json()
        assert record["status"] == "succeeded"
        assert record["nodes"][0]["outputs"]["text"]["value"] == "x\udc80y"


async def test_history_commits_gather_under_load_and_flush_does_not_wait_for_the_pause(tmp_path, monkeypatch):
    # Under load the store pauses between commits so batches grow (GroupCommit._pause); a reader
    # (every history query flushes first) must never wait for that pause. With a 60 s pause a
    # reader that waited would time out here.
    from flowengine.runtime import groupcommit
    from flowengine.runtime import store as store_module

    monkeypatch.setattr(groupcommit, "COMMIT_INTERVAL", 60)
    store = store_module.Store(str(tmp_path / "paced.db"))
    await store.open()
    commits: list[int] = []
    commit = store._commit

    def counting_commit(batch):
        commits.append(len(batch))
        time.sleep(0.02)  # a slow disk: writes come in while each commit is under way
        commit(batch)

    store._commit = counting_commit  # type: ignore[method-assign]
    try:
        for index in range(200):  # a write every millisecond or so, as requests arrive
            store.execution_started(f"e{index:03d}", "wf", 1, '{"type":"manual","id":null}', "{}", "2026-11-28T12:00:00.000Z", None)
            await asyncio.sleep(0.001)
        rows = await asyncio.wait_for(store.list_executions(limit=500), 10)
        assert sorted(row["id"] for row in rows) == [f"e{index:03d}" for index in range(200)]
        assert sum(commits) == 200
        assert len(commits) <= 5, commits  # without the pause: a commit every 15 writes or so
    finally:
        await asyncio.wait_for(store.close(), 10)


# -- node records, folded from the recorded events (history.node_records) ---------------------


def _record_of(record: dict) -> dict[str, dict]:
    return {entry["node_id"]: entry for entry in record["nodes"]}


async def test_node_records_of_every_outcome_in_workflow_order(client):
    # ContinueOnError: one node fails, the node after it is skipped, the others succeed.
    document = {
        "name": "outcomes",
        "nodes": [
            node("ok", "transform.set", text="{}"),
            node("bad", "transform.json_parse", json="{not json"),
            node("after_bad", "debug.log"),
            node("parse", "transform.json_parse"),
        ],
        "connections": [link("bad", "parsed", "after_bad", "message"), link("ok", "text", "parse", "json")],
        "settings": {"on_error": "ContinueOnError"},
    }
    workflow_id = await register(client, document)
    result = await execute(client, workflow_id)
    record = await (await client.get(f"/api/executions/{result['execution_id']}")).json()
    assert [entry["node_id"] for entry in record["nodes"]] == ["ok", "bad", "after_bad", "parse"]
    events = await (await client.get(f"/api/executions/{result['execution_id']}/events")).json()
    started = {event["node_id"]: event for event in events if event["type"] == "NodeStarted"}
    by_id = _record_of(record)
    assert by_id["ok"] == {
        "node_id": "ok",
        "node_type": "transform.set",
        "status": "succeeded",
        "attempts": 1,
        "started_at": started["ok"]["timestamp"],
        "duration_ms": by_id["ok"]["duration_ms"],
        "duration_us": by_id["ok"]["duration_us"],
        "outputs": {"text": {"type": "String", "value": "{}"}},
        "error": None,
        "cached": False,
    }
    assert by_id["bad"]["status"] == "failed" and "not valid JSON" in by_id["bad"]["error"]
    assert by_id["bad"]["node_type"] == "transform.json_parse" and by_id["bad"]["attempts"] == 1
    assert by_id["bad"]["outputs"] is None and by_id["bad"]["duration_ms"] >= 0
    assert by_id["after_bad"] == {
        "node_id": "after_bad",
        "node_type": "debug.log",
        "status": "skipped",
        "attempts": 0,
        "started_at": None,
        "duration_ms": None,
        "duration_us": None,
        "outputs": None,
        "error": None,
        "cached": False,
    }
    assert by_id["parse"]["status"] == "succeeded" and by_id["parse"]["outputs"] == {"parsed": {"type": "Json", "value": {}}}


async def test_node_records_list_nodes_that_never_started_as_pending(client):
    document = {
        "name": "stops",
        "nodes": [node("bad", "transform.json_parse", json="{not json"), node("later", "debug.log")],
        "connections": [link("bad", "parsed", "later", "message")],
    }
    workflow_id = await register(client, document)
    result = await execute(client, workflow_id, expect=500)
    by_id = _record_of(await (await client.get(f"/api/executions/{result['execution_id']}")).json())
    assert by_id["bad"]["status"] == "failed"
    assert by_id["later"]["status"] == "pending" and by_id["later"]["node_type"] == "debug.log"

    # Replaced by a new version: the record still lists the nodes of the version that ran.
    document.update(id=workflow_id, nodes=[node("other", "debug.log")], connections=[])
    assert (await client.put(f"/api/workflows/{workflow_id}", json=document)).status == 200
    by_id = _record_of(await (await client.get(f"/api/executions/{result['execution_id']}")).json())
    assert set(by_id) == {"bad", "later"}

    # Deleted: an execution that ended before every node ran kept its records, so nothing is
    # lost.
    assert (await client.delete(f"/api/workflows/{workflow_id}")).status == 200
    record = await (await client.get(f"/api/executions/{result['execution_id']}")).json()
    assert [(entry["node_id"], entry["status"]) for entry in record["nodes"]] == [("bad", "failed"), ("later", "pending")]


async def test_node_records_do_not_borrow_nodes_from_a_recreated_workflow(client):
    # A workflow deleted and created again under the same id continues its version numbers
    # (tests/runtime/test_deleted_workflow_versions.py): the old execution keeps its own nodes.
    document = {"id": "reborn", "name": "first life", "nodes": [node("a", "debug.log", message="hi")]}
    await register(client, document)
    old = await execute(client, "reborn")
    assert (await client.delete("/api/workflows/reborn")).status == 200
    await register(client, {"id": "reborn", "name": "second life", "nodes": [node("x", "debug.log", message="other")]})
    record = await (await client.get(f"/api/executions/{old['execution_id']}")).json()
    assert [(entry["node_id"], entry["status"], entry["node_type"]) for entry in record["nodes"]] == [("a", "succeeded", "debug.log")]


async def test_node_records_count_node_retries_and_keep_only_the_last_workflow_attempt(client):
    calls = {"count": 0}

    def fails_twice(ctx):
        calls["count"] += 1
        if calls["count"] % 3:
            raise NodeError("not yet")
        return {"value": calls["count"]}

    client.app[REGISTRY].register(NodeType("test.fails_twice", "fails twice", "test", fails_twice, outputs=(Port("value"),)))
    retried = {"id": "retried", "node_type": "test.fails_twice", "retry_policy": {"max_attempts": 3, "delay_ms": 0}}
    workflow_id = await register(client, {"name": "retries", "nodes": [retried]})
    result = await execute(client, workflow_id)
    by_id = _record_of(await (await client.get(f"/api/executions/{result['execution_id']}")).json())
    assert by_id["retried"]["attempts"] == 3 and by_id["retried"]["status"] == "succeeded"

    # RetryWorkflow: in the first workflow attempt "first" succeeds and "second" fails; in the
    # second (last) one "first" fails, so "second" never starts. The record is the last attempt's.
    runs = {"count": 0}

    def works_once(ctx):
        runs["count"] += 1
        if runs["count"] > 1:
            raise NodeError("broke")
        return {"value": "{not json"}

    client.app[REGISTRY].register(NodeType("test.works_once", "works once", "test", works_once, outputs=(Port("value"),)))
    document = {
        "name": "workflow retries",
        "nodes": [{"id": "first", "node_type": "test.works_once"}, node("second", "transform.json_parse")],
        "connections": [link("first", "value", "second", "json")],
        "settings": {"on_error": {"RetryWorkflow": {"max_attempts": 2}}},
    }
    workflow_id = await register(client, document)
    result = await execute(client, workflow_id, expect=500)
    assert result["attempts"] == 2
    by_id = _record_of(await (await client.get(f"/api/executions/{result['execution_id']}")).json())
    assert by_id["first"]["status"] == "failed" and by_id["first"]["error"] == "broke"
    assert by_id["second"]["status"] == "pending" and by_id["second"]["error"] is None


@pytest.mark.sqlite_only
async def test_rows_with_stored_node_records_are_still_read(client):
    # Rows written before node records were folded from the events kept them in a column.
    legacy = [{"node_id": "a", "node_type": "debug.log", "status": "succeeded", "attempts": 1, "started_at": "2026-11-28T10:00:00.000Z",
               "duration_ms": 0.5, "outputs": {"message": {"type": "String", "value": "old"}}, "error": None, "cached": False}]
    store = client.app[STORE]
    await store._transaction([(
        "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, status, started_at, finished_at,"
        " duration_ms, attempts, nodes, events) VALUES ('legacy', 'gone', 1, '{\"type\":\"manual\",\"id\":null}', '{}',"
        " 'succeeded', '2026-11-28T10:00:00.000Z', '2026-11-28T10:00:00.001Z', 0.9, 1, ?, '[]')",
        (json.dumps(legacy),),
        1,
    )])
    record = await (await client.get("/api/executions/legacy")).json()
    assert record["nodes"] == [{**legacy[0], "duration_ms": 0, "duration_us": 500}]
