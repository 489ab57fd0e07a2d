"""Paging an execution's recorded events: ``after_seq``, ``limit``, ``types`` and ``node_id`` on
``GET /api/executions/{id}/events``, the ``Link`` to the next page, and the unchanged answer
without parameters."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlencode

import pytest

from flowengine.server.keys import STORE

from support.api import execute, link, node, register

_NEXT = re.compile(r'<([^>]+)>; rel="next"')


def _chain(count: int = 4) -> dict:
    """set -> log -> log -> ...: every node starts, logs (debug.log) and completes."""
    nodes = [node("n0", "transform.set", message="hi")] + [node(f"n{i}", "debug.log") for i in range(1, count)]
    connections = [link("n0", "message", "n1", "message")] + [
        link(f"n{i}", "message", f"n{i + 1}", "message") for i in range(1, count - 1)
    ]
    return {"name": "chain", "nodes": nodes, "connections": connections}


@pytest.fixture
async def finished(client):
    workflow_id = await register(client, _chain())
    execution_id = (await execute(client, workflow_id))["execution_id"]
    events = await (await client.get(f"/api/executions/{execution_id}/events")).json()
    assert len(events) > 10
    return client, execution_id, events


async def _walk(client, first_url: str) -> tuple[list[dict], list[str]]:
    """Every event reached by following rel=next from ``first_url``; and the URLs visited."""
    events, urls, url = [], [], first_url
    while url is not None:
        urls.append(url)
        response = await client.get(url)
        assert response.status == 200, await response.text()
        events += await response.json()
        found = _NEXT.fullmatch(response.headers.get("Link", ""))
        url = found.group(1) if found else None
    return events, urls


async def test_without_parameters_the_stored_text_is_served_as_it_is(finished):
    client, execution_id, _ = finished
    response = await client.get(f"/api/executions/{execution_id}/events")
    assert await response.text() == await client.app[STORE].get_execution_events(execution_id)
    assert "Link" not in response.headers


async def test_pages_follow_the_link_to_the_end_without_gap_or_duplicate(finished):
    client, execution_id, events = finished
    walked, urls = await _walk(client, f"/api/executions/{execution_id}/events?limit=3")
    assert walked == events
    assert len(urls) == -(-len(events) // 3)
    assert urls[1] == f"/api/executions/{execution_id}/events?after_seq=3&limit=3"


async def test_the_link_keeps_the_filters(finished):
    client, execution_id, events = finished
    query = urlencode({"types": "NodeStarted,NodeCompleted", "node_id": "n2", "limit": 1})
    walked, urls = await _walk(client, f"/api/executions/{execution_id}/events?{query}")
    expected = [e for e in events if e["type"] in ("NodeStarted", "NodeCompleted") and e.get("node_id") == "n2"]
    assert walked == expected and len(walked) == 2
    assert urls[1] == f"/api/executions/{execution_id}/events?after_seq={expected[0]['seq']}&limit=1&types=NodeStarted,NodeCompleted&node_id=n2"


@pytest.mark.parametrize(
    "query",
    [
        {"after_seq": 0},
        {"after_seq": 5},
        {"after_seq": 10_000},
        {"types": "NodeEvent"},
        {"types": " NodeStarted , WorkflowCompleted "},
        {"node_id": "n1"},
        {"node_id": "nobody"},
        {"after_seq": 4, "types": "NodeCompleted", "node_id": "n3"},
        {"types": ""},
    ],
)
async def test_filters_keep_exactly_the_matching_events(finished, query):
    client, execution_id, events = finished
    types = {part.strip() for part in query.get("types", "").split(",") if part.strip()}
    expected = [
        event
        for event in events
        if event["seq"] > query.get("after_seq", 0)
        and (not types or event["type"] in types)
        and ("node_id" not in query or event.get("node_id") == query["node_id"])
    ]
    response = await client.get(f"/api/executions/{execution_id}/events?{urlencode(query)}")
    assert response.status == 200
    assert await response.json() == expected
    assert "Link" not in response.headers  # no limit, so nothing was cut


async def test_a_limit_that_holds_everything_has_no_link(finished):
    client, execution_id, events = finished
    response = await client.get(f"/api/executions/{execution_id}/events?limit={len(events)}")
    assert await response.json() == events
    assert "Link" not in response.headers


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("after_seq=-1", "after_seq: expected a whole number from 0 to"),
        ("after_seq=x", "after_seq: expected a whole number from 0 to"),
        ("after_seq=", "after_seq: expected a whole number from 0 to"),
        ("limit=0", "limit: expected a whole number from 1 to 10000, got '0'"),
        ("limit=10001", "limit: expected a whole number from 1 to 10000, got '10001'"),
        ("types=NodeStarted,Bogus", "types: unknown event type(s) Bogus (known: WorkflowStarted,"),
    ],
)
async def test_bad_parameters_are_a_400(finished, query, fragment):
    client, execution_id, _ = finished
    for target in (execution_id, "no-such-execution"):
        response = await client.get(f"/api/executions/{target}/events?{query}")
        assert response.status == 400
        assert fragment in (await response.json())["error"]


async def test_an_unknown_execution_is_a_404_with_parameters_too(client):
    response = await client.get("/api/executions/no-such-execution/events?limit=5")
    assert response.status == 404


async def test_a_running_execution_is_paged_from_memory(client):
    document = {
        "name": "slow",
        "nodes": [node("first", "transform.set", message="hi"), node("wait", "time.delay", delay_ms=60_000)],
        "connections": [link("first", "message", "wait", "message")],
    }
    workflow_id = await register(client, document)
    response = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false", json={})
    execution_id = (await response.json())["execution_id"]
    url = f"/api/executions/{execution_id}/events?node_id=wait&types=NodeStarted"
    for _ in range(250):
        started = await (await client.get(url)).json()
        if started:
            break
        await asyncio.sleep(0.02)
    assert [event["type"] for event in started] == ["NodeStarted"]
    after = await (await client.get(f"/api/executions/{execution_id}/events?after_seq={started[0]['seq']}")).json()
    assert all(event["seq"] > started[0]["seq"] for event in after)
    assert (await client.post(f"/api/executions/{execution_id}/cancel")).status == 200
    final = await (await client.get(f"/api/executions/{execution_id}/events?after_seq={started[0]['seq']}")).json()
    assert final[-1]["type"] == "WorkflowCompleted"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "NodeStarted",
        " NodeStarted , NodeEvent ",
        ",,NodeEvent,,",
        "NodeEvent\n",
        "NodeEvent\n\n",
        "NodeStarted NodeEvent",
        "NodeStartedNodeEvent",
        "Bogus",
        "NodeStarted,\tNodeEvent",
        "Node",
    ],
)
async def test_the_documented_pattern_says_exactly_which_types_are_taken(client, text):
    # Schemathesis draws types from the OpenAPI pattern (Python's re, whose $ also matches before
    # a final newline): what it calls valid must be taken, and the rest refused.
    document = await (await client.get("/openapi.json")).json()
    (parameter,) = [
        p for p in document["paths"]["/api/executions/{id}/events"]["get"]["parameters"] if p["name"] == "types"
    ]
    documented = re.search(parameter["schema"]["pattern"], text) is not None
    response = await client.get(f"/api/executions/no-such-execution/events?{urlencode({'types': text})}")
    assert response.status == (404 if documented else 400), text
