"""A real server process killed with SIGKILL mid-execution, then restarted (on either store:
on PostgreSQL the restarted process records the execution once the dead one's heartbeat is
older than the node timeout)."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from support.api import node
from support.cluster import is_postgres, store_env, wait_for_status
from support.process import free_port, start_server, stop, wait_healthy


async def _start_slow_execution(session: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """Register a workflow that waits a minute and start it in the background."""
    document = {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
    async with session.post(f"{base}/api/workflows", json=document) as response:
        workflow_id = (await response.json())["id"]
    async with session.post(f"{base}/api/workflows/{workflow_id}/execute?wait=false") as response:
        assert response.status == 202
        return workflow_id, (await response.json())["execution_id"]


async def test_sigkill_mid_execution_then_restart(db_location):
    db = db_location
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(db, port, **store_env(db))
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, server)
            workflow_id, execution_id = await _start_slow_execution(session, base)
            async with session.get(f"{base}/api/executions/{execution_id}") as response:
                assert (await response.json())["status"] == "running"
    finally:
        stop(server, signal.SIGKILL)

    restarted = start_server(db, port, **store_env(db))
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, restarted)
            async with session.get(f"{base}/api/workflows/{workflow_id}") as response:
                assert response.status == 200
                assert (await response.json())["name"] == "slow"
            record = await wait_for_status(session, base, execution_id, "interrupted")
            assert record["status"] == "interrupted"
            assert "server stopped" in record["error"]
    finally:
        code, output = stop(restarted)
    assert code == 0, output
    # PostgreSQL: at start-up if the dead process's heartbeat is already too old, else by the reaper.
    assert "marked interrupted" in output or (is_postgres(db) and "recorded interrupted" in output), output


async def test_graceful_stop_records_running_executions_as_interrupted(db_location):
    db = db_location
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, server)
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
        stop(server, signal.SIGKILL)

    restarted = start_server(db, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, restarted)
            for execution_id in (background_id, sync_id):
                async with session.get(f"{base}/api/executions/{execution_id}") as response:
                    record = await response.json()
                assert record["status"] == "interrupted", record
                assert "shut down" in record["error"]
    finally:
        stop(restarted)
