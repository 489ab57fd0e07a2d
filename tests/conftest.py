"""Shared fixtures: the real application from make_app, driven through aiohttp_client.

Helpers live in the ``support`` package next to this file; pytest puts this directory on
``sys.path`` when it loads this conftest, which is what makes ``import support`` work.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flowengine.config import Config
from flowengine.server.app import make_app

from support.server import FlowengineTestServer


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

