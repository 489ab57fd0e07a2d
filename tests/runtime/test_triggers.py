"""Webhook, cron and event triggers, and GET /api/triggers."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from support.api import node, register, webhook_workflow
from support.webhooks import sign


async def _executions(client, **filters) -> list[dict]:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return (await (await client.get(f"/api/executions?limit=500&{query}")).json())["executions"]


async def _settle(client, expected: int, timeout: float = 5.0, **filters) -> list[dict]:
    """Wait until exactly ``expected`` executions exist and none is running, then a bit more
    to catch any extra one that should not have started."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await _executions(client, **filters)
        if len(found) >= expected and all(item["status"] != "running" for item in found):
            await asyncio.sleep(0.2)
            return await _executions(client, **filters)
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.02)


async def test_webhook_inputs_and_response(client):
    workflow_id = await register(client, webhook_workflow("zen"))
    response = await client.post("/api/hooks/zen?source=query", json={"message": "from body", "n": 3})
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "succeeded"
    assert body["outputs"] == {"log": {"message": {"type": "String", "value": "from body"}}}
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    assert record["trigger"] == {"type": "webhook", "id": "hook"}
    assert record["workflow_id"] == workflow_id
    inputs = record["inputs"]
    assert inputs["message"] == {"type": "String", "value": "from body"}
    assert inputs["n"] == {"type": "Number", "value": 3}
    assert inputs["source"] == {"type": "String", "value": "query"}
    assert inputs["headers"]["type"] == "Object"
    assert inputs["headers"]["value"]["Content-Type"]["value"] == "application/json"

    by_get = await client.get("/api/hooks/zen?message=hello")
    assert (await by_get.json())["outputs"]["log"]["message"]["value"] == "hello"

    background = await client.post("/api/hooks/zen?wait=false", json={})
    assert background.status == 202
    assert background.headers["Location"].startswith("/api/executions/")


async def test_webhook_errors(client):
    await register(client, webhook_workflow("zen"))
    missing = await client.post("/api/hooks/nothing-here")
    assert missing.status == 404
    assert "nothing-here" in (await missing.json())["error"]
    not_object = await client.post("/api/hooks/zen", data="[1, 2]")
    assert not_object.status == 400
    broken = await client.post("/api/hooks/zen", data="{nope")
    assert broken.status == 400


async def test_disabled_webhook_is_404(client):
    document = webhook_workflow("zen")
    document["triggers"][0]["enabled"] = False
    await register(client, document)
    assert (await client.post("/api/hooks/zen", json={})).status == 404


async def test_webhook_signature(client):
    await register(client, webhook_workflow("zen", secret="s3cret"))
    payload = json.dumps({"message": "signed"}).encode()
    good = sign(b"s3cret", payload)
    headers = {"Content-Type": "application/json"}
    unsigned = await client.post("/api/hooks/zen", data=payload, headers=headers)
    assert unsigned.status == 401
    assert "X-Flowengine-Signature" in (await unsigned.json())["error"]
    stamp = good.split(",")[0]
    wrong = await client.post(
        "/api/hooks/zen", data=payload, headers={**headers, "X-Flowengine-Signature": f"{stamp},v1=" + "0" * 64}
    )
    assert wrong.status == 401
    tampered = await client.post(
        "/api/hooks/zen", data=payload + b" ", headers={**headers, "X-Flowengine-Signature": good}
    )
    assert tampered.status == 401
    signed = await client.post("/api/hooks/zen", data=payload, headers={**headers, "X-Flowengine-Signature": good})
    body = await signed.json()
    assert signed.status == 200, body
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    # Only what the signature covers becomes an input: the body's fields, no headers.
    assert record["inputs"] == {"message": {"type": "String", "value": "signed"}}


async def test_webhook_credential_headers_stay_out_of_the_inputs(client):
    await register(client, webhook_workflow("zen"))
    headers = {"X-Gitlab-Token": "gl-secret", "X-Api-Key": "k-123", "Cookie": "s=1", "X-Request-Id": "r-1"}
    body = await (await client.post("/api/hooks/zen", json={}, headers=headers)).json()
    record = await (await client.get(f"/api/executions/{body['execution_id']}")).json()
    kept = {name.lower(): value for name, value in record["inputs"]["headers"]["value"].items()}
    assert kept["x-request-id"]["value"] == "r-1"
    assert not {"x-gitlab-token", "x-api-key", "cookie"} & set(kept)
    assert "gl-secret" not in json.dumps(record)


async def test_webhook_paths_are_unique_across_workflows(client):
    first = await register(client, webhook_workflow("zen"))
    clash = await client.post("/api/workflows", json=webhook_workflow("zen"))
    assert clash.status == 409
    assert "zen" in (await clash.json())["error"]
    other = await register(client, webhook_workflow("other"))
    update = await client.put(f"/api/workflows/{other}", json=webhook_workflow("zen"))
    assert update.status == 409
    # The workflow that owns the path may keep it when it is replaced.
    assert (await client.put(f"/api/workflows/{first}", json=webhook_workflow("zen"))).status == 200
    # After deletion the path is free, and the old one no longer answers.
    assert (await client.delete(f"/api/workflows/{first}")).status == 200
    assert (await client.post("/api/hooks/zen", json={})).status == 404
    assert (await client.put(f"/api/workflows/{other}", json=webhook_workflow("zen"))).status == 200
    assert (await client.post("/api/hooks/zen", json={})).status == 200


async def test_invalid_cron_expression_is_400_naming_the_field(client):
    document = {
        "name": "bad cron",
        "nodes": [node("log", "debug.log")],
        "triggers": [{"trigger_type": {"type": "Cron", "expression": "0 25 * * *"}}],
    }
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("triggers[0].trigger_type.expression:") and "hour" in error
    document["triggers"][0]["trigger_type"] = {"type": "Cron", "expression": "* * * * *", "timezone": "Mars/Base"}
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400 and "Mars/Base" in (await response.json())["error"]


async def test_cron_fires_every_second_and_stops_when_deleted(client):
    document = {
        "name": "ticker",
        "nodes": [node("log", "debug.log")],
        "triggers": [{"id": "tick", "trigger_type": {"type": "Cron", "expression": "* * * * * *"}}],
    }
    workflow_id = await register(client, document)
    listed = await (await client.get("/api/triggers")).json()
    (entry,) = [item for item in listed if item["workflow_id"] == workflow_id]
    assert entry["type"] == "Cron" and entry["enabled"] is True and entry["next_fire"].endswith("Z")

    deadline = asyncio.get_running_loop().time() + 5
    while len(await _executions(client, workflow_id=workflow_id)) < 2:
        assert asyncio.get_running_loop().time() < deadline, "the cron trigger did not fire twice in 5 s"
        await asyncio.sleep(0.05)
    fired = await _executions(client, workflow_id=workflow_id)
    for item in fired:
        assert item["trigger"] == {"type": "cron", "id": "tick"}
        started = datetime.fromisoformat(item["started_at"].replace("Z", "+00:00"))
        # On time: within a fraction of a second after the whole second it was scheduled for.
        assert started.microsecond < 500_000, item["started_at"]
    record = await (await client.get(f"/api/executions/{fired[0]['id']}")).json()
    assert record["inputs"]["scheduled_at"]["value"].endswith(".000Z")

    assert (await client.delete(f"/api/workflows/{workflow_id}")).status == 200
    count = len(await _executions(client, workflow_id=workflow_id))
    await asyncio.sleep(1.3)
    assert len(await _executions(client, workflow_id=workflow_id)) == count
    assert [item for item in await (await client.get("/api/triggers")).json() if item["workflow_id"] == workflow_id] == []


async def test_disabled_cron_does_not_fire(client):
    document = {
        "name": "quiet",
        "nodes": [node("log", "debug.log")],
        "triggers": [{"enabled": False, "trigger_type": {"type": "Cron", "expression": "* * * * * *"}}],
    }
    workflow_id = await register(client, document)
    await asyncio.sleep(1.2)
    assert await _executions(client, workflow_id=workflow_id) == []
    (entry,) = await (await client.get("/api/triggers")).json()
    assert entry["enabled"] is False and entry["next_fire"] is None


def _event_triggered(name: str, event_type: str = "WorkflowCompleted", source: str | None = None) -> dict:
    trigger = {"type": "Event", "event_type": event_type}
    if source is not None:
        trigger["workflow_id"] = source
    return {
        "name": name,
        "nodes": [node("log", "debug.log")],
        "triggers": [{"id": f"on-{name}", "trigger_type": trigger}],
    }


async def test_event_trigger_starts_a_workflow_with_the_event_as_inputs(client):
    source = await register(client, {"name": "source", "nodes": [node("s", "transform.set", x=1)]})
    follower = await register(client, _event_triggered("follower", source=source))
    response = await client.post(f"/api/workflows/{source}/execute")
    source_execution = (await response.json())["execution_id"]
    (started,) = await _settle(client, 1, workflow_id=follower)
    listed = await (await client.get("/api/triggers")).json()
    (entry,) = [item for item in listed if item["type"] == "Event"]
    assert entry["workflow_id"] == follower and entry["source_workflow_id"] == source
    assert entry["event_type"] == "WorkflowCompleted"
    record = await (await client.get(f"/api/executions/{started['id']}")).json()
    assert record["trigger"]["type"] == "event" and record["trigger"]["id"] == "on-follower"
    assert record["trigger"]["source_execution_id"] == source_execution
    assert record["inputs"]["execution_id"]["value"] == source_execution
    assert record["inputs"]["workflow_id"]["value"] == source
    assert record["inputs"]["success"] == {"type": "Bool", "value": True}
    events = await (await client.get(f"/api/executions/{started['id']}/events")).json()
    assert events[0]["trigger"]["type"] == "event"


async def test_event_trigger_ignores_other_sources_and_its_own_events(client):
    other = await register(client, {"name": "other", "nodes": [node("s", "transform.set", x=1)]})
    picky = await register(client, _event_triggered("picky", source="somebody-else"))
    selfish = await register(client, _event_triggered("selfish"))
    await client.post(f"/api/workflows/{other}/execute")
    await _settle(client, 1, workflow_id=selfish)  # triggered once by `other`, never by itself
    await client.post(f"/api/workflows/{selfish}/execute")
    await asyncio.sleep(0.3)
    assert len(await _executions(client, workflow_id=selfish)) == 2
    assert await _executions(client, workflow_id=picky) == []


async def test_event_chains_stop_at_depth_eight(client, caplog):
    ping = await register(client, _event_triggered("ping"))
    pong = await register(client, _event_triggered("pong"))
    await client.post(f"/api/workflows/{ping}/execute")
    everything = await _settle(client, 9)
    assert len(everything) == 9  # the manual run plus 8 event-triggered ones
    depths = sorted(item["trigger"].get("depth", 0) for item in everything)
    assert depths == list(range(9))
    assert {item["workflow_id"] for item in everything} == {ping, pong}
    assert "reached depth 8" in caplog.text


async def test_webhook_secret_is_masked_in_get_and_may_be_a_secret_reference(client, monkeypatch):
    workflow_id = await register(client, webhook_workflow("zen", secret="literal-secret"))
    shown = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert shown["triggers"][0]["trigger_type"]["secret"] == "***"
    versions = await (await client.get(f"/api/workflows/{workflow_id}?version=1")).text()
    assert "literal-secret" not in versions
    # Sending the masked document back is refused rather than silently replacing the secret.
    response = await client.put(f"/api/workflows/{workflow_id}", json=shown)
    assert response.status == 400 and "real one" in (await response.json())["error"]

    reference = {"type": "Secret", "value": "HOOK_KEY"}
    missing = await client.put(f"/api/workflows/{workflow_id}", json=webhook_workflow("zen", secret=reference))
    assert missing.status == 400 and "FLOWENGINE_SECRET_HOOK_KEY" in (await missing.json())["error"]
    monkeypatch.setenv("FLOWENGINE_SECRET_HOOK_KEY", "from-the-environment")
    assert (await client.put(f"/api/workflows/{workflow_id}", json=webhook_workflow("zen", secret=reference))).status == 200
    shown = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert shown["triggers"][0]["trigger_type"]["secret"] == reference
    payload = b'{"message": "hi"}'
    good = sign(b"from-the-environment", payload)
    signed = await client.post("/api/hooks/zen", data=payload, headers={"X-Flowengine-Signature": good})
    assert signed.status == 200
    assert (await client.post("/api/hooks/zen", data=payload)).status == 401


async def test_editing_a_workflow_keeps_the_cron_overlap_guard(client, caplog):
    document = {
        "name": "slow ticker",
        "nodes": [node("wait", "time.delay", delay_ms=2500)],
        "triggers": [{"id": "tick", "trigger_type": {"type": "Cron", "expression": "* * * * * *"}}],
    }
    workflow_id = await register(client, document)
    deadline = asyncio.get_running_loop().time() + 3
    while not await _executions(client, workflow_id=workflow_id, status="running"):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    for _ in range(2):  # replace it while its run goes on, across two ticks
        assert (await client.put(f"/api/workflows/{workflow_id}", json=document)).status == 200
        await asyncio.sleep(1.05)
    assert len(await _executions(client, workflow_id=workflow_id, status="running")) == 1
    await client.delete(f"/api/workflows/{workflow_id}")


async def test_cron_skips_a_tick_while_the_previous_run_is_going(client, caplog):
    document = {
        "name": "slow ticker",
        "nodes": [node("wait", "time.delay", delay_ms=2500)],
        "triggers": [{"id": "tick", "trigger_type": {"type": "Cron", "expression": "* * * * * *"}}],
    }
    workflow_id = await register(client, document)
    deadline = asyncio.get_running_loop().time() + 5
    while "skipped the tick" not in caplog.text:
        assert asyncio.get_running_loop().time() < deadline, "no tick was skipped"
        await asyncio.sleep(0.05)
    started = await _executions(client, workflow_id=workflow_id)
    assert len(started) == 1 and started[0]["status"] == "running"
    assert "cron trigger tick of workflow " + workflow_id in caplog.text
    await client.delete(f"/api/workflows/{workflow_id}")


async def test_event_chains_are_also_bounded_in_width(client, caplog):
    # Four workflows that each start on any other's completion would triple at every level.
    names = ["w1", "w2", "w3", "w4"]
    for name in names:
        await register(client, {**_event_triggered(name), "id": name})
    await client.post("/api/workflows/w1/execute")
    everything = await _settle(client, 1 + 64, timeout=20)
    assert len(everything) == 1 + 64
    assert "already started 64 executions" in caplog.text
