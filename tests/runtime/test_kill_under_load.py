"""kill -9 of a real server under concurrent load: every execution a client was answered for
is found after the restart, with the status it was answered with (200) or one consistent with
it (202: finished, or ``interrupted`` if it still ran at the kill; never missing)."""

from __future__ import annotations

import asyncio
import random
import signal

import aiohttp
import pytest

from support.api import link, node
from support.cluster import WAIT, running_ids, store_env
from support.process import free_port, start_server, stop, wait_healthy

CLIENTS = 48
FINISHED = {"succeeded", "failed", "completed_with_errors", "cancelled"}


async def _client_loop(
    session: aiohttp.ClientSession, base: str, workflow_id: str, payload: str, answered: list[tuple[str, int, str]]
) -> None:
    """Execute over and over, alternating synchronous and ?wait=false, until the server dies;
    record every answer: (execution id, HTTP status, status it reported)."""
    wait = random.random() < 0.5
    while True:
        wait = not wait
        url = f"{base}/api/workflows/{workflow_id}/execute" + ("" if wait else "?wait=false")
        try:
            async with session.post(url, json={"inputs": {"payload": payload}}) as response:
                body = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return  # the server was killed while answering: this one was never acknowledged
        if response.status in (200, 202):
            answered.append((body["execution_id"], response.status, body["status"]))
        else:
            assert response.status == 503, body  # refused for load is fine; anything else is not


@pytest.mark.parametrize("payload_bytes", [16, 64 * 1024], ids=["small-inputs", "64KB-inputs"])
async def test_nothing_acknowledged_is_lost_when_the_server_is_killed_under_load(db_location, payload_bytes):
    db = db_location
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    payload = "x" * payload_bytes
    document = {
        "name": "under load",
        "nodes": [node("wait", "time.delay", delay_ms=3), node("pass", "time.delay", delay_ms=0)],
        "connections": [link("wait", "payload", "pass", "payload")],
    }
    server = start_server(db, port, **store_env(db))
    answered: list[tuple[str, int, str]] = []
    try:
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            await wait_healthy(session, base, server)
            async with session.post(f"{base}/api/workflows", json=document) as response:
                assert response.status == 201, await response.text()
                workflow_id = (await response.json())["id"]
            clients = [
                asyncio.ensure_future(_client_loop(session, base, workflow_id, payload, answered))
                for _ in range(CLIENTS)
            ]
            # Kill at a random moment once the load is well under way (a loaded machine may
            # need longer to get there).
            for _ in range(200):
                if sum(entry[1] == 200 for entry in answered) > 50 and sum(entry[1] == 202 for entry in answered) > 50:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(random.uniform(0.0, 0.5))
            server.send_signal(signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*clients), 30)
    finally:
        if server.poll() is None:
            server.kill()
        stop(server)
    synchronous = [entry for entry in answered if entry[1] == 200]
    background = [entry for entry in answered if entry[1] == 202]
    assert len(synchronous) > 50 and len(background) > 50, (len(synchronous), len(background))

    restarted = start_server(db, port, **store_env(db))
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, restarted)
            # SQLite records the killed server's running executions at start-up; PostgreSQL
            # once its heartbeat is older than the node timeout (bounded wait).
            for _ in range(int(WAIT * 10)):
                if not await running_ids(session, base):
                    break
                await asyncio.sleep(0.1)
            missing, contradicted = [], []
            for execution_id, http_status, told in answered:
                async with session.get(f"{base}/api/executions/{execution_id}") as response:
                    if response.status == 404:
                        missing.append((execution_id, http_status))
                        continue
                    assert response.status == 200
                    stored = (await response.json())["status"]
                if http_status == 200 and stored != told:
                    contradicted.append((execution_id, told, stored))
                if http_status == 202 and stored not in FINISHED | {"interrupted"}:
                    contradicted.append((execution_id, told, stored))
    finally:
        stop(restarted)
    assert not missing, f"{len(missing)} of {len(answered)} acknowledged executions are missing: {missing[:5]}"
    assert not contradicted, f"{len(contradicted)} stored with another status than answered: {contradicted[:5]}"
