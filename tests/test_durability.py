"""A real server process killed with SIGKILL mid-execution, then restarted (issue 6)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp

from conftest import node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(db: str, port: int) -> subprocess.Popen:
    environment = {**os.environ, "BIND_ADDRESS": f"127.0.0.1:{port}", "FLOWENGINE_DB": db, "LOG_LEVEL": "info"}
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def _wait_healthy(session: aiohttp.ClientSession, base: str, process: subprocess.Popen) -> None:
    for _ in range(200):
        assert process.poll() is None, process.stdout.read().decode()
        try:
            async with session.get(f"{base}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server did not become healthy")


async def _start_slow_execution(session: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """Register a workflow that waits a minute and start it in the background."""
    document = {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
    async with session.post(f"{base}/api/workflows", json=document) as response:
        workflow_id = (await response.json())["id"]
    async with session.post(f"{base}/api/workflows/{workflow_id}/execute?wait=false") as response:
        assert response.status == 202
        return workflow_id, (await response.json())["execution_id"]


async def test_sigkill_mid_execution_then_restart(tmp_path):
    db = str(tmp_path / "durable.db")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_healthy(session, base, server)
            workflow_id, execution_id = await _start_slow_execution(session, base)
            async with session.get(f"{base}/api/executions/{execution_id}") as response:
                assert (await response.json())["status"] == "running"
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server.stdout.close()

    restarted = _start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_healthy(session, base, restarted)
            async with session.get(f"{base}/api/workflows/{workflow_id}") as response:
                assert response.status == 200
                assert (await response.json())["name"] == "slow"
            async with session.get(f"{base}/api/executions/{execution_id}") as response:
                record = await response.json()
            assert record["status"] == "interrupted"
            assert "server stopped" in record["error"]
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=15) == 0
        output = restarted.stdout.read().decode()
        restarted.stdout.close()
    assert "marked interrupted" in output


async def test_graceful_stop_records_running_executions_as_interrupted(tmp_path):
    db = str(tmp_path / "graceful.db")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_healthy(session, base, server)
            workflow_id, background_id = await _start_slow_execution(session, base)
            waiting = asyncio.ensure_future(session.post(f"{base}/api/workflows/{workflow_id}/execute"))
            for _ in range(100):
                async with session.get(f"{base}/api/executions?status=running") as response:
                    if len((await response.json())["executions"]) == 2:
                        break
                await asyncio.sleep(0.05)
            server.send_signal(signal.SIGTERM)
            response = await asyncio.wait_for(waiting, 15)
            answer = await response.json()
            assert answer["status"] == "interrupted"  # the synchronous caller got its answer
            sync_id = answer["execution_id"]
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)
        server.stdout.close()

    restarted = _start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_healthy(session, base, restarted)
            for execution_id in (background_id, sync_id):
                async with session.get(f"{base}/api/executions/{execution_id}") as response:
                    record = await response.json()
                assert record["status"] == "interrupted", record
                assert "shut down" in record["error"]
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=15)
        restarted.stdout.close()
