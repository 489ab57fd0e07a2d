"""The live event stream, GET /api/events, seen the way a listener sees it: real WebSocket frames.

Ordering arguments used below: a listener receives events in publish order, so when the event a
test waits for is the last one published, everything the listener could have received has
arrived before it; anything that should have been filtered out would show up in the list.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from flowengine.nodes.api import NodeContext, NodeType, Port
from flowengine.server.keys import BUS, REGISTRY

from support.api import TIMESTAMP, execute, link, node, register, two_node_workflow
from support.websocket import RECEIVE_TIMEOUT, receive_event, receive_until


def parse_timestamp(text: str) -> datetime:
    assert TIMESTAMP.fullmatch(text), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset().total_seconds() == 0
    return moment


def floor_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)



async def test_two_node_execution_full_sequence(client):
    workflow_id = await register(client, two_node_workflow())
    async with client.ws_connect("/api/events") as ws:
        before = floor_ms(datetime.now(timezone.utc))
        body = await execute(client, workflow_id)
        after = datetime.now(timezone.utc)
        events = await receive_until(ws)

    execution_id = body["execution_id"]
    assert [(e["type"], e.get("node_id")) for e in events] == [
        ("WorkflowStarted", None),
        ("NodeStarted", "a"),
        ("NodeCompleted", "a"),
        ("NodeStarted", "b"),
        ("NodeEvent", "b"),
        ("NodeCompleted", "b"),
        ("WorkflowCompleted", None),
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for event in events:
        assert event["execution_id"] == execution_id
        assert event["workflow_id"] == workflow_id
    moments = [parse_timestamp(e["timestamp"]) for e in events]
    assert moments == sorted(moments)
    assert before <= moments[0] and moments[-1] <= after

    started, a_started, a_done, b_started, b_event, b_done, completed = events
    assert set(started) == {"type", "execution_id", "workflow_id", "seq", "timestamp", "trigger"}
    assert a_started["node_type"] == "transform.set"
    assert b_started["node_type"] == "debug.log"
    assert a_done["outputs"] == {"greeting": {"type": "String", "value": "hi"}}
    assert b_done["outputs"] == {"message": {"type": "String", "value": "hi"}}
    for done in (a_done, b_done):
        assert isinstance(done["duration_ms"], (int, float)) and done["duration_ms"] >= 0
    assert b_event["event"] == {"event_type": "Info", "message": "hi"}
    assert completed["success"] is True
    assert completed["status"] == "succeeded"
    assert isinstance(completed["duration_ms"], (int, float)) and completed["duration_ms"] >= 0
    assert completed["duration_ms"] == body["duration_ms"]


async def test_frames_are_compact_json_text(client):
    workflow_id = await register(client, two_node_workflow())
    async with client.ws_connect("/api/events") as ws:
        await execute(client, workflow_id)
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == WSMsgType.TEXT
    assert json.loads(message.data)["type"] == "WorkflowStarted"
    assert ", " not in message.data and '": ' not in message.data  # serialised once, compactly


# -- filters ---------------------------------------------------------------------------------


@pytest.fixture
def gates(client) -> dict[str, asyncio.Event]:
    """A test-only node type, ``test.gate``, that waits until the test opens its gate."""
    opened: dict[str, asyncio.Event] = {}

    async def gate(ctx: NodeContext) -> dict[str, Any]:
        await opened.setdefault(ctx.input("gate"), asyncio.Event()).wait()
        return {"passed": ctx.input("gate")}

    client.app[REGISTRY].register(
        NodeType("test.gate", "Waits for the test", "test", gate, inputs=(Port("gate"),), outputs=(Port("passed"),))
    )
    return opened


async def start_background(client, workflow_id: str, inputs: dict[str, Any]) -> str:
    response = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={"inputs": inputs})
    body = await response.json()
    assert response.status == 202, body
    return body["execution_id"]


async def test_filter_by_execution_id(client, gates):
    workflow_id = await register(client, {"name": "gated", "nodes": [node("g", "test.gate")]})
    first = await start_background(client, workflow_id, {"gate": "first"})
    second = await start_background(client, workflow_id, {"gate": "second"})
    async with client.ws_connect(f"/api/events?execution_id={first}") as only_first, client.ws_connect("/api/events") as everything:
        # The second execution finishes first, so its events are published before the first's end.
        gates.setdefault("second", asyncio.Event()).set()
        seen = await receive_until(everything)
        assert {e["execution_id"] for e in seen} == {second}
        gates.setdefault("first", asyncio.Event()).set()
        seen += await receive_until(everything)
        mine = await receive_until(only_first)

    assert {e["execution_id"] for e in mine} == {first}
    assert [e["type"] for e in mine] == ["NodeCompleted", "WorkflowCompleted"]
    assert mine == [e for e in seen if e["execution_id"] == first]
    assert any(e["execution_id"] == second for e in seen)


async def test_filter_by_workflow_id(client):
    wanted = await register(client, two_node_workflow("wanted"))
    other = await register(client, two_node_workflow("other"))
    async with client.ws_connect(f"/api/events?workflow_id={wanted}") as ws:
        await execute(client, other)
        body = await execute(client, wanted)
        events = await receive_until(ws)
    assert len(events) == 7
    assert {e["workflow_id"] for e in events} == {wanted}
    assert {e["execution_id"] for e in events} == {body["execution_id"]}


async def test_filter_by_types(client):
    workflow_id = await register(client, two_node_workflow())
    async with client.ws_connect("/api/events?types=NodeCompleted,WorkflowCompleted") as ws:
        await execute(client, workflow_id)
        events = await receive_until(ws)
    assert [(e["type"], e.get("node_id"), e["seq"]) for e in events] == [
        ("NodeCompleted", "a", 3),
        ("NodeCompleted", "b", 6),
        ("WorkflowCompleted", None, 7),
    ]


async def test_filters_combine(client):
    wanted = await register(client, two_node_workflow("wanted"))
    other = await register(client, two_node_workflow("other"))
    async with client.ws_connect(f"/api/events?workflow_id={wanted}&types=WorkflowCompleted, NodeStarted") as ws:
        await execute(client, other)
        body = await execute(client, wanted)
        events = await receive_until(ws)
    assert [(e["type"], e["workflow_id"], e["execution_id"]) for e in events] == [
        ("NodeStarted", wanted, body["execution_id"]),
        ("NodeStarted", wanted, body["execution_id"]),
        ("WorkflowCompleted", wanted, body["execution_id"]),
    ]


def upgrade_headers() -> dict[str, str]:
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }


async def test_unknown_type_is_400_json_before_upgrade(client):
    response = await client.get("/api/events?types=NodeCompleted,NodeExploded", headers=upgrade_headers())
    assert response.status == 400
    assert response.content_type == "application/json"
    error = (await response.json())["error"]
    assert "NodeExploded" in error and "WorkflowCompleted" in error
    with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
        await client.ws_connect("/api/events?types=Nope")
    assert raised.value.status == 400
    assert not client.app[BUS].listeners


async def test_plain_get_is_400_json_that_mentions_wscat(client):
    response = await client.get("/api/events")
    assert response.status == 400
    assert response.content_type == "application/json"
    body = await response.json()
    assert list(body) == ["error"]
    assert "wscat -c ws://localhost:3000/api/events" in body["error"]
    assert "WebSocket" in body["error"]


# -- listeners -------------------------------------------------------------------------------


async def test_two_listeners_both_receive_everything(client):
    workflow_id = await register(client, two_node_workflow())
    async with client.ws_connect("/api/events") as one, client.ws_connect("/api/events") as two:
        await execute(client, workflow_id)
        await execute(client, workflow_id)
        first = await receive_until(one, 2)
        second = await receive_until(two, 2)
    assert len(first) == 14
    assert first == second
    assert len({e["execution_id"] for e in first}) == 2


async def test_failing_node_sends_node_failed(client):
    workflow_id = await register(
        client,
        {
            "name": "broken",
            "nodes": [node("parse", "transform.json_parse", json="{not json"), node("after", "debug.log")],
            "connections": [link("parse", "parsed", "after", "message")],
        },
    )
    async with client.ws_connect("/api/events") as ws:
        body = await execute(client, workflow_id, expect=500)
        events = await receive_until(ws)
    assert [(e["type"], e.get("node_id")) for e in events] == [
        ("WorkflowStarted", None),
        ("NodeStarted", "parse"),
        ("NodeFailed", "parse"),
        ("WorkflowCompleted", None),
    ]
    failed = events[2]
    assert failed["node_type"] == "transform.json_parse"
    assert failed["error"].startswith("input 'json' is not valid JSON")
    assert failed["error"] == body["failed_nodes"][0]["error"]
    parse_timestamp(failed["timestamp"])
    completed = events[-1]
    assert (completed["success"], completed["status"]) == (False, "failed")
    assert [e["seq"] for e in events] == [1, 2, 3, 4]


async def test_skipped_branch_sends_node_skipped(client):
    workflow_id = await register(
        client,
        {
            "name": "branch",
            "nodes": [
                node("check", "control.if", value=False),
                node("yes", "debug.log"),
                node("no", "debug.log"),
            ],
            "connections": [link("check", "true", "yes", "message"), link("check", "false", "no", "message")],
        },
    )
    async with client.ws_connect("/api/events?types=NodeSkipped,NodeCompleted,WorkflowCompleted") as ws:
        body = await execute(client, workflow_id)
        events = await receive_until(ws)
    skipped = [e for e in events if e["type"] == "NodeSkipped"]
    assert len(skipped) == 1
    assert skipped[0]["node_id"] == "yes"
    assert skipped[0]["reason"] == "no incoming connection delivered a value"
    assert body["skipped_nodes"] == ["yes"]
    assert {e["node_id"] for e in events if e["type"] == "NodeCompleted"} == {"check", "no"}
    assert events[-1]["success"] is True


async def test_client_ping_gets_pong(client):
    async with client.ws_connect("/api/events", autoping=False) as ws:
        await ws.ping(b"are you there")
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == WSMsgType.PONG
    assert message.data == b"are you there"


async def test_server_heartbeat_pings_idle_listeners(make_client):
    client = await make_client(ws_heartbeat=0.05)
    async with client.ws_connect("/api/events", autoping=False) as ws:
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)
        assert message.type == WSMsgType.PING
        await ws.pong(message.data)


async def test_listener_that_never_answers_pings_is_dropped(make_client):
    client = await make_client(ws_heartbeat=0.05)
    ws = await client.ws_connect("/api/events", autoping=False)
    # Read without answering: the server gives up after half a heartbeat and drops the socket.
    while True:
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)
        if message.type != WSMsgType.PING:
            break
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    for _ in range(100):  # the handler's clean-up runs on the server's next turns
        if not client.app[BUS].listeners:
            break
        await asyncio.sleep(0.01)
    assert not client.app[BUS].listeners


async def test_client_close_is_clean(client, caplog):
    caplog.set_level(logging.DEBUG)
    workflow_id = await register(client, two_node_workflow())
    ws = await client.ws_connect("/api/events")
    await execute(client, workflow_id)
    await ws.close()
    assert ws.close_code == 1000
    for _ in range(100):
        if not client.app[BUS].listeners:
            break
        await asyncio.sleep(0.01)
    assert not client.app[BUS].listeners
    await execute(client, workflow_id)  # publishing after the listener left is harmless
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []


async def test_client_close_while_events_stream_is_clean(client, caplog):
    caplog.set_level(logging.DEBUG)
    workflow_id = await register(client, two_node_workflow())
    ws = await client.ws_connect("/api/events")
    executions = [asyncio.ensure_future(execute(client, workflow_id)) for _ in range(5)]
    await receive_event(ws)
    await ws.close()
    await asyncio.gather(*executions)
    for _ in range(100):
        if not client.app[BUS].listeners:
            break
        await asyncio.sleep(0.01)
    assert not client.app[BUS].listeners
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_shutdown_closes_listeners_with_going_away(client, caplog):
    caplog.set_level(logging.DEBUG)
    async with client.ws_connect("/api/events") as one, client.ws_connect("/api/events?types=NodeFailed") as two:
        await client.server.close()
        for ws in (one, two):
            message = await ws.receive(timeout=RECEIVE_TIMEOUT)
            assert message.type == WSMsgType.CLOSE
            assert message.data == 1001
            assert message.extra == "server shutting down"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- frames ------------------------------------------------------------------------------------


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def test_node_event_kinds_and_odd_event_data(client):
    """Each NodeEvent kind arrives with its fields; data JSON cannot hold arrives as text
    instead of failing the node (it used to fail only when someone was listening)."""

    def talker(ctx: NodeContext) -> dict[str, Any]:
        ctx.info("plain info", count=3)
        ctx.warning("odd data", when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), ratio=float("nan"), tags={"b"})
        ctx.progress(50.0, "half way")
        ctx.data({"rows": [1, 2]})
        ctx.stdout("out line")
        ctx.stderr("err line")
        return {"ok": True}

    client.app[REGISTRY].register(NodeType("test.talker", "Emits every kind of NodeEvent", "test", talker, any_outputs=True))
    workflow_id = await register(client, {"name": "talk", "nodes": [node("t", "test.talker")]})
    async with client.ws_connect("/api/events?types=NodeEvent,WorkflowCompleted") as ws:
        body = await execute(client, workflow_id)
        texts = []
        while not texts or '"WorkflowCompleted"' not in texts[-1]:
            message = await ws.receive(timeout=RECEIVE_TIMEOUT)
            assert message.type == WSMsgType.TEXT
            texts.append(message.data)
    assert body["status"] == "succeeded"
    events = [_strict_json(text) for text in texts]
    assert [e["event"] for e in events[:-1]] == [
        {"event_type": "Info", "message": "plain info", "count": 3},
        {"event_type": "Warning", "message": "odd data", "when": "2026-01-02 03:04:05+00:00", "ratio": "nan", "tags": "{'b'}"},
        {"event_type": "Progress", "percent": 50.0, "message": "half way"},
        {"event_type": "Data", "port": "output", "value": {"type": "Json", "value": {"rows": [1, 2]}}},
        {"event_type": "StdoutLine", "line": "out line"},
        {"event_type": "StderrLine", "line": "err line"},
    ]
    assert {e["node_id"] for e in events[:-1]} == {"t"}
    assert [e["seq"] for e in events] == [3, 4, 5, 6, 7, 8, 10]


async def test_frames_are_not_compressed_per_listener(client):
    # permessage-deflate would re-encode every event once per listener: the server declines it.
    async with client.ws_connect("/api/events", compress=15) as ws:
        assert ws.compress == 0


async def test_event_text_is_canonical_json_for_odd_node_ids_and_outputs(client):
    # Events are put together as text (events.ExecutionEvents.emit_text); whatever the node ids
    # and outputs hold, the text must be the compact encoding json.dumps makes of the same event,
    # valid UTF-8, and the same live and in the history.
    odd_ids = ['quote"back\\slash', "tab\tnew\nline", "accent é and 🎉", "lone \ud800 surrogate", "</script>"]
    document = {
        "name": "odd",
        "nodes": [node(node_id, "transform.set", text=node_id, ratio=0.1 + 0.2) for node_id in odd_ids],
        "connections": [],
    }
    workflow_id = await register(client, document)
    async with client.ws_connect("/api/events") as ws:
        body = await execute(client, workflow_id)
        live = [(await ws.receive(timeout=RECEIVE_TIMEOUT)).data for _ in range(2 + 2 * len(odd_ids))]
    recorded = await (await client.get(f"/api/executions/{body['execution_id']}/events")).text()
    assert "[" + ",".join(live) + "]" == recorded
    events = [json.loads(text) for text in live]
    for text, event in zip(live, events):
        text.encode("utf-8")  # no lone surrogate left in the text itself: it is written escaped
        canonical = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        assert text == canonical.encode("utf-8", "backslashreplace").decode("utf-8")
        assert list(event)[:4] == ["type", "execution_id", "workflow_id", "seq"] and list(event)[-1] == "timestamp"
    started = {event["node_id"]: event for event in events if event["type"] == "NodeStarted"}
    completed = {event["node_id"]: event for event in events if event["type"] == "NodeCompleted"}
    assert set(started) == set(completed) == set(odd_ids)
    for node_id in odd_ids:
        assert started[node_id]["node_type"] == "transform.set"
        assert completed[node_id]["outputs"] == {
            "text": {"type": "String", "value": node_id},
            "ratio": {"type": "Number", "value": 0.1 + 0.2},
        }
    assert events[0]["trigger"] == {"type": "manual", "id": None}
    assert events[-1]["type"] == "WorkflowCompleted" and events[-1]["success"] is True
    assert events[-1]["duration_ms"] == body["duration_ms"]
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert [entry["node_id"] for entry in record["nodes"]] == odd_ids
    for entry in record["nodes"]:
        assert entry["status"] == "succeeded" and entry["attempts"] == 1 and entry["error"] is None
        assert entry["outputs"] == completed[entry["node_id"]]["outputs"]
        assert entry["duration_ms"] == completed[entry["node_id"]]["duration_ms"]
        # Both read the clock as the node starts (one from time.time(), one from perf_counter).
        gap = parse_timestamp(entry["started_at"]) - parse_timestamp(started[entry["node_id"]]["timestamp"])
        assert abs(gap.total_seconds()) <= 0.005


async def test_execute_response_text_is_canonical_json(client):
    # The execute response is put together as text too (ExecutionResult.response_json): it must
    # be exactly what json.dumps makes of the same body, error first, with odd node ids.
    document = {
        "name": "fails",
        "nodes": [
            node('ok "é"', "transform.set", text="fine \ud800"),
            node("bad\n1", "transform.json_parse", json="{not json"),
            node("after", "debug.log"),
        ],
        "connections": [link("bad\n1", "parsed", "after", "message")],
        "settings": {"on_error": "ContinueOnError"},
    }
    workflow_id = await register(client, document)
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    text = await response.text()
    body = json.loads(text)
    assert response.status == 200 and body["status"] == "completed_with_errors"
    canonical = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    assert text == canonical.encode("utf-8", "backslashreplace").decode("utf-8")
    assert list(body) == [
        "execution_id", "completed_nodes", "total_nodes", "status", "duration_ms", "duration_us", "attempts",
        "outputs", "failed_nodes", "skipped_nodes", "cancelled_nodes",
    ]
    assert body["outputs"] == {'ok "é"': {"text": {"type": "String", "value": "fine \ud800"}}}
    assert [failure["node_id"] for failure in body["failed_nodes"]] == ["bad\n1"]
    assert body["skipped_nodes"] == ["after"]

    document["settings"] = {"on_error": "StopWorkflow"}
    document["id"] = workflow_id
    assert (await client.put(f"/api/workflows/{workflow_id}", json=document)).status == 200
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    text = await response.text()
    body = json.loads(text)
    assert response.status == 500 and list(body)[0] == "error" and "bad\n1" in body["error"]
    canonical = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    assert text == canonical.encode("utf-8", "backslashreplace").decode("utf-8")


def test_utc_timestamp_values():
    from datetime import timedelta

    from flowengine.core.events import utc_timestamp

    second = 1_795_000_000  # 2026-11-18T11:06:40Z
    assert utc_timestamp(second + 0.123) == "2026-11-18T11:06:40.123Z"  # not .122 from float error
    assert utc_timestamp(second + 0.0) == "2026-11-18T11:06:40.000Z"
    assert utc_timestamp(second + 0.9996) == "2026-11-18T11:06:40.999Z"  # never .1000
    assert utc_timestamp(second + 1.5) == "2026-11-18T11:06:41.500Z"  # the cached second moves on
    paris = timezone(timedelta(hours=1))
    assert utc_timestamp(datetime(2026, 11, 18, 12, 6, 40, 123456, tzinfo=paris)) == "2026-11-18T11:06:40.123Z"
    assert TIMESTAMP.fullmatch(utc_timestamp())


def test_serialise_is_the_compact_json_encoding_and_turns_odd_values_into_text():
    from flowengine.core.events import serialise

    documents = [
        {"a": 1, "b": [1.5, 2e-7, 1e300, -0.0, True, None, 'é\n"\\', {"x": {}}]},
        [],
        {},
        "text",
        12,
        None,
        {1: "number keys", 2.5: "become", None: "strings"},
        [[[["deep"]]]],
    ]
    for document in documents:
        assert serialise(document) == json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    # What JSON cannot hold becomes text rather than an error (an event must never fail a node).
    assert serialise({"nan": float("nan"), "inf": float("inf")}) == '{"nan":"nan","inf":"inf"}'
    assert serialise({"path": Path("/tmp/x")}) == '{"path":"/tmp/x"}'
    assert serialise({"lone": "a\ud800b"}) == '{"lone":"a\\ud800b"}'  # a lone surrogate, escaped
