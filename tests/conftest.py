"""Shared fixtures: the real application from make_app, driven through aiohttp_client.

Helpers live in the ``support`` package next to this file; pytest puts this directory on
``sys.path`` when it loads this conftest, which is what makes ``import support`` work.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from flowengine.config import Config
from flowengine.server.app import make_app

from support.server import FlowengineTestServer

# The event loop the suite runs on: FLOWENGINE_TEST_LOOP=uvloop runs every test (the app in
# process, and the servers tests start as processes) on uvloop; unset, on asyncio's own loop.
TEST_LOOP = os.environ.get("FLOWENGINE_TEST_LOOP", "asyncio")
if TEST_LOOP not in ("asyncio", "uvloop"):
    raise pytest.UsageError(f"FLOWENGINE_TEST_LOOP={TEST_LOOP!r}: expected asyncio or uvloop")
# Servers started as processes inherit it, unless a test sets FLOWENGINE_LOOP itself (or clears
# the FLOWENGINE_* variables, which gives the default: uvloop, since the test extra installs it).
os.environ.setdefault("FLOWENGINE_LOOP", TEST_LOOP)

if TEST_LOOP == "uvloop":
    import uvloop

    def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
        """pytest-asyncio's hook: every async test and fixture runs on a uvloop loop."""
        return {"uvloop": uvloop.new_event_loop}


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

