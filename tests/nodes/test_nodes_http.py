"""http.request against a local aiohttp server on 127.0.0.1, driven through the HTTP API."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from flowengine.server.keys import ENGINE, HTTP_CLIENT

from support.api import execute, link, node, register, run
from support.slow import held_route


async def _echo(request: web.Request) -> web.Response:
    """Reports what arrived: method, query, headers, body, and the client's port."""
    raw = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "content_type": request.content_type,
            "body_b64": base64.b64encode(raw).decode("ascii"),
            "client_port": request.transport.get_extra_info("peername")[1],
        },
        headers={"X-Method": request.method},
    )


async def _text(request: web.Request) -> web.Response:
    return web.Response(text="plain words", headers={"X-Kind": "text"})


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.json_response({"status": code}, status=code)


@pytest.fixture
async def target(aiohttp_server):
    """A local HTTP target; ``/slow`` answers only once the test releases it."""
    slow, release = held_route()
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/text", _text)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app)
    yield server
    release.set()


def _url(server, path: str) -> str:
    return str(server.make_url(path))


def _single(method: str = "GET", **config: Any) -> dict[str, Any]:
    return {"name": "http", "nodes": [node("req", "http.request", method=method, **config)], "connections": []}


def _out(body: dict[str, Any], node_id: str = "req") -> dict[str, Any]:
    return body["outputs"][node_id]


async def test_get_sends_headers_and_query_and_outputs_status_body_headers_json(client, target):
    body = await run(
        client,
        _single(headers={"X-Token": "abc", "Accept": "application/json"}, query={"q": "flow", "page": 2}),
        {"url": _url(target, "/echo")},
    )
    out = _out(body)
    assert out["status"] == {"type": "Number", "value": 200}
    echoed = out["json"]["value"]
    assert out["json"]["type"] == "Json"
    assert echoed["method"] == "GET"
    assert echoed["query"] == {"q": "flow", "page": "2"}
    assert echoed["headers"]["X-Token"] == "abc"
    assert out["body"]["type"] == "String" and '"method": "GET"' in out["body"]["value"]
    assert out["headers"]["type"] == "Object"
    assert out["headers"]["value"]["X-Method"] == {"type": "String", "value": "GET"}
    assert out["headers"]["value"]["Content-Type"]["value"].startswith("application/json")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_each_method_reaches_the_server(client, target, method):
    body = await run(client, _single(method=method), {"url": _url(target, "/echo")})
    assert _out(body)["json"]["value"]["method"] == method


async def test_head_has_status_and_headers_but_no_body(client, target):
    body = await run(client, _single(method="HEAD"), {"url": _url(target, "/echo")})
    out = _out(body)
    assert out["status"]["value"] == 200
    assert out["headers"]["value"]["X-Method"]["value"] == "HEAD"
    assert out["body"] == {"type": "String", "value": ""}
    assert "json" not in out


async def test_url_can_come_from_config(client, target):
    body = await run(client, _single(url=_url(target, "/echo")))
    assert _out(body)["json"]["value"]["path"] == "/echo"


async def test_json_body_is_sent_as_json(client, target):
    body = await run(client, _single(method="POST"), {"url": _url(target, "/echo"), "body": {"a": [1, 2]}})
    echoed = _out(body)["json"]["value"]
    assert echoed["content_type"] == "application/json"
    assert base64.b64decode(echoed["body_b64"]) == b'{"a": [1, 2]}'


async def test_string_body_is_sent_as_text(client, target):
    body = await run(client, _single(method="PUT"), {"url": _url(target, "/echo"), "body": "héllo"})
    echoed = _out(body)["json"]["value"]
    assert echoed["content_type"] == "text/plain"
    assert base64.b64decode(echoed["body_b64"]) == "héllo".encode()


async def test_bytes_body_is_sent_as_bytes(client, target):
    raw = bytes([0, 255, 10, 13])
    body = await run(
        client,
        _single(method="POST"),
        {"url": _url(target, "/echo"), "body": {"type": "Bytes", "value": base64.b64encode(raw).decode()}},
    )
    echoed = _out(body)["json"]["value"]
    assert base64.b64decode(echoed["body_b64"]) == raw
    assert echoed["content_type"] == "application/octet-stream"


async def test_body_can_come_from_an_upstream_node(client, target):
    document = {
        "name": "chain",
        "nodes": [
            node("payload", "transform.set", body={"n": 1}),
            node("req", "http.request", method="POST", url=_url(target, "/echo")),
        ],
        "connections": [link("payload", "body", "req", "body")],
    }
    body = await run(client, document)
    assert base64.b64decode(_out(body)["json"]["value"]["body_b64"]) == b'{"n": 1}'


async def test_text_response_has_no_json_output(client, target):
    body = await run(client, _single(), {"url": _url(target, "/text")})
    out = _out(body)
    assert out["body"] == {"type": "String", "value": "plain words"}
    assert out["headers"]["value"]["X-Kind"]["value"] == "text"
    assert "json" not in out


async def test_non_2xx_without_fail_on_status_succeeds_with_the_status(client, target):
    body = await run(client, _single(), {"url": _url(target, "/status/404")})
    assert body["status"] == "succeeded"
    assert _out(body)["status"]["value"] == 404
    assert _out(body)["json"]["value"] == {"status": 404}


async def test_non_2xx_with_fail_on_status_fails_the_node(client, target):
    url = _url(target, "/status/503")
    body = await run(client, _single(fail_on_status=True), {"url": url}, expect=500)
    assert body["status"] == "failed"
    assert body["error"] == (
        f"Node execution failed: node 'req' (http.request): GET {url}: response status 503 (fail_on_status is set)"
    )


async def test_2xx_with_fail_on_status_succeeds(client, target):
    body = await run(client, _single(fail_on_status=True), {"url": _url(target, "/status/201")})
    assert _out(body)["status"]["value"] == 201


def _closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_connection_refused_fails_with_a_message_that_says_so(client, host):
    port = _closed_port()
    url = f"http://{host}:{port}/x"
    body = await run(client, _single(), {"url": url}, expect=500)
    assert body["error"] == (
        f"Node execution failed: node 'req' (http.request): GET {url}: connection to {host}:{port} refused"
    )


async def test_timeout_fails_with_a_message_that_says_so(client, target):
    url = _url(target, "/slow")
    body = await run(client, _single(timeout_ms=100), {"url": url}, expect=500)
    assert body["error"].endswith(f"GET {url}: timed out after 100 ms (config timeout_ms)")


class _NoDNS(AbstractResolver):
    """A resolver that fails the way getaddrinfo does when a name does not exist."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_dns_failure_fails_with_a_message_that_says_dns(client):
    # No network in tests: swap the engine's shared session for one whose resolver fails.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_NoDNS()))
    engine = client.app[ENGINE]
    shared, engine.http = engine.http, session
    try:
        body = await run(client, _single(), {"url": "http://no-such-host.invalid/"}, expect=500)
    finally:
        engine.http = shared
        await session.close()
    assert "GET http://no-such-host.invalid/: DNS lookup failed for no-such-host.invalid" in body["error"]


async def test_invalid_url_fails_the_node(client):
    body = await run(client, _single(), {"url": "not a url"}, expect=500)
    assert "GET not a url: invalid URL" in body["error"]


async def test_requests_share_one_pooled_session(client, target):
    assert client.app[ENGINE].http is client.app[HTTP_CLIENT]
    workflow_id = await register(client, _single())
    ports = set()
    for _ in range(3):
        body = await execute(client, workflow_id, {"url": _url(target, "/echo")})
        ports.add(_out(body)["json"]["value"]["client_port"])
    # One keep-alive connection from the shared session served all three executions.
    assert len(ports) == 1


async def test_info_events_before_and_after(client, target):
    url = _url(target, "/echo")
    workflow_id = await register(client, _single())
    async with client.ws_connect(f"/api/events?workflow_id={workflow_id}&types=NodeEvent") as ws:
        await execute(client, workflow_id, {"url": url})
        first = await asyncio.wait_for(ws.receive_json(), 5)
        second = await asyncio.wait_for(ws.receive_json(), 5)
    assert first["node_id"] == "req" and first["event"] == {"event_type": "Info", "message": f"GET {url}"}
    assert second["event"] == {"event_type": "Info", "message": "Response status: 200"}
