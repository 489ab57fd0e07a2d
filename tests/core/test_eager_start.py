"""Async node bodies start eagerly: the first step runs inline and a task carries on only if the
body suspends. Whatever the body does in that first step must behave as it would in a task of
its own: timeouts and task groups cancel the node (never the request handler), context
variables stay the node's, and cancellation, errors and the event loop's fairness are as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest
from aiohttp import web

from flowengine.core.engine import Engine
from flowengine.core.events import EventBus
from flowengine.core.model import parse_workflow
from flowengine.nodes import NodeContext, NodeError, NodeType, Port, builtin_registry

from support.api import execute, link, node, register
from support.engine import LoopTurns, register_large, start, workflow
from support.slow import held_route

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("MARK", default="unset")


def body_type(name: str, run: Any) -> NodeType:
    return NodeType(type=name, description="Test", category="test", run=run, any_inputs=True, outputs=(Port("out"),))


async def _pause(ctx: NodeContext) -> dict[str, Any]:
    """Suspends once (a bare yield), so that its successors start from a completion callback,
    where no task is current."""
    await asyncio.sleep(0)
    return {"out": 1}


PAUSE = body_type("test.pause", _pause)


def _after_pause(*node_ids: str, port: str = "in") -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """``first`` (test.pause) followed by each of ``node_ids`` in a chain (into ``port``)."""
    nodes = [node("first", "test.pause")]
    connections = []
    previous = "first"
    for node_id in node_ids:
        connections.append(link(previous, "out", node_id, port))
        previous = node_id
    return nodes, connections


# -- asyncio.current_task() in the first step -------------------------------------------


async def _timeout_in_first_step(ctx: NodeContext) -> dict[str, Any]:
    try:
        async with asyncio.timeout(0.05):  # entered before the body suspends
            await asyncio.Event().wait()
    except TimeoutError:
        raise NodeError("the body's own timeout expired") from None
    return {"out": 1}


@pytest.mark.parametrize("after_pause", [False, True], ids=["started-by-the-request", "started-by-a-callback"])
async def test_a_timeout_entered_in_the_first_step_cancels_the_node_not_the_request(make_client, config, after_pause):
    client = await start(make_client, config, PAUSE, body_type("test.timeout", _timeout_in_first_step))
    if after_pause:
        nodes, connections = _after_pause("timed")
    else:
        nodes, connections = [], []
    nodes.append(node("timed", "test.timeout"))
    nodes.append(node("next", "debug.log"))
    connections.append(link("timed", "out", "next", "message"))
    body = await execute(client, await register(client, workflow(nodes, connections)), expect=500)
    # The request handler was not cancelled: it answered, with the node's own error.
    assert body["status"] == "failed"
    assert body["failed_nodes"] == [{"node_id": "timed", "error": "the body's own timeout expired"}]
    assert body["skipped_nodes"] == [] and body["cancelled_nodes"] == []


async def _timeout_not_reached(ctx: NodeContext) -> dict[str, Any]:
    async with asyncio.timeout(5):
        value = ctx.setting("value", 1)
    await asyncio.sleep(0.06)  # long after the first step; the timeout above was left long ago
    return {"out": value}


async def test_a_timeout_left_in_the_first_step_changes_nothing_later(make_client, config):
    client = await start(make_client, config, body_type("test.early", _timeout_not_reached))
    body = await execute(client, await register(client, workflow([node("early", "test.early", value=7)])))
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"early": {"out": {"type": "Number", "value": 7}}}


async def _child_fails() -> None:
    await asyncio.sleep(0)
    raise ValueError("the child failed")


async def _task_group(ctx: NodeContext) -> dict[str, Any]:
    cancelled = []
    try:
        async with asyncio.TaskGroup() as group:  # the body's task is the group's parent
            group.create_task(_child_fails())
            try:
                await asyncio.Event().wait()  # the group cancels this when the child fails
            except asyncio.CancelledError:
                cancelled.append("waiting")
                raise
    except* ValueError as failures:
        raise NodeError(f"{[str(error) for error in failures.exceptions]} after cancelling {cancelled}") from None
    return {"out": 1}


@pytest.mark.parametrize("after_pause", [False, True], ids=["started-by-the-request", "started-by-a-callback"])
async def test_a_task_group_opened_in_the_first_step_cancels_the_node_not_the_request(make_client, config, after_pause):
    client = await start(make_client, config, PAUSE, body_type("test.group", _task_group))
    nodes, connections = _after_pause("group") if after_pause else ([], [])
    nodes.append(node("group", "test.group"))
    body = await execute(client, await register(client, workflow(nodes, connections)), expect=500)
    assert body["failed_nodes"] == [{"node_id": "group", "error": "['the child failed'] after cancelling ['waiting']"}]


async def _same_task_throughout(ctx: NodeContext) -> dict[str, Any]:
    first = asyncio.current_task()
    await asyncio.sleep(0)
    second = asyncio.current_task()
    await asyncio.sleep(0.001)
    third = asyncio.current_task()
    return {"out": [first is not None, first is second is third, first.cancelling(), first.done()]}


async def test_the_current_task_is_the_same_object_before_and_after_the_body_suspends(make_client, config):
    client = await start(make_client, config, PAUSE, body_type("test.same", _same_task_throughout))
    nodes, connections = _after_pause("late")
    nodes += [node("early", "test.same"), node("late", "test.same")]
    body = await execute(client, await register(client, workflow(nodes, connections)))
    assert body["outputs"]["early"]["out"]["value"] == body["outputs"]["late"]["out"]["value"] == [True, True, 0, False]


async def test_the_first_step_does_not_run_as_the_callers_task():
    caller = asyncio.current_task()
    seen: list[Any] = []

    async def look(ctx: NodeContext) -> dict[str, Any]:
        seen.append(asyncio.current_task())
        return {"out": 1}

    registry = builtin_registry(use_entry_points=False)
    registry.register(body_type("test.look", look))
    engine = Engine(registry, EventBus())
    document = workflow([node("a", "test.look")])
    result = await engine.execute(parse_workflow(document, registry))
    assert result.status == "succeeded"
    assert seen[0] is not None and seen[0] is not caller
    assert seen[0].done() and not seen[0].cancel()  # finished in its first step: nothing to cancel
    assert asyncio.current_task() is caller


# -- aiohttp's client timeouts (http.request) ----------------------------------------------


@pytest.fixture
async def slow_server(aiohttp_server):
    """Answers /slow only when the test ends (or after 10 s)."""
    slow, release = held_route()

    async def quick(request: web.Request) -> web.Response:
        return web.Response(text="quick")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/quick", quick)
    server = await aiohttp_server(app)
    yield server
    release.set()


@pytest.mark.parametrize("after_pause", [False, True], ids=["started-by-the-request", "started-by-a-callback"])
async def test_http_request_timeout_fails_the_node_and_the_request_is_answered(make_client, config, slow_server, after_pause):
    client = await start(make_client, config, PAUSE)
    slow, quick = str(slow_server.make_url("/slow")), str(slow_server.make_url("/quick"))
    nodes, connections = _after_pause("get", port="body") if after_pause else ([], [])
    nodes += [node("get", "http.request", url=slow, timeout_ms=100), node("other", "http.request", url=quick, timeout_ms=100)]
    body = await execute(client, await register(client, workflow(nodes, connections, on_error="ContinueOnError")))
    assert body["status"] == "completed_with_errors"
    assert body["failed_nodes"] == [{"node_id": "get", "error": f"GET {slow}: timed out after 100 ms (config timeout_ms)"}]
    assert body["outputs"]["other"]["body"] == {"type": "String", "value": "quick"}


# -- contextvars -----------------------------------------------------------------------------


def mark_type(seen: dict[str, list[str]]) -> NodeType:
    async def mark(ctx: NodeContext) -> dict[str, Any]:
        seen[ctx.node_id] = [MARK.get()]
        MARK.set(ctx.node_id)
        if ctx.setting("suspend", False):
            await asyncio.sleep(0)
        seen[ctx.node_id].append(MARK.get())
        return {"out": 1}

    return body_type("test.mark", mark)


async def test_a_context_variable_set_by_a_body_stays_in_that_body():
    seen: dict[str, list[str]] = {}
    registry = builtin_registry(use_entry_points=False)
    registry.register(mark_type(seen))
    engine = Engine(registry, EventBus())
    document = workflow(
        [node("a", "test.mark"), node("b", "test.mark", suspend=True), node("c", "test.mark"), node("d", "test.mark")],
        [link("a", "out", "b", "in"), link("b", "out", "c", "in"), link("c", "out", "d", "in")],
    )
    MARK.set("caller")
    result = await engine.execute(parse_workflow(document, registry))
    assert result.status == "succeeded"
    assert MARK.get() == "caller"  # nothing a body set reached its caller
    # Each body saw the caller's value, never one another body had set, and kept its own
    # value across its awaits.
    assert seen == {node_id: ["caller", node_id] for node_id in "abcd"}


async def test_a_context_variable_set_in_the_first_step_is_still_set_after_suspending(make_client, config):
    seen: dict[str, list[str]] = {}
    client = await start(make_client, config, mark_type(seen))
    body = await execute(client, await register(client, workflow([node("m", "test.mark", suspend=True)])))
    assert body["status"] == "succeeded"
    assert seen == {"m": ["unset", "m"]}


# -- cancellation ------------------------------------------------------------------------------


class Parked:
    """A body that does some work inline, then waits until cancelled, and says what it saw."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelled: list[str] = []

    async def body(self, ctx: NodeContext) -> dict[str, Any]:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(ctx.node_id)
            raise
        return {"out": 1}

    def node_type(self) -> NodeType:
        return body_type("test.parked", self.body)


async def test_cancelling_the_execution_cancels_a_body_that_suspended_after_its_first_step(make_client, config):
    parked = Parked()
    client = await start(make_client, config, parked.node_type())
    workflow_id = await register(client, workflow([node("p", "test.parked")]))
    started = await (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).json()
    await asyncio.wait_for(parked.entered.wait(), 5)
    response = await client.post(f"/api/executions/{started['execution_id']}/cancel")
    assert response.status == 200
    record = await (await client.get(f"/api/executions/{started['execution_id']}")).json()
    for _ in range(100):
        if record["status"] != "running":
            break
        await asyncio.sleep(0.01)
        record = await (await client.get(f"/api/executions/{started['execution_id']}")).json()
    assert record["status"] == "cancelled"
    assert [entry["status"] for entry in record["nodes"]] == ["cancelled"]
    assert parked.cancelled == ["p"]


async def test_the_execution_time_limit_cancels_a_body_that_suspended_after_its_first_step(make_client, config):
    parked = Parked()
    client = await start(make_client, config, PAUSE, parked.node_type())
    nodes, connections = _after_pause("p")
    nodes.append(node("p", "test.parked"))
    document = workflow(nodes, connections, max_execution_time_ms=50)
    body = await execute(client, await register(client, document), expect=500)
    assert body["error"] == "Workflow execution timed out: exceeded max_execution_time_ms (50 ms)"
    assert body["cancelled_nodes"] == ["p"] and parked.cancelled == ["p"]


async def test_server_shutdown_interrupts_a_body_that_suspended_after_its_first_step(make_client, config):
    parked = Parked()
    client = await start(make_client, config, parked.node_type())
    workflow_id = await register(client, workflow([node("p", "test.parked")]))
    started = await (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).json()
    await asyncio.wait_for(parked.entered.wait(), 5)
    await client.close()
    assert parked.cancelled == ["p"]
    reopened = await make_client()
    record = await (await reopened.get(f"/api/executions/{started['execution_id']}")).json()
    assert record["status"] == "interrupted"
    assert [entry["status"] for entry in record["nodes"]] == ["cancelled"]


async def _cancel_self(ctx: NodeContext) -> dict[str, Any]:
    how = ctx.setting("how")
    if how == "raise":
        raise asyncio.CancelledError
    asyncio.current_task().cancel()
    if how == "then await":
        await asyncio.sleep(1)  # the cancellation lands here, as in any task
    return {"out": 1}


@pytest.mark.parametrize("how", ["raise", "then return", "then await"])
async def test_a_body_that_cancels_itself_in_its_first_step_ends_cancelled(make_client, config, how):
    client = await start(make_client, config, body_type("test.self", _cancel_self))
    document = workflow([node("s", "test.self", how=how), node("next", "debug.log")], [link("s", "out", "next", "message")])
    body = await execute(client, await register(client, document))
    assert body["cancelled_nodes"] == ["s"]
    assert body["skipped_nodes"] == ["next"]


# -- errors ------------------------------------------------------------------------------------


async def _fail_inline(ctx: NodeContext) -> dict[str, Any]:
    if ctx.setting("crash", False):
        return {"out": {}["missing"]}
    raise NodeError("refused in the first step")


async def test_errors_in_the_first_step_fail_the_node_as_before(make_client, config, caplog):
    client = await start(make_client, config, body_type("test.inline_fail", _fail_inline))
    document = workflow(
        [node("refuses", "test.inline_fail"), node("crashes", "test.inline_fail", crash=True)], on_error="ContinueOnError"
    )
    with caplog.at_level(logging.ERROR, logger="flowengine.core.engine"):
        body = await execute(client, await register(client, document))
    assert sorted(body["failed_nodes"], key=lambda failure: failure["node_id"]) == [
        {"node_id": "crashes", "error": "KeyError: 'missing'"},
        {"node_id": "refuses", "error": "refused in the first step"},
    ]
    crash_logs = [record for record in caplog.records if "raised" in record.getMessage()]
    assert len(crash_logs) == 1 and crash_logs[0].exc_info[0] is KeyError


async def _returns_a_list(ctx: NodeContext) -> Any:
    return [1]


async def test_a_first_step_that_returns_no_mapping_fails_the_node_as_before(make_client, config):
    client = await start(make_client, config, body_type("test.list", _returns_a_list))
    body = await execute(client, await register(client, workflow([node("l", "test.list")])), expect=500)
    assert body["failed_nodes"] == [
        {"node_id": "l", "error": "node body returned list, expected a mapping of output port to value"}
    ]


# -- bodies that suspend, and the event loop's fairness -------------------------------------------


async def _suspends_often(ctx: NodeContext) -> dict[str, Any]:
    total = ctx.input("in") or 0
    for step in range(3):
        await asyncio.sleep(0)  # a bare yield
        await asyncio.sleep(0.001)
        total += step
    return {"out": total}


async def test_bodies_that_suspend_often_and_time_delay_still_work(make_client, config):
    client = await start(make_client, config, body_type("test.often", _suspends_often))
    document = workflow(
        [
            node("a", "test.often"),
            node("wait", "time.delay", delay_ms=5),
            node("zero", "time.delay", delay_ms=0),
            node("b", "test.often"),
        ],
        [link("a", "out", "wait", "in"), link("wait", "in", "zero", "in"), link("zero", "in", "b", "in")],
    )
    body = await execute(client, await register(client, document))
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"b": {"out": {"type": "Number", "value": 6}}}


async def test_a_big_chain_of_time_delay_0_lets_the_event_loop_turn(make_client, config):
    """``time.delay`` 0 never suspends, so each of these nodes ends in its first step, inline;
    the engine still lets the event loop turn between batches of them."""
    client = await start(make_client, config)
    count = 10_000
    workflow_id = await register_large(
        client,
        workflow(
            [node(f"n{i}", "time.delay", delay_ms=0) for i in range(count)],
            [link(f"n{i}", "in", f"n{i + 1}", "in") for i in range(count - 1)],
        ),
    )
    async with LoopTurns() as turns:
        body = await execute(client, workflow_id, {"in": 1})
    assert body["completed_nodes"] == count
    assert body["outputs"] == {f"n{count - 1}": {"in": {"type": "Number", "value": 1}}}
    assert turns.count >= 10


async def test_a_stop_right_after_a_body_suspended_cancels_what_it_awaits(make_client, config):
    """The workflow stops in the same turn as the body suspended, before its task first ran: the
    gather it awaits is cancelled, and with it the gathered children, as in a task."""
    children: dict[str, list[str]] = {"started": [], "cancelled": []}

    async def child(name: str) -> None:
        children["started"].append(name)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            children["cancelled"].append(name)
            raise

    async def gatherer(ctx: NodeContext) -> dict[str, Any]:
        await asyncio.gather(child("one"), child("two"))
        return {"out": 1}

    def fail(ctx: NodeContext) -> dict[str, Any]:
        raise NodeError("stop now")

    client = await start(make_client, config, body_type("test.gatherer", gatherer), body_type("test.fail_now", fail))
    document = workflow(
        [node("root", "transform.set", v=1), node("gather", "test.gatherer"), node("fail", "test.fail_now")],
        [link("root", "v", "gather", "in"), link("root", "v", "fail", "in")],
    )
    body = await execute(client, await register(client, document), expect=500)
    assert body["error"] == "Node execution failed: node 'fail' (test.fail_now): stop now"
    assert body["cancelled_nodes"] == ["gather"]
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(children["started"]) == sorted(children["cancelled"])
