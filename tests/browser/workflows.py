"""Workflow documents for the browser tests and the dashboard benchmark."""

from __future__ import annotations

from typing import Any

from support.api import link, node

__all__ = ["slow", "failing", "layered"]


def slow(workflow_id: str, delay_ms: int) -> dict[str, Any]:
    """``start`` (a constant) -> ``wait`` (time.delay) -> ``log``: ``wait`` runs for a while."""
    return {
        "id": workflow_id,
        "name": f"Slow {workflow_id}",
        "nodes": [node("start", "transform.set", value="x"), node("wait", "time.delay", delay_ms=delay_ms), node("log", "debug.log")],
        "connections": [link("start", "value", "wait", "value"), link("wait", "value", "log", "message")],
    }


def failing(workflow_id: str, fixed: bool) -> dict[str, Any]:
    """``first`` (a constant) -> ``pick`` (transform.get of a missing path): ``pick`` fails,
    unless ``fixed``, where it has a default."""
    pick = node("pick", "transform.get", path="missing", default="fallback") if fixed else node("pick", "transform.get", path="missing")
    return {
        "id": workflow_id,
        "name": f"Failing {workflow_id}",
        "nodes": [node("first", "transform.set", value={"present": 1}), pick],
        "connections": [link("first", "value", "pick", "value")],
    }


def layered(workflow_id: str, count: int, width: int = 40) -> dict[str, Any]:
    """``count`` nodes in layers of ``width``: a constant, then control.merge nodes each fed by
    one or two nodes of the layer before (no node events, two events per node)."""
    nodes = [node("n0", "transform.set", value=1)]
    connections = []
    for index in range(1, count):
        layer, slot = divmod(index - 1, width)
        nodes.append(node(f"n{index}", "control.merge"))
        if layer == 0:
            connections.append(link("n0", "value", f"n{index}", "a"))
            continue
        above = 1 + (layer - 1) * width
        connections.append(link(f"n{above + slot}", "merged", f"n{index}", "a"))
        connections.append(link(f"n{above + (slot + 1) % width}", "merged", f"n{index}", "b"))
    return {"id": workflow_id, "name": f"{count} nodes", "nodes": nodes, "connections": connections}
