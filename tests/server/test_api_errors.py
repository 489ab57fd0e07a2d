"""HTTP-level errors are JSON everywhere; CORS on every response."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from flowengine.server.app import make_app

JSON = {"Content-Type": "application/json"}


async def error_of(response, status: int) -> str:
    """The ``error`` of a JSON error response, after checking its status, type and CORS header."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = await response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


async def test_unknown_path_is_json_404(client):
    error = await error_of(await client.get("/nope"), 404)
    assert error == "not found: GET /nope"
    # An HTML-preferring client still gets JSON.
    error = await error_of(await client.get("/api/nope", headers={"Accept": "text/html"}), 404)
    assert "/api/nope" in error


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("DELETE", "/api/workflows", "GET, HEAD, POST"),
        ("PATCH", "/api/workflows/x", "DELETE, GET, HEAD, PUT"),
        ("POST", "/health", "GET, HEAD"),
        ("PUT", "/api/nodes", "GET, HEAD"),
        # Paths the router tries before the others of their prefix (routes.py)
        ("GET", "/api/workflows/x/execute", "POST"),
        ("PUT", "/api/hooks/a/b", "GET, HEAD, POST"),
    ],
)
async def test_wrong_method_is_json_405(client, method, path, allowed):
    response = await client.request(method, path)
    error = await error_of(response, 405)
    assert error == f"method {method} is not allowed on {path} (allowed: {allowed})"
    assert {item.strip() for item in response.headers["Allow"].split(",")} == set(allowed.split(", "))


async def test_malformed_json_names_the_position(client):
    response = await client.post("/api/workflows", data='{"name": "x",, }', headers=JSON)
    error = await error_of(response, 400)
    assert error == "request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 14 (char 13)"


async def test_malformed_json_on_a_later_line(client):
    response = await client.post("/api/workflows", data='{\n  "name": "x"\n  "nodes": []\n}', headers=JSON)
    error = await error_of(response, 400)
    assert error.startswith("request body is not valid JSON:") and "line 3 column 3" in error


async def test_invalid_utf8_is_400(client):
    response = await client.post("/api/workflows", data=b'{"name": "\xff\xfe\xfa"}', headers=JSON)
    assert "UTF-8" in await error_of(response, 400)


@pytest.mark.parametrize("body, kind", [("[]", "array"), ('"text"', "string"), ("42", "number"), ("null", "null")])
async def test_body_that_is_not_an_object_is_400(client, body, kind):
    response = await client.post("/api/workflows", data=body, headers=JSON)
    assert await error_of(response, 400) == "request body must be a JSON object"


async def test_empty_body_is_400(client):
    response = await client.post("/api/workflows", data=b"", headers=JSON)
    assert await error_of(response, 400) == "request body is empty: send a JSON object"


async def test_put_body_errors_too(client):
    response = await client.put("/api/workflows/x", data="[1, 2", headers=JSON)
    assert (await error_of(response, 400)).startswith("request body is not valid JSON:")


async def test_body_over_the_limit_is_413(make_client):
    client = await make_client(max_body_bytes=1000)
    document = {"name": "big", "description": "x" * 2000}
    response = await client.post("/api/workflows", json=document)
    error = await error_of(response, 413)
    assert error == "request body too large: the limit is 1000 bytes (FLOWENGINE_MAX_BODY_BYTES)"
    assert await (await client.get("/api/workflows")).json() == []
    # Just under the limit is fine.
    response = await client.post("/api/workflows", json={"name": "small", "description": "x" * 900})
    assert response.status == 201, await response.text()


async def test_chunked_body_over_the_limit_is_413(make_client):
    client = await make_client(max_body_bytes=1000)

    async def chunks():
        yield b'{"name": "big", "description": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    response = await client.post("/api/workflows", data=chunks(), headers=JSON)
    await error_of(response, 413)
    assert await (await client.get("/api/workflows")).json() == []


async def test_nesting_64_deep_is_accepted(client):
    deep: object = "bottom"
    for _ in range(63):  # with the body object itself: 64 levels
        deep = [deep]
    response = await client.post("/api/workflows", json={"name": "deep", "note": deep})
    assert response.status == 201, await response.text()


@pytest.mark.parametrize("depth", [65, 100_000])
async def test_nesting_deeper_than_64_is_400(client, depth):
    text = '{"name": "deep", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    response = await client.post("/api/workflows", data=text, headers=JSON)
    assert await error_of(response, 400) == "request body is nested deeper than 64 levels"
    assert await (await client.get("/api/workflows")).json() == []


async def test_handler_crash_is_500_without_traceback(make_client, config, caplog):
    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail of the crash")

    app = make_app(config)
    app.router.add_get("/crash", crash)
    client = await make_client(app)
    with caplog.at_level(logging.ERROR, logger="flowengine"):
        response = await client.get("/crash")
        text = await response.text()
    assert await error_of(response, 500) == "internal error"
    assert "secret detail" not in text and "Traceback" not in text
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert logged, "the crash was not logged"
    assert any(record.exc_info and "secret detail of the crash" in str(record.exc_info[1]) for record in logged)
    assert "GET /crash" in logged[0].getMessage()
    # The server carries on.
    assert (await client.get("/health")).status == 200


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/health"),
        ("GET", "/api/workflows"),
        ("GET", "/api/nodes"),
        ("GET", "/api/workflows/missing"),
        ("DELETE", "/api/workflows/missing"),
        ("GET", "/no/such/path"),
        ("PATCH", "/api/workflows"),
    ],
)
async def test_cors_header_on_every_response(client, method, path):
    response = await client.request(method, path, headers={"Origin": "http://example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_header_on_created_and_rejected_posts(client):
    response = await client.post("/api/workflows", json={"name": "ok"})
    assert response.status == 201
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response = await client.post("/api/workflows", json={"name": ""})
    await error_of(response, 400)


@pytest.mark.parametrize(
    "path, methods",
    [
        ("/api/workflows", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/api/workflows/some-id", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
        ("/api/workflows/some-id/execute", {"POST", "OPTIONS"}),
        ("/health", {"GET", "HEAD", "OPTIONS"}),
        ("/api/nodes", {"GET", "HEAD", "OPTIONS"}),
    ],
)
async def test_preflight_is_204(client, path, methods):
    response = await client.options(
        path,
        headers={
            "Origin": "http://example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status == 204
    assert await response.read() == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == methods
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


async def test_preflight_on_an_unknown_path_is_404(client):
    await error_of(await client.options("/no/such/path"), 404)


async def test_preflight_allows_the_headers_asked_for(client):
    response = await client.options(
        "/api/workflows",
        headers={"Origin": "http://example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, x-request-id"},
    )
    assert response.status == 204
    allowed = {item.strip().lower() for item in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-request-id", "authorization"} <= allowed
