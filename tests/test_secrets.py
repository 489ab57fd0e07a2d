"""Secrets in node config (issue 8): resolved at run time from FLOWENGINE_SECRET_<NAME>,
refused at registration when unset, and masked everywhere they could leak."""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp import web

from conftest import link, node, register

SECRET_VALUE = "s3cr3t-Token-\"quoted\"-42"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("FLOWENGINE_SECRET_API_TOKEN", SECRET_VALUE)


def _echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        # Echo the credential back, as a careless API might: it must still never be shown.
        return web.json_response({"auth": request.headers.get("Authorization", "")})

    app = web.Application()
    app.router.add_get("/", echo)
    return app


def _workflow(url: str) -> dict:
    fetch = node("fetch", "http.request", url=url)
    fetch["config"]["headers"] = {
        "type": "Object",
        "value": {"Authorization": {"type": "Secret", "value": "API_TOKEN"}},
    }
    return {
        "name": "uses a secret",
        "nodes": [fetch, node("log", "debug.log"), node("fail", "transform.json_parse")],
        "connections": [link("fetch", "body", "log", "message"), link("fetch", "body", "fail", "json")],
        "settings": {"on_error": "ContinueOnError"},
    }


async def test_unset_secret_is_refused_at_registration(client):
    document = {"name": "x", "nodes": [node("fetch", "http.request", url="http://127.0.0.1:9/")]}
    document["nodes"][0]["config"]["headers"] = {
        "type": "Object",
        "value": {"Authorization": {"type": "Secret", "value": "MISSING_ONE"}},
    }
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("nodes[0].config.headers:") and "FLOWENGINE_SECRET_MISSING_ONE" in error


async def test_secret_is_used_and_masked_everywhere(secret_env, client, aiohttp_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = await aiohttp_server(_echo_app())
    workflow_id = await register(client, _workflow(str(server.make_url("/"))))

    shown = await (await client.get(f"/api/workflows/{workflow_id}")).text()
    assert SECRET_VALUE not in shown
    assert json.loads(shown)["nodes"][0]["config"]["headers"]["value"]["Authorization"] == {
        "type": "Secret",
        "value": "API_TOKEN",
    }

    ws = await client.ws_connect("/api/events")
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    text = await response.text()
    body = json.loads(text)
    assert response.status == 200, body
    # The request really carried the secret: the echo came back, masked.
    assert body["outputs"]["log"]["message"]["value"] == '{"auth": "***"}'
    assert SECRET_VALUE not in text and "s3cr3t" not in text

    frames = []
    while True:
        frame = await ws.receive_str(timeout=5)
        frames.append(frame)
        if json.loads(frame)["type"] == "WorkflowCompleted":
            break
    await ws.close()
    assert any("***" in frame for frame in frames)
    assert not any("s3cr3t" in frame for frame in frames)

    execution_id = body["execution_id"]
    for path in (f"/api/executions/{execution_id}", f"/api/executions/{execution_id}/events", "/api/executions"):
        assert "s3cr3t" not in await (await client.get(path)).text(), path
    assert "s3cr3t" not in caplog.text
