"""Test-only node types and an app starter for the engine tests (no tests of its own).

Every node type here is registered through the public node API (``app[REGISTRY].register``)
on an app built by ``make_app``, exactly as a plugin would be.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time
from typing import Any

from flowengine.nodes import NodeContext, NodeError, NodeType, Port
from flowengine.server.app import make_app
from flowengine.server.keys import REGISTRY


class Probe:
    """Counts node bodies running at once and records when each ran.

    ``release`` gates the bodies: while it is unset they wait, so a test can look at what is
    running at a given moment without sleeping.
    """

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.intervals: dict[str, tuple[float, float]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        self.release = asyncio.Event()
        self.release.set()
        self.changed = asyncio.Condition()

    async def wait_until(self, predicate, timeout: float = 5.0) -> None:
        """Wait (event driven, no polling sleeps) until ``predicate()`` holds."""
        async with asyncio.timeout(timeout):
            async with self.changed:
                await self.changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def body(self, ctx: NodeContext) -> dict[str, Any]:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.started.append(ctx.node_id)
        self.inputs[ctx.node_id] = {name: value.to_python() for name, value in ctx.inputs.items()}
        began = time.perf_counter()
        await self._notify()
        try:
            await self.release.wait()
            await asyncio.sleep(0)  # let siblings start, so overlap is observable
        except asyncio.CancelledError:
            self.cancelled.append(ctx.node_id)
            raise
        finally:
            self.running -= 1
            self.intervals[ctx.node_id] = (began, time.perf_counter())
        self.finished.append(ctx.node_id)
        await self._notify()
        tag = ctx.setting("tag", ctx.node_id)
        return {"out": tag, **{f"in_{name}": value for name, value in ctx.inputs.items()}}

    def node_type(self, name: str = "test.probe") -> NodeType:
        return NodeType(
            type=name,
            description="Test: records concurrency, waits for the probe's release",
            category="test",
            run=self.body,
            any_inputs=True,
            any_outputs=True,
        )


def _noop(ctx: NodeContext) -> dict[str, Any]:
    return {"out": 1}


NOOP = NodeType(
    type="test.noop",
    description="Test: a synchronous body that outputs 1 on 'out'",
    category="test",
    run=_noop,
    any_inputs=True,
    outputs=(Port("out"),),
)


def _fail(ctx: NodeContext) -> dict[str, Any]:
    raise NodeError(ctx.setting("reason", "it broke"))


FAIL = NodeType(
    type="test.fail",
    description="Test: always fails with config 'reason'",
    category="test",
    run=_fail,
    any_inputs=True,
    outputs=(Port("out"),),
)


async def _crash(ctx: NodeContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"out": {"a": 1}["missing-key"]}  # KeyError: an arbitrary, unplanned exception


CRASH = NodeType(
    type="test.crash",
    description="Test: raises a KeyError",
    category="test",
    run=_crash,
    any_inputs=True,
    outputs=(Port("out"),),
)


async def _hang(ctx: NodeContext) -> dict[str, Any]:
    await asyncio.Event().wait()  # only a timeout or a cancellation ends this
    return {}


HANG = NodeType(
    type="test.hang",
    description="Test: never finishes on its own",
    category="test",
    run=_hang,
    any_inputs=True,
    outputs=(Port("out"),),
)


def _needs(ctx: NodeContext) -> dict[str, Any]:
    return {"out": ctx.input("needed")}


NEEDS = NodeType(
    type="test.needs",
    description="Test: a required input port 'needed' and an optional one 'extra'",
    category="test",
    run=_needs,
    inputs=(Port("needed", required=True), Port("extra")),
    outputs=(Port("out"),),
)


class Flaky:
    """Fails the first ``failures`` calls per node (hanging instead when ``hang``), then succeeds."""

    def __init__(self, failures: int, *, hang: bool = False) -> None:
        self.failures = failures
        self.hang = hang
        self.calls: dict[str, int] = {}

    async def body(self, ctx: NodeContext) -> dict[str, Any]:
        count = self.calls[ctx.node_id] = self.calls.get(ctx.node_id, 0) + 1
        if count <= self.failures:
            if self.hang:
                await asyncio.Event().wait()
            raise NodeError(f"failure {count}")
        return {"out": ctx.attempt}

    def node_type(self, name: str = "test.flaky") -> NodeType:
        return NodeType(
            type=name,
            description="Test: fails a few times, then succeeds",
            category="test",
            run=self.body,
            any_inputs=True,
            outputs=(Port("out"),),
        )


class FakeSleep:
    """Stands in for the engine's retry sleep: records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def start(make_client, config, *node_types: NodeType, **overrides: Any):
    """The real app with extra node types registered through the public node API."""
    app = make_app(dataclasses.replace(config, **overrides))
    for node_type in node_types:
        app[REGISTRY].register(node_type)
    return await make_client(app)


def workflow(nodes: list[dict], connections: list[dict] = (), **settings: Any) -> dict[str, Any]:
    return {"name": "engine test", "nodes": nodes, "connections": list(connections), "settings": settings}


async def register_large(client, document: dict[str, Any]) -> str:
    """POST a big workflow as a stream (aiohttp warns about large raw byte bodies)."""
    payload = io.BytesIO(json.dumps(document).encode("utf-8"))
    response = await client.post("/api/workflows", data=payload, headers={"Content-Type": "application/json"})
    body = await response.json()
    assert response.status == 201, body
    return body["id"]


async def finish(task: asyncio.Task[Any], probe: Probe | None = None, timeout: float = 5.0) -> Any:
    """Await a request task, failing (not hanging) the test when the engine never answers;
    the probe's gate is opened whatever happens so nothing is left waiting."""
    try:
        return await asyncio.wait_for(task, timeout)
    finally:
        if probe is not None:
            probe.release.set()


class LoopTurns:
    """Counts the event loop's turns while in use (``async with LoopTurns() as turns``):
    ``turns.count`` grows by one per turn, so a test can see that a long run let the loop turn."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._task is not None
        self._task.cancel()
