"""A WebSocket listener on one process sees the events of executions another process runs,
as the same frames a listener on that process gets, and nothing goes through PostgreSQL while
no other process's listener wants it. Real processes on a real PostgreSQL database."""

from __future__ import annotations

import json

import aiohttp
import pytest

from support.api import link, node
from support.remote_events import Processes, chain, metric, post, receive_frames, wait_for_metric

PUBLISHED = "flowengine_cluster_events_published_total"
RECEIVED = "flowengine_cluster_events_received_total"
SPILLED = "flowengine_cluster_events_spilled_total"
INTEREST = "flowengine_cluster_remote_listener_filters"


@pytest.fixture
async def processes(pg_url):
    started = Processes(pg_url)
    yield started
    for output in started.stop_all():
        assert "[killed:" not in output, output  # every process stops on SIGTERM


def _mixed() -> dict:
    """A chain of delays, and beside it a node whose 12 kB output fits in no notification."""
    document = chain(5, 1, "mixed")
    document["nodes"] += [node("big", "transform.set", text="x" * 12_000), node("log", "debug.log")]
    document["connections"].append(link("big", "text", "log", "message"))
    return document


async def _run(session: aiohttp.ClientSession, base: str) -> str:
    status, result = await post(session, f"{base}/api/workflows/mixed/execute", {"inputs": {"v": 1}})
    assert status == 200, result
    return result["execution_id"]


async def test_a_listener_on_b_gets_every_event_of_an_execution_on_a_as_a_local_listener_does(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body = await post(session, f"{a}/api/workflows", _mixed())
        assert status == 201, body
        async with session.ws_connect(f"{a}/api/events?workflow_id=mixed") as local:
            # Nobody listens on B: the execution's events stay on A.
            execution_id = await _run(session, a)
            alone = await receive_frames(local, execution_id)
            assert await metric(session, a, PUBLISHED) == 0
            assert await metric(session, b, RECEIVED) == 0

            async with session.ws_connect(f"{b}/api/events?workflow_id=mixed") as remote:
                assert await wait_for_metric(session, a, INTEREST, lambda n: n >= 1) >= 1  # A knows what B wants
                execution_id = await _run(session, a)
                here = await receive_frames(local, execution_id)
                there = await receive_frames(remote, execution_id)
            assert there == here  # byte for byte the frames a listener on A got
            events = [json.loads(frame) for frame in there]
            assert [event["seq"] for event in events] == list(range(1, len(alone) + 1))
            assert {event["execution_id"] for event in events} == {execution_id}
            assert any(len(frame) > 8_000 for frame in there)  # the big one came through a spill row
            assert await metric(session, a, SPILLED) >= 1
            published = await metric(session, a, PUBLISHED)
            assert published == len(there)
            assert await metric(session, b, RECEIVED) == len(there)

            # B's listener gone, A stops sending.
            assert await wait_for_metric(session, a, INTEREST, lambda n: n == 0) == 0
            execution_id = await _run(session, a)
            await receive_frames(local, execution_id)
            assert await metric(session, a, PUBLISHED) == published

