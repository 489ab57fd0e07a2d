"""Workflow documents and the calls every API test makes: register a workflow, execute it."""

from __future__ import annotations

from typing import Any

from flowengine.values import to_value

__all__ = ["execute", "link", "node", "register"]


def node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    """A node document; config values are given plain and sent typed."""
    return {"id": node_id, "node_type": node_type, "config": {k: to_value(v).to_json() for k, v in config.items()}}


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
