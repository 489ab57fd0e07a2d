"""Real ``python -m flowengine`` processes on one PostgreSQL database, each with its own
settings (short heartbeats from support.cluster), and what tests of the cluster's run queue,
cron and cancels read from them."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from typing import Any

import aiohttp

from .cluster import WAIT, store_env
from .process import free_port, start_server, stop, wait_healthy

__all__ = ["Processes", "kill", "metric", "post", "until"]


class Processes:
    """Servers started on one database; ``stop_all`` at the end of the test."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.started: list[subprocess.Popen] = []

    async def start(self, session: aiohttp.ClientSession, **environment: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        process = start_server(self.db, port, **store_env(self.db, **environment))
        self.started.append(process)
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(session, base, process)
        return process, base

    def stop_all(self) -> list[str]:
        return [stop(process)[1] for process in self.started]


async def post(session: aiohttp.ClientSession, url: str, document: dict | None = None) -> tuple[int, Any, Any]:
    """Status, JSON body and headers of a POST."""
    async with session.post(url, json=document if document is not None else {}) as response:
        return response.status, await response.json(), response.headers


async def metric(session: aiohttp.ClientSession, base: str, name: str) -> float:
    """One unlabelled metric's value on one process."""
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found is not None, f"{name} is not in /metrics"
    return float(found.group(1))


async def until(check: Any, timeout: float = WAIT, interval: float = 0.05) -> Any:
    """Poll the coroutine function ``check`` until it returns something true (that value), or
    return the last value after ``timeout`` seconds (the caller's assertion says what it was)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(interval)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(WAIT)
