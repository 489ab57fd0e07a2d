"""The secrets one app resolves are masked by that app alone, and forgotten when it stops: a
second app (or engine) in the same process neither masks them in its own answers nor keeps
them."""

from __future__ import annotations

import dataclasses
import logging

from aiohttp import web

from flowengine.server.app import make_app
from flowengine.server.keys import ENGINE

SECRET = "per-app-s3cret-value"
WORKFLOW = {
    "name": "echo",
    "nodes": [
        {
            "id": "fetch",
            "node_type": "http.request",
            "config": {
                "url": {"type": "String", "value": "URL"},
                "headers": {"type": "Object", "value": {"X-Token": {"type": "Secret", "value": "PER_APP"}}},
            },
        }
    ],
}
PLAIN = {"name": "says it", "nodes": [{"id": "say", "node_type": "transform.set", "config": {"text": {"type": "String", "value": SECRET}}}]}


def _echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("X-Token", ""))

    app = web.Application()
    app.router.add_get("/", echo)
    return app


async def test_one_apps_secrets_are_not_another_apps(aiohttp_client, aiohttp_server, config, monkeypatch, caplog):
    monkeypatch.setenv("FLOWENGINE_SECRET_PER_APP", SECRET)
    echo = await aiohttp_server(_echo_app())
    first = await aiohttp_client(make_app(config))
    second = await aiohttp_client(make_app(dataclasses.replace(config, db=config.db + ".second")))

    document = {**WORKFLOW, "nodes": [dict(WORKFLOW["nodes"][0])]}
    document["nodes"][0]["config"] = {**document["nodes"][0]["config"], "url": {"type": "String", "value": str(echo.make_url("/"))}}
    response = await first.post("/api/workflows", json=document)
    workflow_id = (await response.json())["id"]
    answer = await (await first.post(f"/api/workflows/{workflow_id}/execute")).json()
    assert answer["outputs"]["fetch"]["body"]["value"] == "***"  # the echo of the secret, masked

    # The second app never resolved that secret: text that happens to equal it is its data.
    response = await second.post("/api/workflows", json=PLAIN)
    plain_id = (await response.json())["id"]
    answer = await (await second.post(f"/api/workflows/{plain_id}/execute")).json()
    assert answer["outputs"]["say"]["text"]["value"] == SECRET

    # While the first app lives, log lines are masked; once it stops, its secrets are forgotten.
    caplog.set_level(logging.INFO, logger="test.redaction")
    logging.getLogger("test.redaction").info("value %s", SECRET)
    first_engine = first.app[ENGINE]
    await first.close()
    assert first_engine.redactor.pattern is None
    logging.getLogger("test.redaction").info("again %s", SECRET)
    assert [record.getMessage() for record in caplog.records if record.name == "test.redaction"] == [
        "value ***",
        f"again {SECRET}",
    ]
