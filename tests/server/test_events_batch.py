"""``GET /api/events?batch=true``: one text frame per flush of the event bus, a JSON array of the
events of that loop iteration; filters, replay, slow-listener closes as without it.

A plain-function node body runs inline on the event loop, so the events it emits reach the bus
in one loop iteration and are written in one flush (as in test_events_backpressure.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from flowengine.nodes.api import NodeContext, NodeType
from flowengine.server import websocket
from flowengine.server.keys import BUS, REGISTRY, SOCKETS

from support.api import execute, link, node, register
from support.websocket import RECEIVE_TIMEOUT, raw_listener, receive_until, server_connections, wait_for_no_listeners

BURST = 300


def _chatty(ctx: NodeContext) -> dict[str, Any]:
    for number in range(BURST):
        ctx.info(f"line {number}")
    return {"done": True}


CHATTY = NodeType("test.chatty", f"Emits {BURST} Info events inline", "test", _chatty, any_outputs=True)


@pytest.fixture
async def chatty_client(make_client):
    client = await make_client()
    client.app[REGISTRY].register(CHATTY)
    return client


async def receive_batches_until(ws: aiohttp.ClientWebSocketResponse, event_type: str = "WorkflowCompleted") -> list[list[dict]]:
    """Array frames up to the one holding an event of ``event_type``."""
    batches: list[list[dict]] = []
    while True:
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)
        assert message.type == WSMsgType.TEXT, (message.type, message.data, message.extra)
        batch = json.loads(message.data)
        assert isinstance(batch, list) and batch, message.data
        batches.append(batch)
        if any(event["type"] == event_type for event in batch):
            return batches


async def test_a_batch_holds_the_events_of_one_flush_and_nothing_is_lost(chatty_client):
    client = chatty_client
    workflow_id = await register(client, {"name": "chatty", "nodes": [node("chatty", "test.chatty")]})
    async with client.ws_connect("/api/events?batch=true") as batched, client.ws_connect("/api/events") as single:
        await execute(client, workflow_id)
        batches = await receive_batches_until(batched)
        one_by_one = await receive_until(single)
    flattened = [event for batch in batches for event in batch]
    assert flattened == one_by_one
    assert [event["seq"] for event in flattened] == list(range(1, BURST + 5))
    # The body's burst was published in one loop iteration: it arrives in one frame.
    assert max(len(batch) for batch in batches) >= BURST
    assert len(batches) < len(flattened)


async def test_filters_apply_to_batched_events(chatty_client):
    client = chatty_client
    chatty = await register(client, {"name": "chatty", "nodes": [node("chatty", "test.chatty")]})
    quiet = await register(client, {"name": "quiet", "nodes": [node("one", "transform.set", n=1)]})
    query = f"workflow_id={chatty}&types=NodeStarted,NodeCompleted,WorkflowCompleted&batch=1"
    async with client.ws_connect(f"/api/events?{query}") as ws:
        await execute(client, quiet)
        await execute(client, chatty)
        batches = await receive_batches_until(ws)
    events = [event for batch in batches for event in batch]
    assert [event["type"] for event in events] == ["NodeStarted", "NodeCompleted", "WorkflowCompleted"]
    assert {event["workflow_id"] for event in events} == {chatty}


async def test_replay_of_a_finished_execution_comes_in_arrays(chatty_client, monkeypatch):
    monkeypatch.setattr(websocket, "REPLAY_BATCH", 100)
    client = chatty_client
    workflow_id = await register(client, {"name": "chatty", "nodes": [node("chatty", "test.chatty")]})
    execution_id = (await execute(client, workflow_id))["execution_id"]
    recorded = await (await client.get(f"/api/executions/{execution_id}/events")).json()
    async with client.ws_connect(f"/api/events?execution_id={execution_id}&replay=true&batch=true") as ws:
        batches = await receive_batches_until(ws)
    assert [len(batch) for batch in batches] == [100, 100, 100, len(recorded) - 300]
    assert [event for batch in batches for event in batch] == recorded


async def test_replay_then_live_has_no_gap_and_no_duplicate(client):
    document = {
        "name": "slow",
        "nodes": [node("first", "transform.set", message="hi"), node("wait", "time.delay", delay_ms=300)],
        "connections": [link("first", "message", "wait", "message")],
    }
    workflow_id = await register(client, document)
    response = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={})
    execution_id = (await response.json())["execution_id"]
    for _ in range(250):  # until the delay node has started: some events recorded, more to come
        events = await (await client.get(f"/api/executions/{execution_id}/events?types=NodeStarted&node_id=wait")).json()
        if events:
            break
        await asyncio.sleep(0.02)
    async with client.ws_connect(f"/api/events?execution_id={execution_id}&replay=true&batch=true") as ws:
        batches = await receive_batches_until(ws)
    seqs = [event["seq"] for batch in batches for event in batch]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(batches) >= 2  # the replayed array, then live ones


async def test_a_batched_listener_that_never_reads_is_closed_with_1013(make_client):
    client = await make_client(ws_queue=50)
    client.app[REGISTRY].register(CHATTY)
    workflow_id = await register(client, {"name": "chatty", "nodes": [node("chatty", "test.chatty")]})
    idle = await client.ws_connect("/api/events?batch=true")
    await execute(client, workflow_id)
    message = await idle.receive(timeout=RECEIVE_TIMEOUT)
    while message.type == WSMsgType.TEXT:
        assert isinstance(json.loads(message.data), list)
        message = await idle.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == WSMsgType.CLOSE and message.data == 1013
    assert "fell 50 events behind" in message.extra
    await idle.close()
    await wait_for_no_listeners(client)


BIG_EVENT = "x" * 20_000


async def _big_bursts(ctx: NodeContext) -> dict[str, Any]:
    # Yields between bursts, so that each burst is a flush of its own: many array frames.
    for _ in range(15):
        for _ in range(10):
            ctx.info(BIG_EVENT)
        await asyncio.sleep(0)
    return {"done": True}


BIG = NodeType("test.big", "Emits 150 events of 20 kB in bursts", "test", _big_bursts, any_outputs=True)


async def test_a_batched_client_that_stops_reading_tcp_is_cut_off(make_client, monkeypatch, caplog):
    # The listener's backlog is counted through the batching transport: a client that stops
    # reading must still be found lagging (1013) and cut off, not buffered without bound.
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    client = await make_client(ws_queue=50)
    client.app[REGISTRY].register(BIG)
    workflow_id = await register(client, {"name": "big", "nodes": [node("big", "test.big")]})
    sock = await raw_listener(client, "?batch=true", narrow=True)
    try:
        body = await execute(client, workflow_id)
        assert body["status"] == "succeeded"
        for _ in range(500):
            if not client.app[BUS].listeners and not server_connections(client, sock.getsockname()):
                break
            await asyncio.sleep(0.01)
        assert not client.app[BUS].listeners
        assert not server_connections(client, sock.getsockname())
        assert not client.app[SOCKETS]
        assert any(re.search(r"dropped \(1013\)", r.getMessage()) for r in caplog.records)
    finally:
        sock.close()


async def test_a_bad_batch_value_is_a_400(client):
    response = await client.get("/api/events?batch=maybe")
    assert response.status == 400
    assert (await response.json())["error"] == "batch: expected true or false, got 'maybe'"


def test_the_transport_counts_the_backlog_in_the_listener_s_bytes():
    from flowengine.core.events import text_frame

    class Socket:
        def __init__(self) -> None:
            self.written: list[bytes] = []
            self.buffered = 0

        def write(self, data: bytes) -> None:
            self.written.append(data)
            self.buffered += len(data)

        def get_write_buffer_size(self) -> int:
            return self.buffered

        def is_closing(self) -> bool:
            return False

    socket = Socket()
    transport = websocket.BatchingTransport(socket)  # type: ignore[arg-type]
    texts = ['{"seq":1}', '{"seq":2,"pad":"' + "y" * 200 + '"}', '{"seq":3,"big":"' + "z" * 70_000 + '"}']
    first = b"".join(text_frame(text) for text in texts[:2])
    second = text_frame(texts[2])
    transport.write(first)
    transport.write(second)
    assert [json.loads(frame[frame.index(b"["):]) for frame in socket.written[:1]] == [[{"seq": 1}, json.loads(texts[1])]]
    assert socket.written[1].endswith(("[" + texts[2] + "]").encode())
    assert transport.get_write_buffer_size() == len(first) + len(second)
    socket.buffered = len(socket.written[1])  # the first array frame is sent, the second is not
    assert transport.get_write_buffer_size() == len(second)
    socket.buffered = 1  # a frame partly sent counts as unsent
    assert transport.get_write_buffer_size() == len(second)
    socket.buffered = 0
    assert transport.get_write_buffer_size() == 0
