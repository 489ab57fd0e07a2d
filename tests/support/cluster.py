"""Helpers for tests of real server processes on either store: the settings a PostgreSQL
process gets in tests (short heartbeats, so a dead process is found within seconds), and
bounded waits for what another process records."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

__all__ = ["HEARTBEAT", "TIMEOUT", "is_postgres", "store_env", "wait_for_status", "running_ids"]

HEARTBEAT = 0.5
TIMEOUT = 2.0
WAIT = 30.0  # a bound on a hang, not a speed expectation


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def store_env(db: str, **extra: str) -> dict[str, str]:
    """Environment for ``start_server`` on ``db``: short heartbeat settings on PostgreSQL."""
    env = {"FLOWENGINE_NODE_HEARTBEAT": str(HEARTBEAT), "FLOWENGINE_NODE_TIMEOUT": str(TIMEOUT)} if is_postgres(db) else {}
    return {**env, **extra}


async def get_execution(session: aiohttp.ClientSession, base: str, execution_id: str) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{base}/api/executions/{execution_id}") as response:
        return response.status, await response.json()


async def wait_for_status(
    session: aiohttp.ClientSession, base: str, execution_id: str, wanted: str, timeout: float = WAIT
) -> dict[str, Any]:
    """The execution's record once its status is ``wanted``; the last record seen after
    ``timeout`` seconds otherwise (the caller's assertion then says what it was)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, record = await get_execution(session, base, execution_id)
        if (status == 200 and record["status"] == wanted) or loop.time() > deadline:
            return record
        await asyncio.sleep(0.1)


async def running_ids(session: aiohttp.ClientSession, base: str) -> list[str]:
    async with session.get(f"{base}/api/executions?status=running&limit=1000") as response:
        return [row["id"] for row in (await response.json())["executions"]]
