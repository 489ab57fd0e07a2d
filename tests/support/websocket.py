"""Listening on ``/api/events``: reading frames with a bound on a hang, waiting for the server
to drop its listeners, and a raw-socket listener that completes the handshake and then stops
reading (for the back-pressure tests)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from flowengine.nodes import NodeContext, NodeType
from flowengine.server.keys import BUS, SOCKETS

__all__ = ["RECEIVE_TIMEOUT", "raw_listener", "receive_event", "receive_until", "server_connections", "wait_for_no_listeners"]

RECEIVE_TIMEOUT = 5  # only reached when an expected frame never comes


async def receive_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next frame, which must be a JSON text frame."""
    message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == WSMsgType.TEXT, (message.type, message.data, message.extra)
    return json.loads(message.data)


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, count: int = 1, *, event_type: str = "WorkflowCompleted"
) -> list[dict[str, Any]]:
    """Frames up to and including the ``count``-th one of ``event_type``."""
    events: list[dict[str, Any]] = []
    seen = 0
    while seen < count:
        event = await receive_event(ws)
        events.append(event)
        seen += event["type"] == event_type
    return events


async def wait_for_no_listeners(client) -> None:
    """Until the event bus has no listener left (the handler's clean-up runs on the server's
    next turns after a close)."""
    for _ in range(200):
        if not client.app[BUS].listeners:
            return
        await asyncio.sleep(0.01)
    assert not client.app[BUS].listeners


def server_connections(client, peer: tuple[str, int]) -> list[Any]:
    """The server's connection objects for the client socket bound to ``peer``."""
    return [
        connection
        for connection in client.server.runner.server.connections
        if connection.transport is not None and connection.transport.get_extra_info("peername") == peer
    ]


async def raw_listener(client, query: str = "", *, narrow: bool = False) -> socket.socket:
    """A WebSocket client on ``/api/events{query}`` that completes the handshake and then reads
    bytes only when the test does, and never answers anything, not even a close.
    ``narrow``: small socket buffers on both ends, so that the server soon has to wait for it."""
    sock = socket.socket()
    if narrow:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", client.port))
    if narrow:
        for _ in range(500):
            server_side = server_connections(client, sock.getsockname())
            if server_side:
                break
            await asyncio.sleep(0.01)
        (connection,) = server_side
        connection.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    for _ in range(500):  # attached (and subscribed to the bus) once it is in SOCKETS
        if client.app[SOCKETS]:
            break
        await asyncio.sleep(0.01)
    assert client.app[SOCKETS]
    sock.settimeout(RECEIVE_TIMEOUT)
    return sock


BIG_EVENT = "x" * 20_000


async def _big_bursts(ctx: NodeContext) -> dict[str, Any]:
    # Yields between bursts, so the sender pushes frames (each burst a flush of its own) until
    # the socket stops draining.
    for _ in range(15):
        for _ in range(10):
            ctx.info(BIG_EVENT)
        await asyncio.sleep(0)
    return {"done": True}


# For tests of a client that stops reading at the TCP level.
BIG = NodeType("test.big", "Emits 150 events of 20 kB in bursts", "test", _big_bursts, any_outputs=True)
