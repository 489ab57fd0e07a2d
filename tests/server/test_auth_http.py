"""JWT and header-decoding refusals as a client sees them: JSON 401s through the real server."""

from __future__ import annotations

import json

import pytest

from support.rawhttp import exchange
from support.tokens import b64url, hs_token

SECRET = "http-test-secret-0123456789abcdefghij"
KEY = "rk_http_0123456789abcdef"


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret=SECRET, api_keys={KEY: "read"})


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer abc\xc3", b"Bearer eyJh.e30.\x80"])
async def test_undecodable_authorization_bytes_get_json_400(auth_client, value):
    # Refused as a malformed request before authentication looks at it (the middleware checks
    # every header's bytes); the authenticator's own 401 for such tokens is unit-tested.
    raw = (
        b"GET /api/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: " + value + b"\r\n\r\n"
    )
    status, headers, body = await exchange(auth_client.server, raw)
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
    await expect_401(auth_client, f"{b64url(deep.encode())}.e30.{b64url(b'x' * 32)}", "malformed token: header")
    shallower = '{"alg":"HS256","x":' + "[" * 100 + "]" * 100 + "}"
    await expect_401(auth_client, f"{b64url(shallower.encode())}.e30.{b64url(b'x' * 32)}", "nested more than 32")


@pytest.mark.parametrize("literal", ["1" + "0" * 400, "1e400"])
async def test_numbers_beyond_range_get_json_401(auth_client, literal):
    await expect_401(auth_client, hs_token('{"alg":"HS256"}', '{"scope":"read","exp":' + literal + "}", SECRET), "out of range")


async def test_null_exp_and_aud_get_json_401(auth_client):
    await expect_401(auth_client, hs_token('{"alg":"HS256"}', '{"scope":"read","exp":null}', SECRET), "'exp' must be a number")
    await expect_401(auth_client, hs_token('{"alg":"HS256"}', '{"scope":"read","aud":"x"}', SECRET), "FLOWENGINE_JWT_AUDIENCE")


async def test_a_good_token_still_works(auth_client):
    token = hs_token('{"alg":"HS256"}', '{"scope":"read"}', SECRET)
    response = await auth_client.get("/api/workflows", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
