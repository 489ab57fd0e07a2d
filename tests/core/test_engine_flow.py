"""Engine data flow through POST /api/workflows/{id}/execute: ports, branches, merges, inputs,
the response body, and executions that overlap or outlive their workflow's version."""

from __future__ import annotations

import asyncio
import logging

from support.api import execute, link, node, register, typed
from support.engine import CRASH, NEEDS, Probe, finish, start, workflow


async def test_diamond_values_arrive_on_the_right_ports(make_client, config):
    probe = Probe()
    client = await start(make_client, config, probe.node_type())
    workflow_id = await register(
        client,
        workflow(
            [
                node("a", "transform.set", x=2, y=3),
                node("b", "transform.template", template="L${v}"),
                node("c", "transform.template", template="R${v}"),
                node("d", "test.probe"),
            ],
            [
                link("a", "x", "b", "v"),
                link("a", "y", "c", "v"),
                link("b", "text", "d", "left"),
                link("c", "text", "d", "right"),
            ],
        ),
    )
    body = await execute(client, workflow_id)
    assert probe.inputs == {"d": {"left": "L2", "right": "R3"}}
    assert body["status"] == "succeeded"
    assert body["completed_nodes"] == body["total_nodes"] == 4
    assert body["outputs"] == {
        "d": {"out": typed("d"), "in_left": typed("L2"), "in_right": typed("R3")}
    }


async def test_root_inputs_config_fallback_and_typed_inputs(client):
    workflow_id = await register(
        client,
        workflow(
            [
                node("greet", "transform.template", template="${greeting}, ${name}!", greeting="Hello"),
                node("count", "transform.json_stringify"),
            ]
        ),
    )
    body = await execute(
        client, workflow_id, {"name": "Ada", "value": {"type": "Array", "value": [{"type": "Number", "value": 1}]}}
    )
    # 'name' came from the inputs, 'greeting' from the node's config; typed inputs stay typed.
    assert body["outputs"] == {"greet": {"text": typed("Hello, Ada!")}, "count": {"json": typed("[1]")}}


async def test_response_fields(client):
    workflow_id = await register(client, workflow([node("a", "transform.set", n=1), node("b", "debug.log")], [link("a", "n", "b", "message")]))
    response = await client.post(f"/api/workflows/{workflow_id}/execute", json={"inputs": {}})
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) >= {
        "execution_id", "completed_nodes", "total_nodes", "status", "duration_ms",
        "outputs", "failed_nodes", "skipped_nodes", "attempts",
    }
    assert "error" not in body
    assert isinstance(body["execution_id"], str) and len(body["execution_id"]) == 36
    assert (body["completed_nodes"], body["total_nodes"], body["attempts"]) == (2, 2, 1)
    assert isinstance(body["duration_ms"], (int, float)) and body["duration_ms"] >= 0
    assert body["outputs"] == {"b": {"message": {"type": "Number", "value": 1}}}  # sink nodes only
    assert (body["failed_nodes"], body["skipped_nodes"]) == ([], [])


async def test_if_else_branch_and_merge_propagate_skips(client):
    workflow_id = await register(
        client,
        workflow(
            [
                node("check", "control.if", operator="gt", compare=10),
                node("big", "transform.template", template="big ${n}"),
                node("after_big", "debug.log"),
                node("small", "transform.template", template="small ${n}"),
                node("join", "control.merge"),
                node("report", "debug.log"),
            ],
            [
                link("check", "true", "big", "n"),
                link("big", "text", "after_big", "message"),
                link("check", "false", "small", "n"),
                link("big", "text", "join", "big"),
                link("small", "text", "join", "small"),
                link("join", "merged", "report", "message"),
            ],
        ),
    )
    low = await execute(client, workflow_id, {"value": 3})
    assert low["status"] == "succeeded"
    assert sorted(low["skipped_nodes"]) == ["after_big", "big"]
    assert low["completed_nodes"] == 4
    assert low["outputs"] == {
        "report": {"message": {"type": "Object", "value": {"small": typed("small 3")}}},
    }
    high = await execute(client, workflow_id, {"value": 30})
    assert sorted(high["skipped_nodes"]) == ["small"]
    assert high["outputs"]["after_big"] == {"message": typed("big 30")}
    assert high["outputs"]["report"] == {"message": {"type": "Object", "value": {"big": typed("big 30")}}}


async def test_skip_reaches_a_merge_all_of_whose_inputs_were_skipped(client):
    workflow_id = await register(
        client,
        workflow(
            [
                node("check", "control.if"),
                node("left", "debug.log"),
                node("right", "debug.log"),
                node("join", "control.merge"),
                node("end", "debug.log"),
            ],
            [
                link("check", "true", "left", "message"),
                link("check", "true", "right", "message"),
                link("left", "message", "join", "a"),
                link("right", "message", "join", "b"),
                link("join", "merged", "end", "message"),
            ],
        ),
    )
    body = await execute(client, workflow_id, {"value": False})
    assert body["status"] == "succeeded"
    assert sorted(body["skipped_nodes"]) == ["end", "join", "left", "right"]
    assert body["completed_nodes"] == 1
    assert body["outputs"] == {}


async def test_missing_required_input_fails_the_node_naming_the_port(make_client, config):
    client = await start(make_client, config, NEEDS)
    workflow_id = await register(
        client,
        workflow([node("src", "transform.set", x=1), node("n", "test.needs")], [link("src", "x", "n", "extra")]),
    )
    body = await execute(client, workflow_id, expect=500)
    assert body["error"] == "Node execution failed: node 'n' (test.needs): missing required input 'needed'"
    assert body["failed_nodes"] == [{"node_id": "n", "error": "missing required input 'needed'"}]
    # The same port filled from the node's config, or (on a root) from the inputs, is fine.
    config_id = await register(
        client,
        workflow([node("src", "transform.set", x=1), node("n", "test.needs", needed="cfg")], [link("src", "x", "n", "extra")]),
    )
    assert (await execute(client, config_id))["outputs"] == {"n": {"out": typed("cfg")}}
    root_id = await register(client, workflow([node("n", "test.needs")]))
    assert (await execute(client, root_id, {"needed": 7}))["outputs"] == {"n": {"out": typed(7)}}


async def test_a_node_raising_fails_cleanly_with_the_traceback_in_the_log(make_client, config, caplog):
    client = await start(make_client, config, CRASH)
    workflow_id = await register(client, workflow([node("boom", "test.crash")]))
    with caplog.at_level(logging.ERROR, logger="flowengine.core.engine"):
        body = await execute(client, workflow_id, expect=500)
    assert body["error"] == "Node execution failed: node 'boom' (test.crash): KeyError: 'missing-key'"
    assert "Traceback" not in str(body)
    crash_records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert len(crash_records) == 1
    assert "boom" in crash_records[0].getMessage()


async def test_execute_request_errors(client):
    missing = await client.post("/api/workflows/nope/execute", json={"inputs": {}})
    assert missing.status == 404
    assert await missing.json() == {"error": "Workflow nope not found"}
    workflow_id = await register(client, workflow([node("t", "transform.template", template="[${name}]", name="default")]))
    for bad in ([1, 2], "text", 3):
        response = await client.post(f"/api/workflows/{workflow_id}/execute", json={"inputs": bad})
        assert response.status == 400
        assert (await response.json())["error"] == "inputs: expected an object"
    # An empty body, or one without inputs, runs with no inputs.
    for data in (b"", b"{}"):
        response = await client.post(f"/api/workflows/{workflow_id}/execute", data=data)
        assert response.status == 200
        assert (await response.json())["outputs"] == {"t": {"text": typed("[default]")}}


async def test_executions_run_concurrently_and_independently(make_client, config):
    probe = Probe()
    probe.release.clear()
    client = await start(make_client, config, probe.node_type())
    first = await register(client, workflow([node("p", "test.probe")]))
    second = await register(client, workflow([node("p", "test.probe")]))
    requests = [
        asyncio.create_task(execute(client, workflow_id, {"which": f"{workflow_id}-{n}"}))
        for workflow_id in (first, second, first)
        for n in range(2)
    ]
    # All six executions are inside their node body at the same time.
    await probe.wait_until(lambda: probe.running == 6)
    probe.release.set()
    bodies = await finish(asyncio.gather(*requests), probe)
    assert len({body["execution_id"] for body in bodies}) == 6
    assert [body["outputs"]["p"]["in_which"] for body in bodies] == [
        typed(f"{workflow_id}-{n}") for workflow_id in (first, second, first) for n in range(2)
    ]


async def test_replaced_or_deleted_workflow_finishes_on_the_version_it_started_with(make_client, config):
    probe = Probe()
    probe.release.clear()
    client = await start(make_client, config, probe.node_type())
    original = workflow([node("p", "test.probe", tag="v1"), node("after", "debug.log")], [link("p", "out", "after", "message")])
    workflow_id = await register(client, original)
    replaced_run = asyncio.create_task(execute(client, workflow_id))
    await probe.wait_until(lambda: probe.running == 1)
    replacement = {**workflow([node("other", "transform.set", tag="v2")]), "id": workflow_id}
    response = await client.put(f"/api/workflows/{workflow_id}", json=replacement)
    assert response.status == 200, await response.json()
    probe.release.set()
    body = await finish(replaced_run, probe)
    assert body["outputs"] == {"after": {"message": typed("v1")}}
    assert (await execute(client, workflow_id))["outputs"] == {"other": {"tag": typed("v2")}}

    probe.release.clear()
    deleted_id = await register(client, original)
    deleted_run = asyncio.create_task(execute(client, deleted_id))
    await probe.wait_until(lambda: probe.running == 1)
    assert (await client.delete(f"/api/workflows/{deleted_id}")).status == 200
    probe.release.set()
    body = await finish(deleted_run, probe)
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"after": {"message": typed("v1")}}
    assert (await client.post(f"/api/workflows/{deleted_id}/execute")).status == 404


def test_execution_ids_are_version_7_uuids_in_creation_order():
    import time
    import uuid

    from flowengine.core.engine import new_execution_id

    before = time.time_ns() // 1_000_000
    ids = [new_execution_id() for _ in range(1000)]  # crosses several 4 KiB refills, and many in one ms
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # text order is creation order, even within one millisecond
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert before <= parsed.int >> 80 <= after + 1  # the leading 48 bits are Unix milliseconds


def test_execution_ids_keep_their_order_when_the_clock_steps_back(monkeypatch):
    import uuid

    from flowengine.core import engine

    clock = [1_800_000_000_000_000_000]
    monkeypatch.setattr(engine.time, "time_ns", lambda: clock[0])
    first = engine.new_execution_id()
    clock[0] -= 5_000_000_000  # five seconds back, as after an NTP correction
    second = engine.new_execution_id()
    assert second > first
    assert uuid.UUID(second).int >> 80 == uuid.UUID(first).int >> 80 == 1_800_000_000_000
