"""Event delivery to many listeners: each event is made into a WebSocket frame once and written,
batched per loop iteration, straight to every listener's transport (flowengine/core/events.py).

What a listener sees must not change: whole, valid text frames, one event each, in seq order,
with aiohttp's own control frames (pings, close) between them and never inside them. The few
tests that drive the bus directly use a stand-in transport, to pin down the in-flight
accounting that decides when a listener is too far behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from typing import Any

import pytest
from aiohttp import WSMsgType

from flowengine.core.events import EventBus, Listener, text_frame
from flowengine.nodes.api import NodeContext, NodeType, Port
from flowengine.server import websocket
from flowengine.server.keys import BUS, REGISTRY, SOCKETS

from support.api import execute, node, register, two_node_workflow
from support.websocket import RECEIVE_TIMEOUT, raw_listener, receive_until, wait_for_no_listeners

# -- many listeners --------------------------------------------------------------------------


async def test_many_listeners_each_get_every_event_in_seq_order(client):
    wanted = await register(client, two_node_workflow("wanted"))
    other = await register(client, two_node_workflow("other"))
    everyone = [await client.ws_connect("/api/events") for _ in range(30)]
    by_type = [await client.ws_connect("/api/events?types=NodeStarted,WorkflowCompleted") for _ in range(5)]
    by_workflow = [await client.ws_connect(f"/api/events?workflow_id={wanted}") for _ in range(5)]
    try:
        # Concurrent executions: their events interleave within the same loop iterations.
        bodies = await asyncio.gather(*(execute(client, workflow) for workflow in [wanted, other] * 3))
        executions = {body["execution_id"] for body in bodies}
        seen = [await receive_until(ws, 6) for ws in everyone]
        typed = [await receive_until(ws, 6) for ws in by_type]
        mine = [await receive_until(ws, 3) for ws in by_workflow]
    finally:
        for ws in everyone + by_type + by_workflow:
            await ws.close()

    reference = seen[0]
    assert len(reference) == 6 * 7
    assert {event["execution_id"] for event in reference} == executions
    for execution_id in executions:
        seqs = [event["seq"] for event in reference if event["execution_id"] == execution_id]
        assert seqs == list(range(1, 8)), (execution_id, seqs)
    assert all(events == reference for events in seen)  # the same frames, in the same order
    expected_typed = [event for event in reference if event["type"] in ("NodeStarted", "WorkflowCompleted")]
    assert all(events == expected_typed for events in typed)
    expected_mine = [event for event in reference if event["workflow_id"] == wanted]
    assert len(expected_mine) == 3 * 7
    assert all(events == expected_mine for events in mine)
    await wait_for_no_listeners(client)


# -- the frames themselves -------------------------------------------------------------------


def _sized(ctx: NodeContext) -> dict[str, Any]:
    for size in ctx.input("sizes"):
        # Two-byte characters, so that a length counted in characters would be wrong.
        ctx.info("é" * (size // 2) + "x" * (size % 2))
    return {"done": True}


SIZED = NodeType("test.sized", "Emits an Info event per size given", "test", _sized, inputs=(Port("sizes"),), outputs=(Port("done"),))


async def test_frames_at_each_payload_length_boundary_arrive_whole(client):
    """Payloads on both sides of 65,535/65,536 bytes (16-bit vs 64-bit length) decode in a
    standard client, byte for byte. (An event is never under 126 bytes: the 7-bit form is
    checked on the frame alone, below.)"""
    client.app[REGISTRY].register(SIZED)
    workflow_id = await register(client, {"name": "sized", "nodes": [node("s", "test.sized")]})

    async def payloads(sizes: list[int]) -> list[str]:
        async with client.ws_connect("/api/events?types=NodeEvent,WorkflowCompleted") as ws:
            await execute(client, workflow_id, {"sizes": sizes})
            texts = []
            while True:
                message = await ws.receive(timeout=RECEIVE_TIMEOUT)
                assert message.type == WSMsgType.TEXT, (message.type, message.data)
                if '"WorkflowCompleted"' in message.data:
                    return texts
                texts.append(message.data)

    # The events differ only in their message (same seq digits, same id lengths), so an empty
    # message gives the fixed part of each payload.
    probes = await payloads([0, 0, 0, 0])
    fixed = [len(text.encode()) for text in probes]
    targets = [300, 65_535, 65_536, 200_000]
    texts = await payloads([target - base for target, base in zip(targets, fixed)])
    assert [len(text.encode()) for text in texts] == targets
    for text, target, base in zip(texts, targets, fixed):
        size = target - base
        assert json.loads(text)["event"]["message"] == "é" * (size // 2) + "x" * (size % 2)


def test_text_frame_header_follows_rfc6455():
    assert text_frame("a" * 125)[:2] == b"\x81\x7d"
    assert text_frame("a" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame("a" * 65_535)[:4] == b"\x81\x7e\xff\xff"
    assert text_frame("a" * 65_536)[:10] == b"\x81\x7f" + struct.pack("!Q", 65_536)
    frame = text_frame("é")  # the length is in bytes, not characters
    assert frame == b"\x81\x02" + "é".encode()


async def test_lone_surrogate_in_an_event_is_sent_and_recorded_as_a_json_escape(client):
    # Not valid UTF-8 as it stands: it used to kill the sender (and lose the history batch).
    def odd(ctx: NodeContext) -> dict[str, Any]:
        ctx.info("broken \ud800 pair")
        return {"done": True}

    client.app[REGISTRY].register(NodeType("test.odd", "Emits a lone surrogate", "test", odd, any_outputs=True))
    workflow_id = await register(client, {"name": "odd", "nodes": [node("o", "test.odd")]})
    async with client.ws_connect("/api/events?types=NodeEvent,WorkflowCompleted") as ws:
        body = await execute(client, workflow_id)
        events = await receive_until(ws)
    assert events[0]["event"]["message"] == "broken \ud800 pair"
    response = await client.get(f"/api/executions/{body['execution_id']}/events")
    assert response.status == 200
    recorded = json.loads(await response.text())
    assert [event["event"]["message"] for event in recorded if event["type"] == "NodeEvent"] == ["broken \ud800 pair"]


async def _ticking(ctx: NodeContext) -> dict[str, Any]:
    for number in range(40):
        ctx.info(f"tick {number}")
        await asyncio.sleep(0.01)
    return {"done": True}


TICKING = NodeType("test.ticking", "Emits an event every 10 ms", "test", _ticking, any_outputs=True)


async def test_pings_interleave_with_event_frames(make_client):
    client = await make_client(ws_heartbeat=0.1)
    client.app[REGISTRY].register(TICKING)
    workflow_id = await register(client, {"name": "ticking", "nodes": [node("t", "test.ticking")]})
    async with client.ws_connect("/api/events", autoping=False) as ws:
        running = asyncio.ensure_future(execute(client, workflow_id))
        kinds: list[str] = []
        events: list[dict[str, Any]] = []
        while not events or events[-1]["type"] != "WorkflowCompleted":
            message = await ws.receive(timeout=RECEIVE_TIMEOUT)
            if message.type == WSMsgType.PING:
                kinds.append("ping")
                await ws.pong(message.data)
                continue
            assert message.type == WSMsgType.TEXT, (message.type, message.data)
            kinds.append("event")
            events.append(json.loads(message.data))
        await running
    assert [event["seq"] for event in events] == list(range(1, 45))
    # Pings arrived while events were still to come: written between frames, not inside one.
    assert "ping" in kinds[:-1]


async def test_client_that_vanishes_mid_stream_costs_no_warnings(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.app[REGISTRY].register(TICKING)
    workflow_id = await register(client, {"name": "ticking", "nodes": [node("t", "test.ticking")]})
    ws = await client.ws_connect("/api/events")
    running = asyncio.ensure_future(execute(client, workflow_id))
    await ws.receive(timeout=RECEIVE_TIMEOUT)
    # Gone without a close frame, as when a browser tab is killed: a TCP reset.
    transport = ws._conn.transport  # aiohttp has no public handle on it
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    body = await running
    assert body["status"] == "succeeded"
    await wait_for_no_listeners(client)
    # Writing on after the connection was lost would log asyncio's "socket.send() raised exception."
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole server frame in ``data`` (unmasked, as servers send)."""
    parsed = []
    while len(data) >= 2:
        opcode, size, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            size, start = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, start = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < start + size:
            break
        parsed.append((opcode, data[start : start + size]))
        data = data[start + size :]
    return parsed


def _read_frames(sock: socket.socket, until: bytes | None = None) -> list[tuple[int, bytes]]:
    """Every frame until the server cuts the connection, or until a whole frame containing
    ``until`` has been read (blocking: run it in a thread)."""
    received = b""
    marker_seen = False
    try:
        while chunk := sock.recv(1 << 16):
            received += chunk
            if until is None:
                continue
            # The marker's bytes can arrive before the rest of its frame: stop on a whole frame only.
            marker_seen = marker_seen or until in received[-len(chunk) - len(until) :]
            whole_frames = _parse_frames(received.split(b"\r\n\r\n", 1)[1]) if marker_seen else []
            if whole_frames and until in whole_frames[-1][1]:
                break
    except ConnectionResetError:
        pass
    assert received.startswith(b"HTTP/1.1 101 Switching Protocols")
    return _parse_frames(received.split(b"\r\n\r\n", 1)[1])


async def test_shutdown_close_frame_comes_last_while_events_stream(client, monkeypatch):
    # The client never answers the close, so the server waits for it (CLOSE_TIMEOUT) while an
    # execution keeps publishing: nothing may be written after the close frame.
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    client.app[REGISTRY].register(TICKING)
    workflow_id = await register(client, {"name": "ticking", "nodes": [node("t", "test.ticking")]})
    sock = await raw_listener(client)
    try:
        response = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={})
        assert response.status == 202
        await asyncio.sleep(0.1)  # a few ticks out, more to come
        reading = asyncio.ensure_future(asyncio.to_thread(_read_frames, sock))
        await client.server.close()
        parsed = await reading
    finally:
        sock.close()
    opcodes = [opcode for opcode, _ in parsed]
    assert opcodes.count(1) >= 3 and opcodes[-1] == 8, opcodes
    assert struct.unpack("!H", parsed[-1][1][:2])[0] == 1001
    texts = [json.loads(payload) for opcode, payload in parsed if opcode == 1]
    assert [event["seq"] for event in texts] == list(range(1, len(texts) + 1))


async def test_event_published_as_the_close_starts_is_not_sent_after_it(client, monkeypatch):
    # Deterministic version of the race above: the close runs first in the next loop iteration,
    # and the flush of an event published just now comes right after it, before the handler
    # has noticed the close. The close must stop the bus writing to that socket first.
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.3)
    sock = await raw_listener(client)
    try:
        (server_side,) = client.app[SOCKETS]
        closing = asyncio.ensure_future(server_side.close_or_abort(1001, "going"))
        event = {"type": "NodeEvent", "execution_id": "e", "workflow_id": "w", "seq": 1}
        client.app[BUS].publish(json.dumps(event), "NodeEvent", "e", "w")
        parsed = await asyncio.to_thread(_read_frames, sock)
        await closing
    finally:
        sock.close()
    assert [opcode for opcode, _ in parsed] == [8]


async def test_events_published_during_a_long_replay_follow_it_without_gap(client, monkeypatch):
    """A replay is sent at the pace the client reads; events published meanwhile are held for
    the listener and written right after the replay, before anything newer."""
    async def streamer(ctx: NodeContext) -> dict[str, Any]:
        for number in range(100):
            ctx.info(f"{number} " + "x" * 20_000)  # 2 MB of history, for a client with a small window
        while not client.app[BUS].listeners:  # subscribed: the replay is about to be sent
            await asyncio.sleep(0.005)
        for number in range(200):
            ctx.info(f"live {number}")
            await asyncio.sleep(0)
        return {"done": True}

    client.app[REGISTRY].register(NodeType("test.streamer", "History, then live events", "test", streamer, any_outputs=True))
    held_at_attach: list[int] = []
    attach = Listener.attach

    def spying_attach(listener: Listener, transport: Any) -> None:
        held_at_attach.append(listener.backlog())
        attach(listener, transport)

    monkeypatch.setattr(Listener, "attach", spying_attach)
    workflow_id = await register(client, {"name": "streamer", "nodes": [node("s", "test.streamer")]})
    response = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={})
    execution_id = (await response.json())["execution_id"]
    for _ in range(500):
        if client.app[BUS].published >= 102:  # WorkflowStarted, NodeStarted, the 100
            break
        await asyncio.sleep(0.01)
    sock = await raw_listener(client, f"?execution_id={execution_id}&replay=true", narrow=True)
    try:
        parsed = await asyncio.to_thread(_read_frames, sock, b'"WorkflowCompleted"')
    finally:
        sock.close()
    events = [json.loads(payload) for opcode, payload in parsed if opcode == 1]
    assert [event["seq"] for event in events] == list(range(1, 100 + 200 + 5))
    assert events[-1]["type"] == "WorkflowCompleted"
    assert held_at_attach and held_at_attach[0] > 0  # the path under test was taken


# -- the bus and its accounting, with a stand-in transport ------------------------------------


class FakeTransport:
    """Buffers everything written; ``send(n)`` hands n bytes to the 'kernel'."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.delivered = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        self.buffer += data

    def send(self, size: int) -> None:
        self.delivered += self.buffer[:size]
        del self.buffer[:size]

    def get_write_buffer_size(self) -> int:
        return len(self.buffer)

    def is_closing(self) -> bool:
        return self.closing


def frames(*texts: str) -> bytes:
    return b"".join(text_frame(text) for text in texts)


def test_in_flight_events_are_counted_from_the_transport_buffer():
    dropped = []
    listener = Listener(5)
    listener.on_lagging = lambda: dropped.append(listener.missed)
    transport = FakeTransport()
    transport.write(b"\x81\x02hi")  # a replayed frame already buffered: no live event in it
    listener.attach(transport)
    listener.deliver(frames("a", "b"), 2)
    listener.deliver(frames("c", "d"), 2)
    assert listener.backlog() == 4
    transport.send(4 + len(frames("a", "b")) - 1)  # the replay, then all but a byte of a+b
    assert listener.backlog() == 4  # a frame only partly sent is still in flight
    transport.send(1)
    assert listener.backlog() == 2
    listener.deliver(frames("e", "f", "g"), 3)  # 2 + 3 = 5: at the limit, still fine
    assert not listener.lagging and listener.backlog() == 5
    listener.deliver(frames("h"), 1)  # 6 would be over: refused, not written
    assert listener.lagging and listener.missed == 1 and dropped == [1]
    listener.deliver(frames("i", "j"), 2)
    assert listener.missed == 3
    transport.send(len(transport.buffer))
    assert bytes(transport.delivered) == b"\x81\x02hi" + frames(*"abcdefg")  # whole frames, in order


def test_empty_buffer_resets_the_count():
    listener = Listener(3)
    transport = FakeTransport()
    listener.attach(transport)
    for _ in range(10):  # 30 events in all, never more than 3 in flight
        listener.deliver(frames("x", "y", "z"), 3)
        transport.send(len(transport.buffer))
        assert listener.backlog() == 0
    assert not listener.lagging


def test_closing_transport_is_not_written_to():
    listener = Listener(10)
    transport = FakeTransport()
    listener.attach(transport)
    transport.closing = True
    listener.deliver(frames("late"), 1)
    assert transport.buffer == b"" and listener.closed and not listener.lagging


async def test_bus_batches_an_iteration_and_a_late_subscriber_gets_only_later_events():
    bus = EventBus(queue_size=100)
    early, early_transport = bus.subscribe(), FakeTransport()
    early.attach(early_transport)
    picky, picky_transport = bus.subscribe(types=["B"]), FakeTransport()
    picky.attach(picky_transport)

    def publish(kind: str) -> None:
        bus.publish(kind, kind, "e", "w")

    publish("A")
    late, late_transport = bus.subscribe(), FakeTransport()
    late.attach(late_transport)
    publish("B")
    publish("C")
    assert early_transport.buffer == b""  # nothing is written while the iteration runs
    await asyncio.sleep(0)  # the flush scheduled by the first publish
    assert early_transport.buffer == frames("A", "B", "C")
    assert late_transport.buffer == frames("B", "C")
    assert picky_transport.buffer == frames("B")
    bus.unsubscribe(late)
    publish("D")
    await asyncio.sleep(0)
    assert early_transport.buffer == frames("A", "B", "C", "D")
    assert late_transport.buffer == frames("B", "C")


async def test_nobody_listening_schedules_nothing():
    bus = EventBus()
    loop = asyncio.get_running_loop()
    scheduled = []
    original = loop.call_soon
    loop.call_soon = lambda *args, **kwargs: scheduled.append(args) or original(*args, **kwargs)  # type: ignore[method-assign]
    try:
        bus.publish("A", "A", "e", "w")
    finally:
        del loop.call_soon
    assert scheduled == [] and bus.published == 1


@pytest.mark.parametrize("filters", [{}, {"types": ["A"]}])
async def test_listener_over_the_limit_in_one_burst_is_dropped_once(filters):
    bus = EventBus(queue_size=3)
    listener, transport = bus.subscribe(**filters), FakeTransport()
    listener.attach(transport)
    told = []
    listener.on_lagging = lambda: told.append(True)
    for _ in range(4):
        bus.publish("A", "A", "e", "w")
    await asyncio.sleep(0)
    assert listener.lagging and listener.missed == 4 and told == [True]
    assert transport.buffer == b""
    assert bus.listeners_dropped == 1
