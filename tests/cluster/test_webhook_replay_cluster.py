"""Signed webhooks on two real processes sharing one PostgreSQL database: a request accepted by
one process is refused as a replay by the other (timestamped signatures and GitHub delivery
ids alike), and a request one process could not start may be sent to the other."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest

from support.api import node, webhook_workflow
from support.cluster import store_env
from support.process import free_port, start_server, stop, wait_healthy
from support.webhooks import body_signature, sign

SECRET = "replay-secret"


@pytest.fixture(scope="module")
def two(pg_cluster):
    """Processes A and B, one execution slot each and no queue (a busy process answers 503)."""
    db = pg_cluster.create_database()
    ports = [free_port(), free_port()]
    environment = store_env(db, FLOWENGINE_MAX_CONCURRENT_EXECUTIONS="1", FLOWENGINE_MAX_QUEUED_EXECUTIONS="0")
    started = [start_server(db, port, **environment) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]

    async def healthy() -> None:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(wait_healthy(session, base, process) for base, process in zip(bases, started)))

    try:
        asyncio.run(healthy())
        yield bases
    finally:
        for process in started:
            _code, output = stop(process)
            assert "[killed:" not in output, output


async def _post(session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with session.post(url, data=payload, headers={"Content-Type": "application/json", **headers}) as response:
        return response.status, await response.json()


async def test_a_request_accepted_by_one_process_is_a_replay_on_the_other(two):
    a, b = two
    async with aiohttp.ClientSession() as session:
        for document in (webhook_workflow("pay", secret=SECRET), webhook_workflow("gh", secret=SECRET, signature="github")):
            async with session.post(f"{a}/api/workflows", json=document) as response:
                assert response.status == 201, await response.text()

        payload = b'{"amount": 10}'
        signed = {"X-Flowengine-Signature": sign(SECRET.encode(), payload)}
        status, body = await _post(session, f"{a}/api/hooks/pay", payload, signed)
        assert status == 200, body
        status, body = await _post(session, f"{b}/api/hooks/pay", payload, signed)
        assert status == 409, body
        assert "already accepted" in body["error"]
        status, body = await _post(session, f"{a}/api/hooks/pay", payload, signed)
        assert status == 409, body  # and on the process that accepted it, as before

        delivery = str(uuid.uuid4())
        github = {
            "X-Hub-Signature-256": body_signature(SECRET.encode(), payload),
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": "push",
        }
        status, body = await _post(session, f"{b}/api/hooks/gh", payload, github)
        assert status == 200, body
        status, body = await _post(session, f"{a}/api/hooks/gh", payload, github)
        assert status == 409, body
        assert f"delivery {delivery} was already accepted" in body["error"]
        status, body = await _post(session, f"{a}/api/hooks/gh", payload, {**github, "X-GitHub-Delivery": str(uuid.uuid4())})
        assert status == 200, body  # another delivery is another request


async def test_a_request_one_process_could_not_start_is_accepted_by_the_other(two):
    a, b = two
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{a}/api/workflows", json=webhook_workflow("pay-later", secret=SECRET)) as response:
            assert response.status == 201
        slow = {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=60_000)]}
        async with session.post(f"{a}/api/workflows", json=slow) as response:
            slow_id = (await response.json())["id"]
        async with session.post(f"{a}/api/workflows/{slow_id}/execute?wait=false") as response:
            assert response.status == 202, await response.text()  # A's only slot is taken
            running = (await response.json())["execution_id"]

        payload = json.dumps({"amount": 11}).encode()
        signed = {"X-Flowengine-Signature": sign(SECRET.encode(), payload)}
        status, body = await _post(session, f"{a}/api/hooks/pay-later", payload, signed)
        assert status == 503, body
        status, body = await _post(session, f"{b}/api/hooks/pay-later", payload, signed)
        assert status == 200, body
        status, body = await _post(session, f"{a}/api/hooks/pay-later", payload, signed)
        assert status == 409, body
        async with session.post(f"{a}/api/executions/{running}/cancel") as response:
            assert response.status in (200, 202)
