"""No-op node types for the benchmarks, usable in process and as a server plugin.

``FLOWENGINE_PLUGINS=bench.noop_nodes`` loads them into a server. ``bench.noop`` has an async
body (the engine gives it a task), ``bench.noop_sync`` a plain one (the engine runs it inline).
Both pass one constant value on ``out`` so every successor receives something and runs.
"""

from __future__ import annotations

from typing import Any

from flowengine.nodes import NodeContext, NodeRegistry, NodeType, Port
from flowengine.values import Value

__all__ = ["NOOP_ASYNC", "NOOP_SYNC", "NODE_TYPES", "registry"]

_OUT = Value("Number", 1)


async def _noop_async(context: NodeContext) -> dict[str, Any]:
    return {"out": _OUT}


def _noop_sync(context: NodeContext) -> dict[str, Any]:
    return {"out": _OUT}


_PORTS: dict[str, Any] = {
    "category": "bench",
    "inputs": (Port("in", "Anything; ignored"),),
    "outputs": (Port("out", "The number 1"),),
}

NOOP_ASYNC = NodeType(type="bench.noop", description="Does nothing (async body)", run=_noop_async, **_PORTS)
NOOP_SYNC = NodeType(type="bench.noop_sync", description="Does nothing (plain body)", run=_noop_sync, **_PORTS)

NODE_TYPES = [NOOP_ASYNC, NOOP_SYNC]


def registry() -> NodeRegistry:
    """A registry holding only the two no-op types."""
    result = NodeRegistry()
    for node_type in NODE_TYPES:
        result.register(node_type)
    return result
