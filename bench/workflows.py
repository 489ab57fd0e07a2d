"""Workflow documents the benchmarks run: chains, fan-outs, layered DAGs, a one-node set."""

from __future__ import annotations

from typing import Any

__all__ = ["chain", "fan_out", "layered", "one_node_set", "SET_OUTPUTS"]

# Large enough that the fan-out is limited by the engine, not by max_parallel_nodes.
_SETTINGS = {"max_parallel_nodes": 10_000}


def _nodes(count: int, node_type: str) -> list[dict[str, Any]]:
    return [{"id": f"n{index}", "node_type": node_type} for index in range(count)]


def _link(source: int, target: int) -> dict[str, str]:
    return {"from_node": f"n{source}", "from_port": "out", "to_node": f"n{target}", "to_port": "in"}


def chain(count: int, node_type: str, workflow_id: str | None = None) -> dict[str, Any]:
    """n0 -> n1 -> ... : every node waits for the one before it."""
    document = {
        "name": f"chain of {count}",
        "nodes": _nodes(count, node_type),
        "connections": [_link(index - 1, index) for index in range(1, count)],
        "settings": _SETTINGS,
    }
    if workflow_id is not None:
        document["id"] = workflow_id
    return document


def fan_out(count: int, node_type: str) -> dict[str, Any]:
    """One root feeding count - 1 independent nodes."""
    return {
        "name": f"fan-out of {count}",
        "nodes": _nodes(count, node_type),
        "connections": [_link(0, index) for index in range(1, count)],
        "settings": _SETTINGS,
    }


def layered(count: int, node_type: str, width: int = 10) -> dict[str, Any]:
    """Layers of ``width`` nodes; each node takes two nodes of the layer before (a lattice):
    about 2 connections per node, depth count / width."""
    connections = []
    for index in range(width, count):
        layer_start = index - index % width
        previous = layer_start - width
        position = index - layer_start
        connections.append(_link(previous + position, index))
        connections.append(_link(previous + (position + 1) % width, index))
    return {
        "name": f"layered DAG of {count}",
        "nodes": _nodes(count, node_type),
        "connections": connections,
        "settings": _SETTINGS,
    }


SET_OUTPUTS = {"n0": {"x": {"type": "Number", "value": 1}}}


def one_node_set(workflow_id: str) -> dict[str, Any]:
    """The one-node no-op workflow of the HTTP throughput measurements (built-in transform.set)."""
    return {
        "id": workflow_id,
        "name": "one node",
        "nodes": [{"id": "n0", "node_type": "transform.set", "config": {"x": {"type": "Number", "value": 1}}}],
        "connections": [],
    }
