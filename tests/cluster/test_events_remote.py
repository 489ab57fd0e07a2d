"""A WebSocket listener on one process sees the events of executions another process runs,
as the same frames a listener on that process gets, and nothing goes through PostgreSQL while
no other process's listener wants it. Real processes on a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket

import aiohttp

from support.api import link, node
from support.cluster import WAIT
from support.clusterprocs import LISTENER_HEARTBEAT, chain, metric, post, receive_frames, wait_for_metric

PUBLISHED = "flowengine_cluster_events_published_total"
RECEIVED = "flowengine_cluster_events_received_total"
SPILLED = "flowengine_cluster_events_spilled_total"
INTEREST = "flowengine_cluster_remote_listener_filters"


# Short heartbeats: a lost LISTEN connection is found, and listeners are announced, within a
# fraction of a second.
PROCESS_ENVIRONMENT = {"FLOWENGINE_NODE_HEARTBEAT": LISTENER_HEARTBEAT}


def _mixed() -> dict:
    """A chain of delays, and beside it a node whose 12 kB output fits in no notification."""
    document = chain(5, 1, "mixed")
    document["nodes"] += [node("big", "transform.set", text="x" * 12_000), node("log", "debug.log")]
    document["connections"].append(link("big", "text", "log", "message"))
    return document


async def _run(session: aiohttp.ClientSession, base: str) -> str:
    status, result, _ = await post(session, f"{base}/api/workflows/mixed/execute", {"inputs": {"v": 1}})
    assert status == 200, result
    return result["execution_id"]


async def test_a_listener_on_b_gets_every_event_of_an_execution_on_a_as_a_local_listener_does(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        _, b = await processes.start(session)
        status, body, _ = await post(session, f"{a}/api/workflows", _mixed())
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


def _raw_listener(base: str, query: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then reads only when the test does
    (a small receive buffer: the server soon has to hold frames back for it)."""
    host, _, port = base.removeprefix("http://").rpartition(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/events{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    sock.settimeout(WAIT)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _close_code(sock: socket.socket) -> int:
    """Read frames until the close frame; its status code."""
    data = bytearray()
    at = 0

    def need(end: int) -> None:
        while len(data) < end:
            chunk = sock.recv(1 << 20)
            assert chunk, "the connection ended without a close frame"
            data.extend(chunk)

    while True:
        need(at + 2)
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        start = at + 2
        if size == 126:
            need(at + 4)
            size, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
        elif size == 127:
            need(at + 10)
            size, start = int.from_bytes(data[at + 2 : at + 10], "big"), at + 10
        need(start + size)
        if opcode == 0x8:
            return int.from_bytes(data[start : start + 2], "big")
        at = start + size


async def test_a_remote_listener_that_falls_behind_gets_1013_and_one_on_a_stopping_process_1001(processes):
    async with aiohttp.ClientSession() as session:
        _, a = await processes.start(session)
        b_process, b = await processes.start(session, FLOWENGINE_WS_QUEUE="20")
        status, body, _ = await post(session, f"{a}/api/workflows", chain(200, 0, "heavy"))
        assert status == 201, body
        stuck = _raw_listener(b, "?workflow_id=heavy")
        # Only the end of each execution: it never falls behind.
        async with session.ws_connect(f"{b}/api/events?workflow_id=heavy&types=WorkflowCompleted") as reading:
            assert await wait_for_metric(session, a, INTEREST, lambda n: n >= 1) >= 1
            # 200 events of 50 kB (each node's outputs), through spill rows: more than the sockets buffer.
            status, result, _ = await post(session, f"{a}/api/workflows/heavy/execute", {"inputs": {"v": "x" * 50_000}})
            assert status == 200, result
            (frame,) = await receive_frames(reading, result["execution_id"])
            assert json.loads(frame)["seq"] == 3 * 200 + 2
            with stuck:
                assert await asyncio.to_thread(_close_code, stuck) == 1013
            b_process.send_signal(signal.SIGTERM)
            message = await reading.receive(timeout=WAIT)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1001, message
