"""Shared fixtures: the real application from make_app, driven through aiohttp_client."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flowengine.server.app import make_app
from flowengine.config import Config
from server_support import FlowengineTestServer


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(db=str(tmp_path / "flowengine.db"), port=3000)


@pytest.fixture
def make_client(aiohttp_client, config):
    """Start the app with optional config overrides: ``await make_client(ws_queue=10)``."""

    async def start(app=None, **overrides: Any):
        if app is None:
            app = make_app(dataclasses.replace(config, **overrides))
        return await aiohttp_client(FlowengineTestServer(app))

    return start


@pytest.fixture
async def client(make_client):
    return await make_client()


def node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    """A node document; config values are given plain and sent typed."""
    from flowengine.values import to_value

    return {"id": node_id, "node_type": node_type, "config": {k: to_value(v).to_json() for k, v in config.items()}}


def link(from_node: str, from_port: str, to_node: str, to_port: str) -> dict[str, str]:
    return {"from_node": from_node, "from_port": from_port, "to_node": to_node, "to_port": to_port}


async def register(client, document: dict[str, Any]) -> str:
    response = await client.post("/api/workflows", json=document)
    body = await response.json()
    assert response.status == 201, body
    return body["id"]


async def execute(client, workflow_id: str, inputs: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    response = await client.post(f"/api/workflows/{workflow_id}/execute", json={"inputs": inputs or {}})
    body = await response.json()
    assert response.status == expect, body
    return body
