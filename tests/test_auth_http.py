"""JWT and header-decoding refusals as a client sees them: JSON 401s through the real server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest

SECRET = "http-test-secret-0123456789abcdefghij"
KEY = "rk_http_0123456789abcdef"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header_json: str, payload_json: str) -> str:
    head, body = b64(header_json.encode()), b64(payload_json.encode())
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret=SECRET, api_keys={KEY: "read"})


async def raw_request(client, header_value: bytes) -> tuple[int, dict, bytes]:
    """Send one GET with a raw Authorization header value (bytes aiohttp's client would refuse)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"GET /api/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: " + header_value + b"\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    return status, {k.decode().lower(): v.decode() for k, v in headers.items()}, body


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer abc\xc3", b"Bearer eyJh.e30.\x80"])
async def test_undecodable_authorization_bytes_get_json_400(auth_client, value):
    # Refused as a malformed request before authentication looks at it (the middleware checks
    # every header's bytes); the authenticator's own 401 for such tokens is unit-tested.
    status, headers, body = await raw_request(auth_client, value)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": "header Authorization is not valid UTF-8"}


async def expect_401(client, token: str, fragment: str) -> None:
    response = await client.get("/api/workflows", headers={"Authorization": f"Bearer {token}"})
    body = await response.json()
    assert response.status == 401, body
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert fragment in body["error"]


async def test_deeply_nested_header_gets_json_401(auth_client):
    deep = '{"alg":"HS256","x":' + "[" * 1200 + "]" * 1200 + "}"
    await expect_401(auth_client, f"{b64(deep.encode())}.e30.{b64(b'x' * 32)}", "malformed token: header")
    shallower = '{"alg":"HS256","x":' + "[" * 100 + "]" * 100 + "}"
    await expect_401(auth_client, f"{b64(shallower.encode())}.e30.{b64(b'x' * 32)}", "nested more than 32")


@pytest.mark.parametrize("literal", ["1" + "0" * 400, "1e400"])
async def test_numbers_beyond_range_get_json_401(auth_client, literal):
    await expect_401(auth_client, signed('{"alg":"HS256"}', '{"scope":"read","exp":' + literal + "}"), "out of range")


async def test_null_exp_and_aud_get_json_401(auth_client):
    await expect_401(auth_client, signed('{"alg":"HS256"}', '{"scope":"read","exp":null}'), "'exp' must be a number")
    await expect_401(auth_client, signed('{"alg":"HS256"}', '{"scope":"read","aud":"x"}'), "FLOWENGINE_JWT_AUDIENCE")


async def test_a_good_token_still_works(auth_client):
    token = signed('{"alg":"HS256"}', '{"scope":"read"}')
    response = await auth_client.get("/api/workflows", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
