"""Measurements 1 and 2, in process: engine overhead per node, and how it scales.

1. A 10,000-node chain and fan-out of no-op nodes (async and plain bodies) through
   ``flowengine.core.engine.Engine`` with an EventBus nobody listens to, against ``asyncio.gather``
   of the same number of no-op coroutines (the issue's baseline). A chain of bare asyncio tasks,
   each awaiting its predecessor, is shown too: it is what a chain costs at the very least.
2. Validation (``parse_workflow``), planning (``Plan.build``) and execution of layered DAGs of
   1,000 / 10,000 / 50,000 nodes: time per 10x more nodes should be about 10x.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from flowengine.core.engine import Engine, Plan
from flowengine.core.events import EventBus
from flowengine.core.model import Workflow, parse_workflow

from . import noop_nodes, workflows
from .common import Profile, median

__all__ = ["EngineRow", "ScalingRow", "measure_engine", "measure_scaling"]



@dataclass
class EngineRow:
    shape: str  # "chain" or "fan-out"
    body: str  # "async" or "plain"
    nodes: int
    us_per_node: float
    baseline_us_per_node: float  # asyncio.gather of no-op coroutines, same run
    nogc_us_per_node: float  # the same execution with the cyclic garbage collector off

    @property
    def ratio(self) -> float:
        return self.us_per_node / self.baseline_us_per_node


@dataclass
class ScalingRow:
    nodes: int
    validate_s: float
    plan_s: float
    execute_s: float
    # The same with the cyclic garbage collector switched off: what is left is the code's own
    # cost, the difference is what full collections over a growing heap add.
    validate_nogc_s: float
    plan_nogc_s: float
    execute_nogc_s: float


async def _timed(
    profile: Profile, run: Callable[[], Awaitable[Any]], inner: int = 1, *, collector: bool = True
) -> float:
    """Median seconds of one ``run`` over the profile's repeats, after one warm-up. Each
    repeat calls it ``inner`` times, so that small sizes are timed over more than a few ms.
    ``collector=False`` switches the cyclic garbage collector off while timing."""
    samples = []
    for attempt in range(profile.repeats + 1):
        gc.collect()  # start every repeat from the same heap, not the previous one's garbage
        if not collector:
            gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(inner):
                await run()
            elapsed = (time.perf_counter() - started) / inner
        finally:
            gc.enable()
        if attempt:
            samples.append(elapsed)
    return median(samples)


async def _noop() -> None:
    return None


async def _gather(count: int) -> None:
    await asyncio.gather(*[_noop() for _ in range(count)])


async def _link(previous: "asyncio.Task[None] | None") -> None:
    if previous is not None:
        await previous


async def _task_chain(count: int) -> None:
    loop = asyncio.get_running_loop()
    previous = None
    for _ in range(count):
        previous = loop.create_task(_link(previous))
    await previous


def _engine() -> Engine:
    # An EventBus with no listeners and no observers: "events on, nobody listening".
    return Engine(noop_nodes.registry(), EventBus())


async def _execute(engine: Engine, workflow: Workflow) -> None:
    result = await engine.execute(workflow)
    if result.status != "succeeded" or result.completed_nodes != len(workflow.nodes):
        raise RuntimeError(f"{workflow.name}: {result.status}, {result.completed_nodes} nodes completed")


async def _engine_rows(profile: Profile) -> tuple[list[EngineRow], float]:
    count = profile.engine_nodes
    gather_s = await _timed(profile, lambda: _gather(count))
    chain_s = await _timed(profile, lambda: _task_chain(count))
    engine = _engine()
    rows = []
    for shape, build in (("chain", workflows.chain), ("fan-out", workflows.fan_out)):
        for body, node_type in (("async", "bench.noop"), ("plain", "bench.noop_sync")):
            seconds, nogc_seconds = await _time_workflow(profile, engine, build(count, node_type))
            rows.append(EngineRow(shape, body, count, seconds / count * 1e6, gather_s / count * 1e6,
                                  nogc_seconds / count * 1e6))
    return rows, chain_s / count * 1e6


async def _time_workflow(profile: Profile, engine: Engine, document: dict[str, Any]) -> tuple[float, float]:
    """Seconds per execution with the garbage collector on, and with it off."""
    workflow = parse_workflow(document, engine.registry, max_nodes=None)
    try:
        with_gc = await _timed(profile, lambda: _execute(engine, workflow))
        return with_gc, await _timed(profile, lambda: _execute(engine, workflow), collector=False)
    finally:
        # Only the workflow being measured stays alive: a bigger heap makes every full garbage
        # collection slower and would charge one case for another's objects.
        engine.forget(workflow.id)


def measure_engine(profile: Profile) -> tuple[list[EngineRow], float]:
    """Rows for measurement 1, and the bare task-chain µs per task for reference."""
    return asyncio.run(_engine_rows(profile))


async def _scaling_rows(profile: Profile) -> list[ScalingRow]:
    engine = _engine()
    registry = engine.registry
    rows = []
    for count in profile.scaling_sizes:
        inner = max(1, 10_000 // count)
        document = workflows.layered(count, "bench.noop")
        holder: dict[str, Workflow] = {}

        async def validate() -> None:
            holder["workflow"] = parse_workflow(document, registry, max_nodes=None)

        async def plan() -> None:
            Plan.build(holder["workflow"], registry)

        async def execute() -> None:
            await _execute(engine, holder["workflow"])

        figures = []
        for collector in (True, False):
            for step in (validate, plan, execute):
                figures.append(await _timed(profile, step, inner, collector=collector))
        workflow = holder["workflow"]
        rows.append(ScalingRow(count, *figures))
        engine.forget(workflow.id)  # drop the cached plan before the next, bigger DAG
    return rows


def measure_scaling(profile: Profile) -> list[ScalingRow]:
    return asyncio.run(_scaling_rows(profile))
