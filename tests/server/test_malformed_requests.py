"""Malformed requests over a raw socket: each one gets a JSON error with the status RFC 9110 gives
it, never aiohttp's text/plain page quoting the request, never a 500; nothing is logged at ERROR
and no credential reaches the log. The server is the app behind flowengine's own connection
layer (FlowengineTestServer), as ``flowengine serve`` runs it, with authentication on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest

from flowengine.server.app import make_app

from support.rawhttp import READ_LIMIT_S, exchange
from support.server import FlowengineTestServer

API_KEY = "malformed-test-key-4711"
AUTH = f"Authorization: Bearer {API_KEY}\r\n".encode()


@pytest.fixture
async def server(aiohttp_client, config):
    """The secured app's test server; the client makes it start and stop with the test."""
    secured = dataclasses.replace(config, api_keys={API_KEY: "admin"}, max_body_bytes=1000)
    client = await aiohttp_client(FlowengineTestServer(make_app(secured)))
    return client.server


def get(target: bytes = b"/api/workflows", *headers: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: test\r\n" + AUTH + b"".join(headers) + b"Connection: close\r\n\r\n"


def post(body: bytes, *headers: bytes) -> bytes:
    return b"POST /api/workflows HTTP/1.1\r\nHost: test\r\n" + AUTH + b"".join(headers) + b"Connection: close\r\n\r\n" + body


CASES = {
    # The HTTP parser's refusals.
    "over-long request line": (get(b"/" + b"a" * 9000), 414),
    "raw UTF-8 in the path": (get("/api/workflows/caf\u00e9".encode()), 400),
    "asterisk target with GET": (get(b"*"), 400),
    "unknown method": (get(method=b"FOO"), 501),
    "lower-case method": (get(method=b"get"), 501),
    "TLS bytes on the HTTP port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
    "no Host in HTTP/1.1": (b"GET /api/workflows HTTP/1.1\r\n" + AUTH + b"Connection: close\r\n\r\n", 400),
    "header value over the limit": (get(b"/api/workflows", b"X-Big: " + b"a" * 70_000 + b"\r\n"), 431),
    "too many headers": (get(b"/api/workflows", *(b"X-H%d: v\r\n" % n for n in range(200))), 431),
    "control character in a header name": (get(b"/api/workflows", b"X\x01Name: v\r\n"), 400),
    "control character in a header value": (get(b"/api/workflows", b"X-Name: a\x01b\r\n"), 400),
    "Content-Length with Transfer-Encoding": (post(b"0\r\n\r\n", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"), 400),
    "negative Content-Length": (post(b"{}", b"Content-Length: -1\r\n"), 400),
    "bad chunk size": (post(b"zz\r\n{}\r\n0\r\n\r\n", b"Transfer-Encoding: chunked\r\n"), 400),
    # Methods, per RFC 9110: a registered method this resource does not take -> 405 (with
    # Allow), one the server does not recognise -> 501 (above).
    "CONNECT": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" + AUTH + b"Connection: close\r\n\r\n", 405),
    "TRACE": (get(b"/health", method=b"TRACE"), 405),
    "PROPFIND (a WebDAV method)": (get(b"/api/workflows", method=b"PROPFIND"), 405),
    "QUERY": (get(b"/health", method=b"QUERY"), 405),
    "PURGE (known to the parser, not registered)": (get(b"/health", method=b"PURGE"), 501),
    # Bodies: what Content-Encoding claims but is not, and a declared length over the limit.
    "gzip that is not gzip": (post(b"{}", b"Content-Encoding: gzip\r\n", b"Content-Length: 2\r\n"), 400),
    "deflate that is not deflate": (post(b"{}", b"Content-Encoding: deflate\r\n", b"Content-Length: 2\r\n"), 400),
    "Content-Length over the limit": (post(b"", b"Content-Length: 5000000000\r\n"), 413),
    # Header bytes that are not UTF-8, where credentials are read.
    "non-UTF-8 Authorization": (b"GET /api/workflows HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n", 400),
    "non-UTF-8 header a preflight would echo": (
        get(b"/api/workflows", b"Origin: http://example.com\r\n", b"Access-Control-Request-Headers: X-\xff\r\n", method=b"OPTIONS"),
        400,
    ),
    "non-UTF-8 X-Flowengine-Signature": (post(b"{}", b"X-Flowengine-Signature: sha256=\xc3\x28\r\n", b"Content-Length: 2\r\n"), 400),
}


@pytest.mark.parametrize("raw, status", list(CASES.values()), ids=list(CASES))
async def test_malformed_request_gets_a_json_error(server, caplog, raw, status):
    caplog.set_level(logging.DEBUG)
    answered, headers, body = await exchange(server, raw)
    assert answered == status, body
    assert headers["content-type"].startswith("application/json")
    document = json.loads(body)
    assert set(document) == {"error"} and isinstance(document["error"], str) and document["error"]
    # The answer never quotes the request (aiohttp's own page did, header values included).
    assert b"\\x" not in body and b"aaaa" not in body and API_KEY.encode() not in body
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
    assert API_KEY not in caplog.text
    # The server carries on.
    assert (await exchange(server, get(b"/health")))[0] == 200


async def test_a_malformed_header_line_leaves_no_credential_in_the_log(server, caplog):
    """aiohttp's parser logged the offending line at ERROR; the key beside it went along."""
    caplog.set_level(logging.DEBUG)
    raw = b"GET /api/workflows HTTP/1.1\r\nHost: test\r\n" + AUTH + b"X-Bad: \x7f" + API_KEY.encode() + b"\r\nConnection: close\r\n\r\n"
    status, _headers, body = await exchange(server, raw)
    assert status == 400
    assert API_KEY not in caplog.text and API_KEY.encode() not in body
    assert "refused a malformed request" in caplog.text  # logged, at DEBUG, without the bytes


async def test_declared_body_over_the_limit_is_refused_before_it_is_sent(server):
    """The 413 comes while the client still holds its body back."""
    head = b"POST /api/workflows HTTP/1.1\r\nHost: test\r\n" + AUTH + b"Content-Type: application/json\r\nContent-Length: 1000001\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), READ_LIMIT_S)
        assert status_line.split()[1] == b"413"
    finally:
        writer.close()


async def test_unknown_methods_are_501_before_authentication(server):
    """Nothing is revealed by it, so no credentials are asked for."""
    raw = b"BREW /api/workflows HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    status, headers, body = await exchange(server, raw)
    assert status == 501 and json.loads(body) == {"error": "method 'BREW' is not implemented by this server"}
    assert "www-authenticate" not in headers


async def test_405_names_the_allowed_methods(server):
    status, headers, body = await exchange(server, get(b"/health", method=b"PROPFIND"))
    assert status == 405 and headers["allow"] == "GET,HEAD"
    assert json.loads(body) == {"error": "method PROPFIND is not allowed on /health (allowed: GET, HEAD)"}


async def test_body_that_is_not_the_gzip_it_claims_is_400_when_read(aiohttp_client, config):
    """Without authentication the handler reads the body: a 400 naming the encoding, not a 500."""
    client = await aiohttp_client(FlowengineTestServer(make_app(config)))
    response = await client.post(
        "/api/workflows", data=b'{"name": "x"}', headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == {"error": "request body is not encoded as its Content-Encoding says"}


async def test_incomplete_request_head_is_closed_with_408(aiohttp_client, config, caplog):
    caplog.set_level(logging.DEBUG)
    client = await aiohttp_client(FlowengineTestServer(make_app(dataclasses.replace(config, head_timeout=0.3))))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), READ_LIMIT_S)  # until the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"error": "request head not complete within 0.3 s (FLOWENGINE_HEAD_TIMEOUT)"}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_connection_that_sends_nothing_is_closed_without_an_answer(aiohttp_client, config):
    client = await aiohttp_client(FlowengineTestServer(make_app(dataclasses.replace(config, head_timeout=0.3))))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        assert await asyncio.wait_for(reader.read(), READ_LIMIT_S) == b""
    finally:
        writer.close()


async def test_head_timeout_leaves_slow_handlers_and_keep_alive_alone(aiohttp_client, config):
    """The clock runs only while a head is awaited: a request that takes longer than the head
    timeout to answer, and a keep-alive connection's next request, are unaffected."""
    client = await aiohttp_client(FlowengineTestServer(make_app(dataclasses.replace(config, head_timeout=0.3))))
    document = {"id": "slow", "name": "slow", "nodes": [{"id": "wait", "node_type": "time.delay", "config": {"delay_ms": {"type": "Number", "value": 600}}}]}
    assert (await client.post("/api/workflows", json=document)).status == 201
    for _ in range(2):  # the same pooled connection each time
        response = await client.post("/api/workflows/slow/execute", json={})
        assert response.status == 200, await response.text()


async def test_websocket_outlives_the_head_timeout(aiohttp_client, config):
    """Once upgraded, a connection carries frames, not request heads: no clock runs on it."""
    client = await aiohttp_client(FlowengineTestServer(make_app(dataclasses.replace(config, head_timeout=0.3))))
    async with client.ws_connect("/api/events") as socket:
        await asyncio.sleep(0.8)  # well past the head timeout
        document = {"id": "ping", "name": "ping", "nodes": [{"id": "log", "node_type": "debug.log"}]}
        assert (await client.post("/api/workflows", json=document)).status == 201
        assert (await client.post("/api/workflows/ping/execute", json={})).status == 200
        first = await asyncio.wait_for(socket.receive_json(), READ_LIMIT_S)
        assert first["type"] == "WorkflowStarted"
