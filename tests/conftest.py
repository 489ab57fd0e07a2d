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

from support.postgres import PostgresCluster, missing, unavailable
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


# Test modules whose tests run against both stores (each test once per store): the API,
# history, trigger and durability suites. The rest run on SQLite only, unless
# FLOWENGINE_TEST_STORE=postgresql runs everything that uses ``config`` on PostgreSQL.
BOTH_STORES = {
    "test_api_workflows",
    "test_history",
    "test_triggers",
    "test_durability",
    "test_reregister",
    "test_persistence",
    "test_kill_under_load",
    "test_event_record",
}


def pytest_generate_tests(metafunc) -> None:
    if (
        "store_kind" in metafunc.fixturenames
        and metafunc.module.__name__.rpartition(".")[2] in BOTH_STORES
        and metafunc.definition.get_closest_marker("sqlite_only") is None
    ):
        metafunc.parametrize("store_kind", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the session (support/postgres.py)."""
    reason = missing()
    if reason is not None:
        unavailable(reason)
    cluster = PostgresCluster()
    try:
        cluster.start()
    except Exception as exc:
        unavailable(f"the test PostgreSQL cluster could not start: {exc}")
    yield cluster
    cluster.drop_databases()
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> Any:
    """A fresh, empty database of the session's cluster: its URL. Databases are dropped at the
    end of the session (a server a test started may still be closing when the test ends)."""
    return pg_cluster.create_database()


@pytest.fixture
def store_kind(request) -> str:
    if request.node.get_closest_marker("sqlite_only") is not None:
        return "sqlite"  # it reads or writes the SQLite file itself, whichever store is asked for
    return getattr(request, "param", os.environ.get("FLOWENGINE_TEST_STORE", "sqlite"))


@pytest.fixture
def db_location(request, tmp_path, store_kind) -> str:
    """What FLOWENGINE_DB is for this test: a SQLite file, or a fresh PostgreSQL database."""
    if store_kind == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "flowengine.db")


@pytest.fixture
def config(db_location) -> Config:
    return Config(db=db_location, port=3000)


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

