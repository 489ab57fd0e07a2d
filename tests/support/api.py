"""Workflow documents and the calls every API test makes: register a workflow, execute it."""

from __future__ import annotations

import re
from typing import Any

from flowengine.values import to_value

__all__ = ["TIMESTAMP", "execute", "run", "link", "node", "register", "two_node_workflow", "typed", "webhook_workflow"]

# How the API writes a moment: UTC, milliseconds, a Z (use with fullmatch).
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def typed(value: Any) -> dict[str, Any]:
    """A plain Python value as the API writes it: ``{"type": "Number", "value": 1}``."""
    return to_value(value).to_json()


def node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    """A node document; config values are given plain and sent typed."""
    return {"id": node_id, "node_type": node_type, "config": {k: typed(v) for k, v in config.items()}}


def link(from_node: str, from_port: str, to_node: str, to_port: str) -> dict[str, str]:
    return {"from_node": from_node, "from_port": from_port, "to_node": to_node, "to_port": to_port}


async def register(client, document: dict[str, Any]) -> str:
    """POST the workflow, assert it was created, and return its id."""
    response = await client.post("/api/workflows", json=document)
    body = await response.json()
    assert response.status == 201, body
    return body["id"]


async def execute(client, workflow_id: str, inputs: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    """Execute synchronously, assert the status, and return the body."""
    response = await client.post(f"/api/workflows/{workflow_id}/execute", json={"inputs": inputs or {}})
    body = await response.json()
    assert response.status == expect, body
    return body


async def run(client, document: dict[str, Any], inputs: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    """Register the workflow and execute it once; the execute response's body."""
    return await execute(client, await register(client, document), inputs, expect=expect)


def two_node_workflow(name: str = "greet", **extra: Any) -> dict[str, Any]:
    """``transform.set`` greeting "hi" into ``debug.log``: the smallest workflow with a link;
    ``extra`` adds top-level fields (``id``, ``description``)."""
    return {
        "name": name,
        "nodes": [node("a", "transform.set", greeting="hi"), node("b", "debug.log")],
        "connections": [link("a", "greeting", "b", "message")],
        **extra,
    }


def webhook_workflow(path: str, nodes: list[dict[str, Any]] | None = None, **trigger: Any) -> dict[str, Any]:
    """A workflow started by a Webhook trigger on ``/api/hooks/{path}`` (``debug.log`` unless
    ``nodes`` are given); ``trigger`` adds fields such as ``secret`` and ``signature``."""
    return {
        "name": "hooked",
        "nodes": nodes or [node("log", "debug.log")],
        "triggers": [{"id": "hook", "trigger_type": {"type": "Webhook", "path": path, **trigger}}],
    }
