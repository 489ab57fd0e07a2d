"""The dashboard's browser tests and benchmark: workflow documents, and what they do through
the API from outside the page."""

from __future__ import annotations

import json
from typing import Any

from .api import link, node

__all__ = ["slow", "failing", "layered", "register", "start", "frames_of"]


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


def layered(workflow_id: str, count: int, width: int = 40, delay_ms: int = 1500) -> dict[str, Any]:
    """``count`` nodes: a constant, a time.delay of ``delay_ms`` (so that a page opened as the
    run starts watches it), then layers of ``width`` nodes, two events each and no node events:
    control.merge nodes fed by two nodes of the layer before, alternating with transform.get
    nodes that take the merge's ``a`` back out (so values keep their size however deep)."""
    nodes = [node("n0", "transform.set", value=1), node("n1", "time.delay", delay_ms=delay_ms)]
    connections = [link("n0", "value", "n1", "value")]
    for index in range(2, count):
        layer, slot = divmod(index - 2, width)
        name = f"n{index}"
        above = 2 + (layer - 1) * width
        if layer % 2 == 0:
            nodes.append(node(name, "control.merge"))
            if layer == 0:
                connections += [link("n1", "value", name, "a"), link("n1", "value", name, "b")]
            else:
                connections.append(link(f"n{above + slot}", "value", name, "a"))
                connections.append(link(f"n{above + (slot + 1) % width}", "value", name, "b"))
        else:
            nodes.append(node(name, "transform.get", path="a"))
            connections.append(link(f"n{above + slot}", "merged", name, "value"))
    return {"id": workflow_id, "name": f"{count} nodes", "nodes": nodes, "connections": connections}


def register(server: Any, document: dict[str, Any], token: str | None = None) -> None:
    status, body = server.call("POST", "/api/workflows", document, token=token)
    assert status == 201, body


def start(server: Any, workflow_id: str, token: str | None = None) -> str:
    """Start an execution in the background; its id."""
    status, body = server.call("POST", f"/api/workflows/{workflow_id}/execute?wait=false", {"inputs": {}}, token=token)
    assert status == 202, body
    return body["execution_id"]


def frames_of(tab: Any, execution_id: str) -> list[dict[str, Any]]:
    """The events of one execution the page received on its sockets, in arrival order (a frame
    holds one event, or with ?batch=true a list of them)."""
    events = []
    for text in tab.frames:
        decoded = json.loads(text)
        events.extend(event for event in (decoded if isinstance(decoded, list) else [decoded]) if event["execution_id"] == execution_id)
    return events
