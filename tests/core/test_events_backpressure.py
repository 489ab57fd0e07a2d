"""Backpressure on /api/events: a listener that falls behind is dropped with 1013, loudly, and
neither the execution nor the other listeners notice.

A node type's plain-function body runs inline on the event loop, so all the events a body emits
reach the bus in one loop iteration and are written in one flush: a burst bigger than the limit
puts a listener over it deterministically, without timing tricks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import Any

import pytest
from aiohttp import WSMsgType

from flowengine.core.events import Listener, text_frame
from flowengine.nodes.api import NodeContext, NodeType
from flowengine.server import websocket
from flowengine.server.keys import BUS, REGISTRY, SOCKETS

from support.api import execute, node, register
from support.websocket import (
    BIG,
    BIG_EVENT,
    RECEIVE_TIMEOUT,
    raw_listener,
    receive_until,
    server_connections,
    wait_for_no_listeners,
)

QUEUE = 50
FLOOD = 500


def _chatty(ctx: NodeContext) -> dict[str, Any]:
    for number in range(FLOOD):
        ctx.info(f"line {number}")
    return {"done": True}


CHATTY = NodeType("test.chatty", f"Emits {FLOOD} Info events inline", "test", _chatty, any_outputs=True)


@pytest.fixture
async def flood_client(make_client):
    client = await make_client(ws_queue=QUEUE)
    client.app[REGISTRY].register(CHATTY)
    return client


async def test_listener_that_never_reads_is_closed_with_1013(flood_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = flood_client
    workflow_id = await register(client, {"name": "flood", "nodes": [node("chatty", "test.chatty")]})
    small = await register(client, {"name": "small", "nodes": [node("one", "transform.set", n=1)]})
    idle = await client.ws_connect("/api/events")
    # This one reads all along, and its filter keeps it well under the queue limit.
    reader = await client.ws_connect("/api/events?types=WorkflowStarted,NodeStarted,NodeCompleted,WorkflowCompleted")

    body = await execute(client, workflow_id)  # a normal 200 while a listener is being dropped
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"chatty": {"done": {"type": "Bool", "value": True}}}

    # Only now does the idle listener look: whatever it was sent, it ends with 1013.
    received = 0
    while True:
        message = await idle.receive(timeout=RECEIVE_TIMEOUT)
        if message.type != WSMsgType.TEXT:
            break
        received += 1
    assert message.type == WSMsgType.CLOSE, (message.type, message.data)
    assert message.data == 1013
    # The close frame carries 1013 either way; whether the client's reply to it still gets
    # through depends on timing: when the server's close runs while its handler is waiting in
    # receive(), aiohttp closes the transport right after sending the close frame, and the
    # client records its failed reply as 1006.
    assert idle.close_code in (1013, 1006)
    total = FLOOD + 4  # WorkflowStarted, NodeStarted, the Info events, NodeCompleted, WorkflowCompleted
    missed = int(re.search(r"(\d+) events missed", message.extra).group(1))
    assert f"fell {QUEUE} events behind" in message.extra
    assert QUEUE < missed <= total - received
    assert len(message.extra.encode()) <= 123  # a close frame's reason must fit in 123 bytes

    events = await receive_until(reader)
    assert [e["type"] for e in events] == ["WorkflowStarted", "NodeStarted", "NodeCompleted", "WorkflowCompleted"]
    assert [e["seq"] for e in events] == [1, 2, FLOOD + 3, FLOOD + 4]

    # The reader keeps working, and a newcomer is welcome again.
    async with client.ws_connect("/api/events") as newcomer:
        again = await execute(client, small)
        assert [e["type"] for e in await receive_until(reader)][-1] == "WorkflowCompleted"
        fresh = await receive_until(newcomer)
    assert {e["execution_id"] for e in fresh} == {again["execution_id"]}
    assert [e["seq"] for e in fresh] == list(range(1, len(fresh) + 1))

    await reader.close()
    await idle.close()
    await wait_for_no_listeners(client)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_listener_under_the_limit_gets_every_event(make_client):
    client = await make_client(ws_queue=FLOOD + 10)
    client.app[REGISTRY].register(CHATTY)
    workflow_id = await register(client, {"name": "flood", "nodes": [node("chatty", "test.chatty")]})
    async with client.ws_connect("/api/events") as ws:
        await execute(client, workflow_id)
        events = await receive_until(ws)
    assert len(events) == FLOOD + 4
    assert [e["seq"] for e in events] == list(range(1, FLOOD + 5))
    infos = [e["event"]["message"] for e in events if e["type"] == "NodeEvent"]
    assert infos == [f"line {number}" for number in range(FLOOD)]


async def test_lagging_listener_memory_is_released(flood_client):
    client = flood_client
    workflow_id = await register(client, {"name": "flood", "nodes": [node("chatty", "test.chatty")]})
    idle = await client.ws_connect("/api/events")
    await execute(client, workflow_id)
    await execute(client, workflow_id)
    (listener,) = client.app[BUS].listeners or [None]
    if listener is not None:  # still being closed: nothing of the flood may be held for it
        assert listener.backlog() <= QUEUE
    message = await idle.receive(timeout=RECEIVE_TIMEOUT)
    while message.type == WSMsgType.TEXT:
        message = await idle.receive(timeout=RECEIVE_TIMEOUT)
    assert message.data == 1013
    await wait_for_no_listeners(client)


# -- a client that stops reading at the TCP level --------------------------------------------

async def test_client_that_stops_reading_tcp_cannot_hold_the_server(make_client, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    client = await make_client(ws_queue=QUEUE)
    client.app[REGISTRY].register(BIG)
    workflow_id = await register(client, {"name": "big", "nodes": [node("big", "test.big")]})
    sock = await raw_listener(client, narrow=True)
    try:
        async with client.ws_connect("/api/events?types=WorkflowCompleted") as bystander:
            body = await execute(client, workflow_id)
            assert body["status"] == "succeeded"
            assert (await receive_until(bystander))[0]["execution_id"] == body["execution_id"]

            # The stuck listener is cut off within the close timeout, though it never read a byte
            # after the handshake: no listener, no socket, no connection is kept for it.
            for _ in range(500):
                if len(client.app[BUS].listeners) == 1 and not server_connections(client, sock.getsockname()):
                    break
                await asyncio.sleep(0.01)
            assert len(client.app[BUS].listeners) == 1  # the bystander
            assert not server_connections(client, sock.getsockname())
            assert len(client.app[SOCKETS]) == 1
            assert any("1013" in r.getMessage() for r in caplog.records)

        # What the client finds when it reads again: a connection that has ended.
        sock.settimeout(RECEIVE_TIMEOUT)

        def read_to_the_end() -> bytes:
            received = b""
            try:
                while chunk := sock.recv(1 << 16):
                    received += chunk
            except ConnectionResetError:
                pass
            return received

        received = await asyncio.to_thread(read_to_the_end)
        assert received.startswith(b"HTTP/1.1 101 Switching Protocols")
        assert len(received) < 15 * 10 * len(BIG_EVENT)  # it was not sent everything
    finally:
        sock.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _wait_until_stuck(client, sock: socket.socket) -> None:
    """Until the server's socket has stopped draining with events of the listener still unsent."""
    (connection,) = server_connections(client, sock.getsockname())
    (listener,) = client.app[BUS].listeners
    for _ in range(500):
        if connection.transport.get_write_buffer_size() > 0 and listener.backlog():
            break
        await asyncio.sleep(0.01)
    assert connection.transport.get_write_buffer_size() > 0
    assert listener.backlog() and not listener.lagging


async def test_shutdown_is_not_held_up_by_a_client_that_stopped_reading(make_client, monkeypatch):
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    client = await make_client(ws_queue=100_000)  # never lagging: only the shutdown can end it
    client.app[REGISTRY].register(BIG)
    workflow_id = await register(client, {"name": "big", "nodes": [node("big", "test.big")]})
    sock = await raw_listener(client, narrow=True)
    try:
        await execute(client, workflow_id)
        await _wait_until_stuck(client, sock)
        # Without a bound on the close, on_shutdown would wait for this client forever.
        await asyncio.wait_for(client.server.close(), RECEIVE_TIMEOUT)
        assert not client.app[BUS].listeners
    finally:
        sock.close()


async def test_dead_client_with_unsent_data_is_cut_off_after_missed_pong(make_client, monkeypatch):
    # The heartbeat notices the client is gone and closes the transport, but a graceful close
    # waits for buffered bytes to drain, which never happens: the handler aborts it instead.
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    client = await make_client(ws_queue=100_000, ws_heartbeat=1.0)
    client.app[REGISTRY].register(BIG)
    workflow_id = await register(client, {"name": "big", "nodes": [node("big", "test.big")]})
    sock = await raw_listener(client, narrow=True)
    try:
        await execute(client, workflow_id)
        await _wait_until_stuck(client, sock)
        for _ in range(500):
            if not server_connections(client, sock.getsockname()):
                break
            await asyncio.sleep(0.01)
        assert not server_connections(client, sock.getsockname())
        assert not client.app[BUS].listeners
    finally:
        sock.close()


def test_listener_held_before_attach_is_bounded_and_counts_what_it_missed():
    # Before the upgrade (and any replay) is done, a listener holds its frames itself.
    dropped = []
    listener = Listener(3)
    listener.on_lagging = lambda: dropped.append(listener.backlog())
    for number in range(3):
        listener.deliver(text_frame(f"event {number}"), 1)
    assert listener.backlog() == 3 and not listener.lagging
    listener.deliver(text_frame("two") + text_frame("more"), 2)
    assert listener.lagging
    assert listener.backlog() == 0  # nothing more is held for a listener being disconnected
    assert listener.missed == 5  # the 3 held, never sent, and the 2 that overflowed
    for number in range(5):
        listener.deliver(text_frame(f"late {number}"), 1)
    assert listener.missed == 10
    assert dropped == [0]  # told once, at the moment it overflowed
