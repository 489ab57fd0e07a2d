"""The example workflows in examples/ register and do what the README says, against local servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from support.api import execute, register
from support.paths import EXAMPLES, example

TODOS = (EXAMPLES / "data" / "todos.json").read_text()


@pytest.fixture
async def files(aiohttp_server):
    """Stands in for `python -m http.server 8000 --directory examples/data`; /report.json
    answers 404 until ``state["report_after"]`` requests have been made."""
    state = {"report_after": 2, "report_requests": 0}

    async def report(request: web.Request) -> web.Response:
        state["report_requests"] += 1
        if state["report_requests"] <= state["report_after"]:
            return web.Response(status=404, text="File not found")
        return web.Response(text=TODOS, content_type="application/json")

    async def todos(request: web.Request) -> web.Response:
        return web.Response(text=TODOS, content_type="application/json")

    app = web.Application()
    app.router.add_get("/todos.json", todos)
    app.router.add_get("/report.json", report)
    server = await aiohttp_server(app)
    server.state = state
    return server


async def test_data_pipeline(client, files):
    workflow_id = await register(client, example("data_pipeline.json"))
    assert workflow_id == "data-pipeline"
    # The root's url input overrides the config URL (the README's port 8000).
    body = await execute(client, workflow_id, {"url": str(files.make_url("/todos.json"))})
    assert body["status"] == "succeeded"
    assert body["completed_nodes"] == body["total_nodes"] == 5
    assert body["outputs"] == {"log": {"message": {"type": "String", "value": "First on the list: Write the node reference"}}}


async def test_data_pipeline_fails_clearly_when_the_server_is_down(client):
    workflow_id = await register(client, example("data_pipeline.json"))
    body = await execute(client, workflow_id, {"url": "http://127.0.0.1:9/todos.json"}, expect=500)
    assert body["error"] == (
        "Node execution failed: node 'fetch' (http.request):"
        " GET http://127.0.0.1:9/todos.json: connection to 127.0.0.1:9 refused"
    )


@pytest.mark.parametrize(
    "value, verdict, skipped",
    [(250, "250 is large", "small"), (5, "5 is small", "large"), (100, "100 is small", "large")],
)
async def test_branching(client, value, verdict, skipped):
    workflow_id = await register(client, example("branching.json"))
    body = await execute(client, workflow_id, {"value": value})
    assert body["status"] == "succeeded"
    assert body["skipped_nodes"] == [skipped]
    assert body["outputs"] == {
        "log": {"message": {"type": "Object", "value": {"verdict": {"type": "String", "value": verdict}}}}
    }


def _fast(document: dict[str, Any]) -> dict[str, Any]:
    """The retry demo with millisecond delays: same policy shape, no waiting in tests."""
    policy = document["nodes"][0]["retry_policy"]
    assert policy["max_attempts"] == 5 and policy["delay_ms"] == 1000
    policy.update(delay_ms=1, max_delay_ms=8)
    return document


async def test_retry_demo_succeeds_once_the_report_exists(client, files):
    workflow_id = await register(client, _fast(example("retry_demo.json")))
    url = str(files.make_url("/report.json"))
    async with client.ws_connect(f"/api/events?workflow_id={workflow_id}&types=NodeEvent") as ws:
        body = await execute(client, workflow_id, {"url": url})
        warnings = []
        while len(warnings) < 2:
            event = (await asyncio.wait_for(ws.receive_json(), 5))["event"]
            if event["event_type"] == "Warning":
                warnings.append(event["message"])
    assert body["status"] == "succeeded"
    assert files.state["report_requests"] == 3
    assert warnings == [
        f"attempt 1 of 5 failed: GET {url}: response status 404 (fail_on_status is set); retrying in 1 ms",
        f"attempt 2 of 5 failed: GET {url}: response status 404 (fail_on_status is set); retrying in 2 ms",
    ]
    assert body["outputs"]["log"]["message"]["value"]["count"] == 2
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert {n["node_id"]: n["attempts"] for n in record["nodes"]}["fetch"] == 3


async def test_retry_demo_gives_up_after_max_attempts(client, files):
    files.state["report_after"] = 100
    workflow_id = await register(client, _fast(example("retry_demo.json")))
    url = str(files.make_url("/report.json"))
    body = await execute(client, workflow_id, {"url": url}, expect=500)
    assert files.state["report_requests"] == 5
    assert body["error"].endswith(f"GET {url}: response status 404 (fail_on_status is set)")
    assert body["completed_nodes"] == 0
