"""Searching the execution history: ``since``/``until``, ``trigger`` and ``error`` on
``GET /api/executions``, combined with the older filters and paging, and the ``total`` count.

The expected answers are computed here from the full, unfiltered history (an oracle over what
the API itself reports), so every combination is checked against the same records."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from flowengine.errors import NodeError
from flowengine.nodes import NodeType, Port
from flowengine.server.keys import REGISTRY

from support.api import execute, node, register, webhook_workflow


def _failing(ctx):
    raise NodeError(str(ctx.input("message")))


@pytest.fixture
async def history(client):
    """A history with manual, webhook and event-triggered runs, some failing with chosen errors.
    Returns the client and every execution record, newest first."""
    client.app[REGISTRY].register(
        NodeType("test.fail", "fails with its message", "test", _failing, inputs=(Port("message"),))
    )
    ok = await register(client, {"id": "ok", "name": "ok", "nodes": [node("s", "transform.set", x=1)]})
    broken = await register(client, {"id": "broken", "name": "broken", "nodes": [node("f", "test.fail")]})
    await register(client, {**webhook_workflow("search-hook"), "id": "hooked"})
    for message in ("Disk FULL on /var", "Ünïcode ÉCHEC here", "100% done_not", "disk quota"):
        response = await client.post(f"/api/workflows/{broken}/execute", json={"inputs": {"message": message}})
        assert response.status == 500
        await asyncio.sleep(0.003)  # distinct started_at milliseconds, so ranges have edges to test
    for _ in range(3):
        await execute(client, ok)
        await asyncio.sleep(0.003)
        assert (await client.post("/api/hooks/search-hook", json={})).status == 200
        await asyncio.sleep(0.003)
    # An event-triggered run, started when "ok" completes.
    await register(
        client,
        {
            "id": "follower",
            "name": "follower",
            "nodes": [node("log", "debug.log")],
            "triggers": [{"id": "on-ok", "trigger_type": {"type": "Event", "event_type": "WorkflowCompleted", "workflow_id": ok}}],
        },
    )
    await execute(client, ok)
    records = await _all(client, {})
    for _ in range(250):
        if any(record["workflow_id"] == "follower" and record["status"] != "running" for record in records):
            break
        await asyncio.sleep(0.02)
        records = await _all(client, {})
    assert {record["trigger"]["type"] for record in records} == {"manual", "webhook", "event"}
    return client, records


async def _page(client, query: dict) -> dict:
    response = await client.get(f"/api/executions?{urlencode(query)}")
    body = await response.json()
    assert response.status == 200, body
    return body


async def _all(client, query: dict) -> list[dict]:
    """Every execution the filters match, following ``next`` with pages of 3."""
    found: list[dict] = []
    page = await _page(client, {**query, "limit": 3})
    while True:
        found += page["executions"]
        if page["next"] is None:
            return found
        page = await _page(client, {**query, "limit": 3, "before": page["next"]})


def _matches(record: dict, query: dict) -> bool:
    return (
        ("workflow_id" not in query or record["workflow_id"] == query["workflow_id"])
        and ("status" not in query or record["status"] == query["status"])
        and ("trigger" not in query or record["trigger"]["type"] == query["trigger"])
        and ("since" not in query or _instant(record["started_at"]) >= _instant(query["since"]))
        and ("until" not in query or _instant(record["started_at"]) < _instant(query["until"]))
        and ("error" not in query or query["error"].lower() in (record["error"] or "\0").lower())
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_every_filter_and_combination_agrees_with_the_full_history(history):
    client, records = history
    starts = sorted({record["started_at"] for record in records})
    middle, late = starts[len(starts) // 3], starts[2 * len(starts) // 3]
    queries = [
        {},
        {"trigger": "webhook"},
        {"trigger": "manual"},
        {"trigger": "event"},
        {"trigger": "cron"},
        {"error": "disk"},
        {"error": "DISK full"},
        {"error": "échec"},  # case folded beyond ASCII
        {"error": "100%"},  # LIKE wildcards are plain characters
        {"error": "_"},
        {"error": "%"},
        {"since": middle},
        {"until": middle},
        {"since": middle, "until": late},
        {"since": late, "until": late},  # empty: since is inclusive, until exclusive
        {"since": middle, "trigger": "webhook"},
        {"workflow_id": "broken", "error": "disk", "status": "failed"},
        {"workflow_id": "ok", "until": late, "trigger": "manual"},
        {"status": "succeeded", "trigger": "webhook", "since": starts[0]},
    ]
    for query in queries:
        expected = [record["id"] for record in records if _matches(record, query)]
        found = await _all(client, query)
        assert [record["id"] for record in found] == expected, query
        assert (await _page(client, {**query, "limit": 1}))["total"] == len(expected), query
    assert len(await _all(client, {"error": "disk"})) == 2
    assert len(await _all(client, {"error": "_"})) == 1


async def test_total_ignores_the_page_and_the_cursor(history):
    client, records = history
    first = await _page(client, {"limit": 2})
    assert first["total"] == len(records) and len(first["executions"]) == 2
    second = await _page(client, {"limit": 2, "before": first["next"]})
    assert second["total"] == len(records)
    assert [record["id"] for record in first["executions"] + second["executions"]] == [r["id"] for r in records[:4]]


async def test_time_bounds_in_any_offset_and_precision(history):
    client, records = history
    target = records[len(records) // 2]
    moment = _instant(target["started_at"])
    # The same instant written with an offset and with more digits.
    shifted = moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(timespec="microseconds")
    assert target["id"] in [r["id"] for r in await _all(client, {"since": shifted, "until": shifted[:-6] + "1+05:30"})]
    # A bound a microsecond after the start excludes it from since and includes it in until.
    just_after = (moment + timedelta(microseconds=1)).isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert target["id"] not in [r["id"] for r in await _all(client, {"since": just_after})]
    assert target["id"] in [r["id"] for r in await _all(client, {"until": just_after})]
    # Lower-case t and z, as RFC 3339 allows; a leap second; the ends of the calendar.
    lower = target["started_at"].replace("T", "t").replace("Z", "z")
    assert (await _page(client, {"since": lower}))["total"] == sum(r["started_at"] >= target["started_at"] for r in records)
    assert (await _page(client, {"until": "2016-12-31T23:59:60Z"}))["total"] == 0
    assert (await _page(client, {"since": "0001-01-01T00:00:00+14:00"}))["total"] == len(records)
    assert (await _page(client, {"until": "9999-12-31T23:59:59.9999-10:00"}))["total"] == len(records)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"since": "yesterday"}, "since: expected an RFC 3339 timestamp"),
        ({"until": "2026-11-28"}, "until: expected an RFC 3339 timestamp"),
        ({"since": "2026-11-28T10:13:13"}, "since: expected an RFC 3339 timestamp"),  # no offset
        ({"since": "2026-02-30T10:13:13Z"}, "since: '2026-02-30T10:13:13Z' is not a valid date and time"),
        ({"until": "2026-11-28T24:00:00Z"}, "until: '2026-11-28T24:00:00Z' is not a valid date and time"),
        ({"until": "2026-11-28T10:00:00+24:00"}, "until: '2026-11-28T10:00:00+24:00' is not a valid date and time"),
        ({"since": ""}, "since: expected an RFC 3339 timestamp"),
        ({"since": "٢٠٢٦-11-28T10:13:13Z"}, "since: expected an RFC 3339 timestamp"),  # Arabic-Indic digits
        ({"trigger": "Webhook"}, "trigger: unknown trigger type 'Webhook' (known: manual, cron, webhook, event)"),
        ({"trigger": "retry"}, "trigger: unknown trigger type 'retry'"),
    ],
)
async def test_bad_filters_are_a_400_naming_the_parameter(client, query, fragment):
    response = await client.get(f"/api/executions?{urlencode(query)}")
    assert response.status == 400
    assert fragment in (await response.json())["error"]


async def test_empty_trigger_and_error_mean_any(history):
    client, records = history
    assert (await _page(client, {"trigger": "", "error": ""}))["total"] == len(records)
