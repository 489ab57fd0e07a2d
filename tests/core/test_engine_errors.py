"""Failures through the HTTP API: the on_error policies, per-node retries with backoff, and the
per-node and workflow-wide time limits."""

from __future__ import annotations

import asyncio
from typing import Any

from flowengine.nodes import NodeContext, NodeError, NodeType, Port
from flowengine.server.keys import ENGINE

from support.api import execute, link, node, register, typed
from support.engine import FAIL, HANG, FakeSleep, Flaky, Probe, finish, start, workflow
from support.websocket import receive_until


def tripwire() -> tuple[asyncio.Event, NodeType]:
    """A node type that fails when the test says so (to fail while siblings are running)."""
    pulled = asyncio.Event()

    async def run(ctx: NodeContext) -> dict[str, Any]:
        await pulled.wait()
        raise NodeError("tripped")

    return pulled, NodeType(
        type="test.tripwire", description="Test", category="test", run=run, outputs=(Port("out"),)
    )


async def test_stop_workflow_cancels_running_nodes_and_starts_no_new_ones(make_client, config):
    probe = Probe()
    probe.release.clear()
    pulled, wire = tripwire()
    client = await start(make_client, config, probe.node_type(), wire)
    workflow_id = await register(
        client,
        workflow(
            [node("p1", "test.probe"), node("p2", "test.probe"), node("x", "test.tripwire"), node("later", "test.probe")],
            [link("p1", "out", "later", "a"), link("x", "out", "later", "b")],
        ),
    )
    ws = await client.ws_connect(f"/api/events?workflow_id={workflow_id}")
    running = asyncio.create_task(execute(client, workflow_id, expect=500))
    await probe.wait_until(lambda: probe.running == 2)
    pulled.set()
    body = await finish(running, probe)
    assert body["error"] == "Node execution failed: node 'x' (test.tripwire): tripped"
    assert body["execution_id"]
    assert body["status"] == "failed"
    assert body["failed_nodes"] == [{"node_id": "x", "error": "tripped"}]
    assert sorted(body["cancelled_nodes"]) == ["p1", "p2"]
    assert sorted(probe.cancelled) == ["p1", "p2"]
    assert probe.finished == [] and "later" not in probe.started
    events = await receive_until(ws)
    started = [event["node_id"] for event in events if event["type"] == "NodeStarted"]
    assert sorted(started) == ["p1", "p2", "x"]
    assert events[-1]["success"] is False and events[-1]["status"] == "failed"
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    await ws.close()


async def test_continue_on_error_runs_everything_else(make_client, config):
    client = await start(make_client, config, FAIL)
    workflow_id = await register(
        client,
        workflow(
            [
                node("bad", "test.fail", reason="no luck"),
                node("good", "transform.set", v=1),
                node("after_bad", "debug.log"),
                node("after_after", "debug.log"),
                node("after_good", "debug.log"),
                node("join", "control.merge"),
            ],
            [
                link("bad", "out", "after_bad", "message"),
                link("after_bad", "message", "after_after", "message"),
                link("good", "v", "after_good", "message"),
                link("bad", "out", "join", "from_bad"),
                link("good", "v", "join", "from_good"),
            ],
            on_error="ContinueOnError",
        ),
    )
    body = await execute(client, workflow_id)
    assert "error" not in body
    assert body["status"] == "completed_with_errors"
    assert body["failed_nodes"] == [{"node_id": "bad", "error": "no luck"}]
    assert sorted(body["skipped_nodes"]) == ["after_after", "after_bad"]
    assert body["completed_nodes"] == 3
    assert body["outputs"] == {
        "after_good": {"message": typed(1)},
        "join": {"merged": {"type": "Object", "value": {"from_good": typed(1)}}},
    }


async def test_retry_workflow_reruns_the_whole_workflow_under_one_execution_id(make_client, config):
    flaky = Flaky(failures=2)
    seen: list[str] = []

    def counting(ctx: NodeContext) -> dict[str, Any]:
        seen.append(ctx.execution_id)
        return {"out": len(seen)}

    counter = NodeType(type="test.count", description="Test", category="test", run=counting, outputs=(Port("out"),))
    client = await start(make_client, config, flaky.node_type(), counter)
    document = workflow(
        [node("first", "test.count"), node("f", "test.flaky")],
        [link("first", "out", "f", "in")],
        on_error={"RetryWorkflow": {"max_attempts": 3}},
    )
    workflow_id = await register(client, document)
    ws = await client.ws_connect(f"/api/events?workflow_id={workflow_id}")
    body = await execute(client, workflow_id)
    assert body["status"] == "succeeded"
    assert body["attempts"] == 3
    assert seen == [body["execution_id"]] * 3  # every node ran again, in the same execution
    assert body["outputs"] == {"f": {"out": typed(1)}}  # a fresh pass: node attempt 1
    events = await receive_until(ws)
    assert {event["execution_id"] for event in events} == {body["execution_id"]}
    assert [event["type"] for event in events].count("WorkflowStarted") == 1
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    warnings = [event["event"]["message"] for event in events if event["type"] == "NodeEvent"]
    assert len(warnings) == 2 and all("RetryWorkflow" in message for message in warnings)
    await ws.close()

    # Out of attempts: the last failure is the error, and the attempts are counted.
    flaky.calls.clear()
    flaky.failures = 5
    failed = await execute(client, workflow_id, expect=500)
    assert failed["attempts"] == 3
    assert failed["error"] == "Node execution failed: node 'f' (test.flaky): failure 3"


def retrying(node_document: dict, **policy: Any) -> dict:
    return {**node_document, "retry_policy": policy}


async def test_node_retry_policy_backs_off_exponentially_up_to_max_delay(make_client, config):
    flaky = Flaky(failures=4)
    client = await start(make_client, config, flaky.node_type())
    sleep = client.app[ENGINE].sleep = FakeSleep()
    policy = {"max_attempts": 5, "delay_ms": 100, "backoff_multiplier": 3, "max_delay_ms": 1000}
    workflow_id = await register(client, workflow([retrying(node("f", "test.flaky"), **policy)]))
    ws = await client.ws_connect(f"/api/events?workflow_id={workflow_id}")
    body = await execute(client, workflow_id)
    assert body["outputs"] == {"f": {"out": typed(5)}}  # succeeded on its fifth attempt
    assert sleep.delays == [0.1, 0.3, 0.9, 1.0]  # 100 * 3^k ms, capped at max_delay_ms
    events = await receive_until(ws)
    warnings = [event["event"] for event in events if event["type"] == "NodeEvent"]
    assert [w["delay_ms"] for w in warnings] == [100, 300, 900, 1000]
    assert [w["event_type"] for w in warnings] == ["Warning"] * 4
    assert [w["attempt"] for w in warnings] == [1, 2, 3, 4]
    assert warnings[0]["message"] == "attempt 1 of 5 failed: failure 1; retrying in 100 ms"
    await ws.close()

    # Out of attempts: the node fails with its last error, after max_attempts - 1 waits.
    flaky.calls.clear()
    sleep.delays.clear()
    short_id = await register(client, workflow([retrying(node("f", "test.flaky"), **{**policy, "max_attempts": 3})]))
    body = await execute(client, short_id, expect=500)
    assert body["error"] == "Node execution failed: node 'f' (test.flaky): failure 3"
    assert sleep.delays == [0.1, 0.3]


async def test_retry_on_timeout(make_client, config):
    flaky = Flaky(failures=1, hang=True)
    client = await start(make_client, config, flaky.node_type())
    sleep = client.app[ENGINE].sleep = FakeSleep()
    policy = {"max_attempts": 3, "delay_ms": 10}
    no_retry = await register(
        client,
        workflow([{**retrying(node("f", "test.flaky"), **policy, retry_on_timeout=False), "timeout_ms": 20}]),
    )
    body = await execute(client, no_retry, expect=500)
    assert body["error"] == "Node execution failed: node 'f' (test.flaky): timed out after 20 ms (timeout_ms)"
    assert flaky.calls == {"f": 1} and sleep.delays == []

    flaky.calls.clear()
    retry = await register(
        client, workflow([{**retrying(node("f", "test.flaky"), **policy, retry_on_timeout=True), "timeout_ms": 20}])
    )
    body = await execute(client, retry)
    assert body["outputs"] == {"f": {"out": typed(2)}}
    assert flaky.calls == {"f": 2} and sleep.delays == [0.01]


async def test_node_timeout_and_workflow_time_limit_say_which_limit(make_client, config):
    probe = Probe()
    probe.release.clear()
    client = await start(make_client, config, HANG, probe.node_type())
    node_limit = await register(client, workflow([{**node("h", "test.hang"), "timeout_ms": 30}]))
    body = await execute(client, node_limit, expect=500)
    assert body["error"] == "Node execution failed: node 'h' (test.hang): timed out after 30 ms (timeout_ms)"
    assert body["failed_nodes"] == [{"node_id": "h", "error": "timed out after 30 ms (timeout_ms)"}]

    # The workflow limit holds even when every node is patient, and even under ContinueOnError.
    workflow_limit = await register(
        client,
        workflow(
            [node("p", "test.probe"), node("next", "debug.log")],
            [link("p", "out", "next", "message")],
            max_execution_time_ms=40,
            on_error="ContinueOnError",
        ),
    )
    body = await execute(client, workflow_limit, expect=500)
    assert body["error"] == "Workflow execution timed out: exceeded max_execution_time_ms (40 ms)"
    assert body["status"] == "failed"
    assert body["cancelled_nodes"] == ["p"] and probe.cancelled == ["p"]
    assert body["completed_nodes"] == 0
