"""Concurrency and size: the max_parallel_nodes limit, overlapping branches, and 10,000-node
chains and fan-outs (far deeper than Python's recursion limit, so any recursion would fail)."""

from __future__ import annotations

import asyncio

from flowengine.nodes import NodeContext, NodeType, Port

from support.api import execute, link, node, register
from support.engine import NOOP, LoopTurns, Probe, finish, register_large, start, workflow


async def test_max_parallel_nodes_bounds_running_bodies(make_client, config):
    probe = Probe()
    probe.release.clear()
    client = await start(make_client, config, probe.node_type())
    leaves = [f"leaf{i}" for i in range(6)]
    workflow_id = await register(
        client,
        workflow(
            [node("root", "transform.set", v=1)] + [node(leaf, "test.probe") for leaf in leaves],
            [link("root", "v", leaf, "in") for leaf in leaves],
            max_parallel_nodes=2,
        ),
    )
    running = asyncio.create_task(execute(client, workflow_id))
    await probe.wait_until(lambda: probe.running >= 2)
    for _ in range(20):  # give the engine every chance to start a third body
        await asyncio.sleep(0)
    assert len(probe.started) == 2
    probe.release.set()
    body = await finish(running, probe)
    assert body["completed_nodes"] == 7
    assert sorted(probe.finished) == leaves
    assert probe.max_running == 2  # the limit was reached and never exceeded


async def test_independent_branches_overlap(make_client, config):
    probe = Probe()
    probe.release.clear()
    client = await start(make_client, config, probe.node_type())
    workflow_id = await register(
        client,
        workflow(
            [node(name, "test.probe") for name in ("a1", "a2", "b1", "b2")],
            [link("a1", "out", "a2", "in"), link("b1", "out", "b2", "in")],
        ),
    )
    running = asyncio.create_task(execute(client, workflow_id))
    # Both branch heads are inside their bodies at once; the second steps wait their turn.
    await probe.wait_until(lambda: probe.running == 2)
    assert sorted(probe.started) == ["a1", "b1"]
    probe.release.set()
    body = await finish(running, probe)
    assert body["status"] == "succeeded"
    a2, b2 = probe.intervals["a2"], probe.intervals["b2"]
    assert probe.intervals["a1"][1] <= a2[0] and probe.intervals["b1"][1] <= b2[0]  # order kept


async def test_max_parallel_nodes_one_runs_one_body_at_a_time(make_client, config):
    probe = Probe()
    client = await start(make_client, config, probe.node_type())
    workflow_id = await register(
        client, workflow([node(f"n{i}", "test.probe") for i in range(5)], max_parallel_nodes=1)
    )
    body = await execute(client, workflow_id)
    assert body["completed_nodes"] == 5
    assert probe.max_running == 1


async def test_ten_thousand_node_chain(make_client, config):
    client = await start(make_client, config, NOOP)
    count = 10_000
    workflow_id = await register_large(
        client,
        workflow(
            [node(f"n{i}", "test.noop") for i in range(count)],
            [link(f"n{i}", "out", f"n{i + 1}", "in") for i in range(count - 1)],
            max_parallel_nodes=50,
        ),
    )
    body = await execute(client, workflow_id)
    assert body["status"] == "succeeded"
    assert body["completed_nodes"] == body["total_nodes"] == count
    assert body["outputs"] == {f"n{count - 1}": {"out": {"type": "Number", "value": 1}}}


async def test_ten_thousand_node_fan_out_and_fan_in(make_client, config):
    client = await start(make_client, config, NOOP, max_nodes=20_000)
    count = 10_000
    leaves = [f"leaf{i}" for i in range(count)]
    workflow_id = await register_large(
        client,
        workflow(
            [node("root", "test.noop"), node("join", "test.noop")] + [node(leaf, "test.noop") for leaf in leaves],
            [link("root", "out", leaf, "in") for leaf in leaves]
            + [link(leaf, "out", "join", leaf) for leaf in leaves],
            max_parallel_nodes=100,
        ),
    )
    body = await execute(client, workflow_id)
    assert body["status"] == "succeeded"
    assert body["completed_nodes"] == body["total_nodes"] == count + 2
    assert body["outputs"] == {"join": {"out": {"type": "Number", "value": 1}}}


async def test_long_chain_of_async_nodes(make_client, config):
    """Async bodies run as tasks, each started from the previous one's completion callback."""
    probe = Probe()
    client = await start(make_client, config, probe.node_type())
    count = 2_000
    workflow_id = await register(
        client,
        workflow(
            [node(f"n{i}", "test.probe") for i in range(count)],
            [link(f"n{i}", "out", f"n{i + 1}", "in") for i in range(count - 1)],
        ),
    )
    body = await execute(client, workflow_id)
    assert body["completed_nodes"] == count
    assert probe.started == [f"n{i}" for i in range(count)]


async def test_a_big_chain_of_inline_bodies_lets_the_event_loop_turn(make_client, config):
    """Plain-function bodies run inline, but in batches: the event loop turns between them, so
    one huge workflow does not freeze the server for everyone else."""
    turns = LoopTurns()
    seen: set[int] = set()

    def mark(ctx: NodeContext) -> dict:
        seen.add(turns.count)
        return {"out": 1}

    client = await start(
        make_client, config, NodeType(type="test.mark", description="Test", category="test", run=mark, any_inputs=True, outputs=(Port("out"),))
    )
    count = 10_000
    workflow_id = await register_large(
        client,
        workflow(
            [node(f"n{i}", "test.mark") for i in range(count)],
            [link(f"n{i}", "out", f"n{i + 1}", "in") for i in range(count - 1)],
        ),
    )
    async with turns:
        body = await execute(client, workflow_id)
    assert body["completed_nodes"] == count
    assert len(seen) >= 10  # the loop turned many times during the run
