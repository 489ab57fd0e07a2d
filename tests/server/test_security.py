"""Operating safely: authentication and scopes, rate limits, the private-network
guard, /metrics, and the execution queue's 503."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp
import pytest
from aiohttp import web

from flowengine.lib import netguard
from flowengine.lib.auth import make_jwt

from support.api import link, node, register
from support.exposition import samples_by_series
from support.tokens import b64url, bearer
from support.webhooks import sign

SECRET = "jwt-test-secret-0123456789abcdef"
KEYS = {"reader-key-1": "read", "runner-key-1": "execute", "admin-key-1": "admin"}


@pytest.fixture
async def secured(make_client):
    return await make_client(api_keys=KEYS, jwt_secret=SECRET)


def _text_handler(text: str):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=text)

    return handler


def _simple() -> dict:
    return {"id": "simple", "name": "simple", "nodes": [node("s", "transform.set", x=1)]}


# Every route of the app, with a method; each must refuse a request without credentials.
ROUTES = [
    ("GET", "/metrics"),
    ("GET", "/api/workflows"),
    ("POST", "/api/workflows"),
    ("GET", "/api/workflows/simple"),
    ("PUT", "/api/workflows/simple"),
    ("DELETE", "/api/workflows/simple"),
    ("POST", "/api/workflows/simple/execute"),
    ("GET", "/api/workflows/simple/versions"),
    ("GET", "/api/executions"),
    ("GET", "/api/executions/x"),
    ("DELETE", "/api/executions/x"),
    ("GET", "/api/executions/x/events"),
    ("POST", "/api/executions/x/cancel"),
    ("POST", "/api/executions/x/retry"),
    ("GET", "/api/nodes"),
    ("GET", "/api/triggers"),
    ("POST", "/api/hooks/zen"),
    ("GET", "/api/hooks/zen"),
    ("GET", "/api/events"),
    ("GET", "/api/no-such-route"),
]


async def test_every_route_refuses_missing_or_bad_credentials(secured):
    for method, path in ROUTES:
        for headers in ({}, bearer("wrong-key"), {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            response = await secured.request(method, path, headers=headers)
            assert response.status == 401, (method, path, headers, await response.text())
            assert response.headers["WWW-Authenticate"] == "Bearer"
            body = await response.json()
            assert "wrong-key" not in body["error"]
    health = await secured.get("/health")
    assert health.status == 200


async def test_scopes(secured):
    admin, runner, reader = (bearer(key) for key in ("admin-key-1", "runner-key-1", "reader-key-1"))
    created = await secured.post("/api/workflows", json=_simple(), headers=admin)
    assert created.status == 201
    assert (await secured.post("/api/workflows", json=_simple(), headers=runner)).status == 403
    forbidden = await secured.delete("/api/workflows/simple", headers=reader)
    assert forbidden.status == 403
    assert "admin" in (await forbidden.json())["error"]
    assert (await secured.get("/api/workflows/simple", headers=reader)).status == 200
    assert (await secured.post("/api/workflows/simple/execute", headers=reader)).status == 403
    assert (await secured.post("/api/workflows/simple/execute", headers=runner)).status == 200
    assert (await secured.get("/api/executions", headers=runner)).status == 200
    assert (await secured.delete("/api/workflows/simple", headers=runner)).status == 403
    assert (await secured.delete("/api/workflows/simple", headers=admin)).status == 200


async def test_jwt_validity(secured):
    now = int(time.time())
    good = make_jwt(SECRET, {"sub": "ci", "scope": "read", "exp": now + 60})
    assert (await secured.get("/api/workflows", headers=bearer(good))).status == 200
    refused = {
        "expired": make_jwt(SECRET, {"scope": "read", "exp": now - 3600}),
        "not yet valid": make_jwt(SECRET, {"scope": "read", "nbf": now + 3600}),
        "wrongly signed": make_jwt("another-secret", {"scope": "admin"}),
    }
    header = _b64({"alg": "none", "typ": "JWT"})
    refused["alg none"] = f"{header}.{_b64({'scope': 'admin'})}."
    header512 = _b64({"alg": "HS512", "typ": "JWT"})
    payload = _b64({"scope": "admin"})
    signature = hmac.new(SECRET.encode(), f"{header512}.{payload}".encode(), hashlib.sha512).digest()
    refused["alg HS512"] = f"{header512}.{payload}.{b64url(signature)}"
    for why, token in refused.items():
        response = await secured.get("/api/workflows", headers=bearer(token))
        assert response.status == 401, why
        assert token not in (await response.json())["error"]


def _b64(obj: dict) -> str:
    return b64url(json.dumps(obj).encode())


async def test_websocket_needs_credentials_and_accepts_a_query_token(secured):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await secured.ws_connect("/api/events")
    assert refused.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await secured.ws_connect("/api/events?token=wrong")
    ws = await secured.ws_connect("/api/events?token=reader-key-1")
    await secured.post("/api/workflows", json=_simple(), headers=bearer("admin-key-1"))
    await secured.post("/api/workflows/simple/execute", headers=bearer("runner-key-1"))
    first = await ws.receive_json(timeout=5)
    assert first["type"] == "WorkflowStarted"
    await ws.close()
    header_ws = await secured.ws_connect("/api/events", headers=bearer("admin-key-1"))
    await header_ws.close()


async def test_signed_webhook_uses_its_signature_instead_of_credentials(secured):
    document = {
        "name": "hook",
        "nodes": [node("log", "debug.log")],
        "triggers": [{"trigger_type": {"type": "Webhook", "path": "signed", "secret": "hook-secret"}}],
    }
    assert (await secured.post("/api/workflows", json=document, headers=bearer("admin-key-1"))).status == 201
    payload = b'{"message": "hi"}'
    signature = sign(b"hook-secret", payload)
    response = await secured.post(
        "/api/hooks/signed", data=payload, headers={"X-Flowengine-Signature": signature}
    )
    assert response.status == 200, await response.text()
    unsigned = await secured.post("/api/hooks/signed", data=payload)
    assert unsigned.status == 401


async def test_tokens_never_reach_the_log(secured, caplog):
    caplog.set_level("DEBUG")
    await secured.get("/api/workflows", headers=bearer("admin-key-1"))
    await secured.get("/api/workflows", headers=bearer("not-a-key-xyz"))
    assert "admin-key-1" not in caplog.text
    assert "not-a-key-xyz" not in caplog.text


async def test_rate_limit(make_client):
    client = await make_client(rate_limit=__import__("flowengine.lib.ratelimit", fromlist=["x"]).parse_rate_limit("2/minute"))
    assert (await client.get("/api/workflows")).status == 200
    assert (await client.get("/api/nodes")).status == 200
    limited = await client.get("/api/workflows")
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "rate limit" in (await limited.json())["error"]
    for _ in range(5):  # exempt routes
        assert (await client.get("/health")).status == 200
        assert (await client.get("/metrics")).status == 200


async def test_rate_limit_is_per_client(make_client):
    from flowengine.lib.ratelimit import parse_rate_limit

    client = await make_client(rate_limit=parse_rate_limit("1/minute"), api_keys={"key-a-1234": "read", "key-b-1234": "read"})
    assert (await client.get("/api/workflows", headers=bearer("key-a-1234"))).status == 200
    assert (await client.get("/api/workflows", headers=bearer("key-a-1234"))).status == 429
    assert (await client.get("/api/workflows", headers=bearer("key-b-1234"))).status == 200


async def test_metrics_move_as_executions_run(client):
    workflow_id = await register(
        client,
        {
            "name": "m",
            "nodes": [node("a", "transform.set", x=1), node("b", "debug.log")],
            "connections": [link("a", "x", "b", "message")],
        },
    )
    before = await client.get("/metrics")
    assert before.status == 200
    assert before.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    first = samples_by_series(await before.text())
    for _ in range(3):
        await client.post(f"/api/workflows/{workflow_id}/execute")
    ws = await client.ws_connect("/api/events")
    after = samples_by_series(await (await client.get("/metrics")).text())
    key = f'flowengine_executions_total{{workflow="{workflow_id}",status="succeeded"}}'
    assert first.get(key, 0) == 0 and after[key] == 3
    assert after['flowengine_node_executions_total{node_type="debug.log",status="succeeded"}'] == 3
    assert after[f'flowengine_execution_duration_seconds_count{{workflow="{workflow_id}"}}'] == 3
    assert after[f'flowengine_execution_duration_seconds_bucket{{workflow="{workflow_id}",le="+Inf"}}'] == 3
    assert after['flowengine_node_duration_seconds_count{node_type="transform.set"}'] == 3
    assert after["flowengine_websocket_listeners"] == 1
    assert after["flowengine_events_published_total"] > first["flowengine_events_published_total"]
    assert after["flowengine_executions_running"] == 0
    route = 'flowengine_http_requests_total{route="/api/workflows/{id}/execute",method="POST",status="200"}'
    assert after[route] == 3
    await ws.close()


async def test_execution_queue_and_503(make_client):
    client = await make_client(max_concurrent_executions=1, max_queued_executions=1)
    workflow_id = await register(client, {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=400)]})
    first = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")
    second = await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")
    assert (first.status, second.status) == (202, 202)
    metrics = samples_by_series(await (await client.get("/metrics")).text())
    assert metrics["flowengine_executions_running"] == 1
    assert metrics["flowengine_executions_queued"] == 1
    third = await client.post(f"/api/workflows/{workflow_id}/execute")
    assert third.status == 503
    assert third.headers["Retry-After"] == "1"
    assert "queued" in (await third.json())["error"]
    # The queued one runs once the first is done.
    second_id = (await second.json())["execution_id"]
    for _ in range(200):
        record = await (await client.get(f"/api/executions/{second_id}")).json()
        if record["status"] == "succeeded":
            break
        await asyncio.sleep(0.02)
    assert record["status"] == "succeeded"
    assert (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).status == 202


async def test_workflow_over_max_nodes_is_400(make_client):
    client = await make_client(max_nodes=3)
    document = {"name": "big", "nodes": [node(f"n{i}", "debug.log") for i in range(4)]}
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert "FLOWENGINE_MAX_NODES" in (await response.json())["error"]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "224.0.0.1", "0.0.0.0",
     "240.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "100.64.0.1"],
)
def test_guard_blocks_non_public_addresses(address):
    assert netguard.is_blocked(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::6810:85e5", "8.8.8.8"])
def test_guard_allows_public_addresses(address):
    assert not netguard.is_blocked(address)


async def test_private_network_guard_blocks_loopback(make_client, aiohttp_server):
    target = web.Application()
    target.router.add_get("/", _text_handler("secret internal data"))
    server = await aiohttp_server(target, host="127.0.0.1")
    client = await make_client(http_block_private=True)
    workflow_id = await register(
        client, {"name": "fetch", "nodes": [node("get", "http.request", url=str(server.make_url("/")))]}
    )
    response = await client.post(f"/api/workflows/{workflow_id}/execute")
    body = await response.json()
    assert response.status == 500
    assert "FLOWENGINE_HTTP_BLOCK_PRIVATE" in body["error"]
    assert "secret internal data" not in json.dumps(body)


async def test_private_network_guard_checks_every_redirect(make_client, aiohttp_server, monkeypatch):
    # Only 127.0.0.1 counts as private here, so a server on 127.0.0.2 stands for the internet.
    monkeypatch.setattr(netguard, "is_blocked", lambda address: address == "127.0.0.1")
    internal = web.Application()
    internal.router.add_get("/", _text_handler("secret internal data"))
    internal_server = await aiohttp_server(internal, host="127.0.0.1")

    async def redirect(request):
        raise web.HTTPFound(str(internal_server.make_url("/")))

    public = web.Application()
    public.router.add_get("/", redirect)
    public.router.add_get("/plain", _text_handler("public"))
    public_server = await aiohttp_server(public, host="127.0.0.2")
    client = await make_client(http_block_private=True)
    plain = await register(
        client, {"name": "plain", "nodes": [node("get", "http.request", url=str(public_server.make_url("/plain")))]}
    )
    ok = await (await client.post(f"/api/workflows/{plain}/execute")).json()
    assert ok["outputs"]["get"]["body"]["value"] == "public"
    redirected = await register(
        client, {"name": "redirected", "nodes": [node("get", "http.request", url=str(public_server.make_url("/")))]}
    )
    response = await client.post(f"/api/workflows/{redirected}/execute")
    body = await response.json()
    assert response.status == 500
    assert "127.0.0.1" in body["error"] and "FLOWENGINE_HTTP_BLOCK_PRIVATE" in body["error"]


async def test_cancelling_a_queued_execution_answers_at_once(make_client):
    client = await make_client(max_concurrent_executions=1, max_queued_executions=5)
    workflow_id = await register(client, {"name": "slow", "nodes": [node("wait", "time.delay", delay_ms=30_000)]})
    running = await (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).json()
    queued = await (await client.post(f"/api/workflows/{workflow_id}/execute?wait=false")).json()
    response = await asyncio.wait_for(client.post(f"/api/executions/{queued['execution_id']}/cancel"), 5)
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"
    record = await (await client.get(f"/api/executions/{queued['execution_id']}")).json()
    assert record["status"] == "cancelled"
    assert [node_record["status"] for node_record in record["nodes"]] == ["pending"]
    assert (await client.post(f"/api/executions/{running['execution_id']}/cancel")).status == 200


async def test_failed_credentials_are_rate_limited_too(make_client):
    from flowengine.lib.ratelimit import parse_rate_limit

    client = await make_client(rate_limit=parse_rate_limit("3/minute"), api_keys={"real-key-123": "read"})
    statuses = [(await client.get("/api/workflows", headers=bearer(f"guess-{n}"))).status for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
