"""Several real ``python -m flowengine`` processes on one PostgreSQL database: they share the
catalog and the history, and survive each other's death (kill -9, a pause past the node
timeout, a new process starting). Short heartbeat settings (support.cluster); every wait is
bounded."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp

from support.api import node
from support.cluster import HEARTBEAT, TIMEOUT, WAIT, get_execution, wait_for_status
from support.clusterprocs import post


def _versioned(text: str, workflow_id: str = "shared") -> dict:
    return {"id": workflow_id, "name": "shared", "nodes": [node("a", "transform.set", greeting=text)]}


def _slow(delay_ms: int) -> dict:
    return {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=delay_ms)]}


async def test_register_on_a_execute_on_b_read_on_a_then_put_on_b_runs_on_a(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", _versioned("version-one"))
        assert status == 201, body
        status, result, _ = await post(session, f"{b}/api/workflows/shared/execute")
        assert status == 200, result
        assert "version-one" in json.dumps(result["outputs"])
        status, record = await get_execution(session, a, result["execution_id"])
        assert status == 200 and record["status"] == "succeeded" and record["workflow_version"] == 1

        async with session.put(f"{b}/api/workflows/shared", json=_versioned("version-two")) as response:
            assert response.status == 200, await response.text()
        status, result, _ = await post(session, f"{a}/api/workflows/shared/execute")
        assert status == 200, result
        assert "version-two" in json.dumps(result["outputs"])
        status, record = await get_execution(session, b, result["execution_id"])
        assert record["workflow_version"] == 2

        async with session.delete(f"{a}/api/workflows/shared") as response:
            assert response.status == 200
        status, body, _ = await post(session, f"{b}/api/workflows/shared/execute")
        assert status == 404, body


async def test_two_processes_racing_for_one_webhook_path_exactly_one_wins(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        for attempt in range(5):
            path = f"race-{attempt}"
            documents = [
                {"name": f"{side}", "nodes": [node("log", "debug.log")],
                 "triggers": [{"id": "hook", "trigger_type": {"type": "Webhook", "path": path}}]}
                for side in ("a", "b")
            ]  # fmt: skip
            answers = await asyncio.gather(
                post(session, f"{a}/api/workflows", documents[0]), post(session, f"{b}/api/workflows", documents[1])
            )
            statuses = sorted(status for status, _, _ in answers)
            assert statuses == [201, 409], answers
            loser = next(body for status, body, _ in answers if status == 409)
            assert f"webhook path {path!r} is already used" in loser["error"]
            # Both processes route the path to the winner.
            for base in (a, b):
                status, body, _ = await post(session, f"{base}/api/hooks/{path}")
                assert status == 200, body


async def test_a_killed_process_executions_are_recorded_interrupted_by_another(processes):
    async with aiohttp.ClientSession() as session:
        a_process, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", _slow(60_000))
        assert status == 201
        async with session.ws_connect(f"{b}/api/events") as ws:
            status, started, _ = await post(session, f"{a}/api/workflows/{body['id']}/execute?wait=false")
            assert status == 202, started
            execution_id = started["execution_id"]
            a_process.send_signal(signal.SIGKILL)
            a_process.wait(WAIT)
            # B's reaper records it within the node timeout and a couple of heartbeats.
            completed = None
            deadline = asyncio.get_running_loop().time() + WAIT
            while completed is None and asyncio.get_running_loop().time() < deadline:
                message = await ws.receive(timeout=TIMEOUT + 10 * HEARTBEAT + WAIT / 2)
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                if event["type"] == "WorkflowCompleted" and event["execution_id"] == execution_id:
                    completed = event
        assert completed is not None, "B's listener never got the WorkflowCompleted of A's execution"
        assert completed["status"] == "interrupted" and completed["success"] is False
        record = await wait_for_status(session, b, execution_id, "interrupted")
        assert record["status"] == "interrupted"
        assert f":{a_process.pid}:" in record["error"], record["error"]  # names the dead process


async def test_a_paused_process_declared_dead_does_not_overwrite_interrupted_and_serves_again(processes):
    async with aiohttp.ClientSession() as session:
        a_process, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", _slow(1_000))
        assert status == 201
        status, started, _ = await post(session, f"{a}/api/workflows/{body['id']}/execute?wait=false")
        assert status == 202
        execution_id = started["execution_id"]
        a_process.send_signal(signal.SIGSTOP)
        try:
            record = await wait_for_status(session, b, execution_id, "interrupted")
            assert record["status"] == "interrupted", record
        finally:
            a_process.send_signal(signal.SIGCONT)
        # Its delay ended long ago: A completes it as soon as it runs again, but the write is
        # fenced. Until A's next heartbeat finds it was declared dead and registers again, A
        # acknowledges nothing (503); then it serves again.
        quick = {"name": "quick", "nodes": [node("a", "transform.set", greeting="back")]}
        status, registered, _ = await post(session, f"{b}/api/workflows", quick)
        assert status == 201, registered
        for _ in range(int(WAIT * 10)):
            status, result, _ = await post(session, f"{a}/api/workflows/{registered['id']}/execute")
            if status != 503:
                break
            await asyncio.sleep(0.1)
        assert status == 200, result
        status, record = await get_execution(session, b, execution_id)
        assert record["status"] == "interrupted", record
        # A registered again: its new executions are its own, and nobody reaps them.
        status, started, _ = await post(session, f"{a}/api/workflows/{body['id']}/execute?wait=false")
        assert status == 202
        record = await wait_for_status(session, b, started["execution_id"], "succeeded")
        assert record["status"] == "succeeded", record
    outputs = processes.stop_all()
    assert "declared dead" in outputs[0]


async def test_starting_another_process_does_not_interrupt_running_executions(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", _slow(60_000))
        assert status == 201
        status, started, _ = await post(session, f"{a}/api/workflows/{body['id']}/execute?wait=false")
        assert status == 202
        _, c = await processes.start(session)
        await asyncio.sleep(TIMEOUT + 2 * HEARTBEAT)  # past a whole node timeout with both alive
        status, record = await get_execution(session, c, started["execution_id"])
        assert status == 200 and record["status"] == "running", record
        # C does not run it: A stops it when asked through the database.
        async with session.post(f"{c}/api/executions/{started['execution_id']}/cancel") as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["status"] == "cancelled"
        status, record = await get_execution(session, a, started["execution_id"])
        assert record["status"] == "cancelled", record
