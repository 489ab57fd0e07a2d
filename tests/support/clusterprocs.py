"""Real ``python -m flowengine`` processes on one PostgreSQL database, each with its own
settings (short heartbeats from support.cluster), and what tests of the cluster (run queue,
cron, cancels, events and replays across processes) read from them: metrics, frames up to an
execution's end, and waits bounded against a hang."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from .api import link, node
from .cluster import WAIT, store_env
from .exposition import parse_exposition
from .process import free_port, start_server, stop, wait_healthy

__all__ = ["LISTENER_HEARTBEAT", "Processes", "chain", "kill", "metric", "post", "receive_frames", "until", "wait_for_metric"]

# Short: a lost LISTEN connection is found within a fraction of a second.
LISTENER_HEARTBEAT = "0.2"


class Processes:
    """Servers started on one database (each with ``environment``, then what ``start`` adds);
    ``stop_all`` at the end of the test."""

    def __init__(self, db: str, **environment: str) -> None:
        self.db = db
        self.environment = environment
        self.started: list[subprocess.Popen] = []

    async def start(self, session: aiohttp.ClientSession, **environment: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        process = start_server(self.db, port, **store_env(self.db, **{**self.environment, **environment}))
        self.started.append(process)
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(session, base, process)
        return process, base

    def stop_all(self) -> list[str]:
        """Stop every process (SIGTERM); what each printed."""
        outputs = []
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a paused one would never see SIGTERM
            outputs.append(stop(process)[1])
        return outputs


async def post(session: aiohttp.ClientSession, url: str, document: dict | None = None) -> tuple[int, Any, Any]:
    """Status, JSON body and headers of a POST."""
    async with session.post(url, json=document if document is not None else {}) as response:
        return response.status, await response.json(), response.headers


async def metric(session: aiohttp.ClientSession, base: str, name: str) -> float:
    """One unlabelled metric's value on one process."""
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        families = parse_exposition(await response.text())
    assert name in families, f"{name} is not in /metrics"
    return families[name].get(name)


async def wait_for_metric(session: aiohttp.ClientSession, base: str, name: str, wanted: Callable[[float], bool]) -> float:
    """The metric once ``wanted(value)``; its last value after WAIT seconds otherwise (the
    caller's assertion then says what it was)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        value = await metric(session, base, name)
        if wanted(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(0.02)


def chain(length: int, delay_ms: int, workflow_id: str = "chain") -> dict[str, Any]:
    """``length`` time.delay nodes one after the other, passing the input ``v`` along: 3 events
    each (started, "waiting", completed), plus WorkflowStarted and WorkflowCompleted."""
    nodes = [node(f"n{at}", "time.delay", delay_ms=delay_ms) for at in range(length)]
    connections = [link(f"n{at}", "v", f"n{at + 1}", "v") for at in range(length - 1)]
    return {"id": workflow_id, "name": workflow_id, "nodes": nodes, "connections": connections}


async def receive_frames(ws: aiohttp.ClientWebSocketResponse, execution_id: str) -> list[str]:
    """Text frames (as sent) up to and including ``execution_id``'s WorkflowCompleted."""
    frames: list[str] = []
    while True:
        message = await ws.receive(timeout=WAIT)
        assert message.type == WSMsgType.TEXT, (message.type, message.data, message.extra)
        frames.append(message.data)
        event = json.loads(message.data)
        if event["type"] == "WorkflowCompleted" and event["execution_id"] == execution_id:
            return frames


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
