"""``GET /api/session``: who the credentials stand for and what they may do, as a client sees it."""

from __future__ import annotations

import hashlib
import time

from flowengine.lib.ratelimit import parse_rate_limit

from support.tokens import bearer, hs_token

SECRET = "session-test-secret-0123456789abcdefghij"
READ_KEY = "rk_session_0123456789abcdef"
EXECUTE_KEY = "ek_session_0123456789abcdef"


async def test_with_authentication_off_everyone_may_do_everything(client):
    response = await client.get("/api/session")
    assert response.status == 200
    assert await response.json() == {
        "authenticated": False,
        "auth": "off",
        "subject": None,
        "scopes": ["read", "execute", "admin"],
    }


async def test_an_api_key_is_named_by_its_fingerprint_with_the_scopes_it_allows(make_client):
    client = await make_client(api_keys={READ_KEY: "read", EXECUTE_KEY: "execute"})
    read = await (await client.get("/api/session", headers=bearer(READ_KEY))).json()
    fingerprint = hashlib.sha256(READ_KEY.encode()).hexdigest()[:12]
    assert read == {"authenticated": True, "auth": "api_key", "subject": f"key-{fingerprint}", "scopes": ["read"]}
    execute = await (await client.get("/api/session", headers=bearer(EXECUTE_KEY))).json()
    assert execute["scopes"] == ["read", "execute"]
    assert READ_KEY not in str(read) and EXECUTE_KEY not in str(execute)


async def test_a_jwt_gives_its_subject_and_highest_scope(make_client):
    client = await make_client(jwt_secret=SECRET)
    token = hs_token(
        '{"alg":"HS256","typ":"JWT"}', f'{{"sub":"ada","scope":"read admin","exp":{int(time.time()) + 600}}}', SECRET
    )
    response = await client.get("/api/session", headers=bearer(token))
    assert response.status == 200
    assert await response.json() == {
        "authenticated": True,
        "auth": "jwt",
        "subject": "ada",
        "scopes": ["read", "execute", "admin"],
    }


async def test_without_credentials_it_is_the_usual_401(make_client):
    client = await make_client(api_keys={READ_KEY: "read"})
    response = await client.get("/api/session")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "missing credentials" in (await response.json())["error"]
    wrong = await client.get("/api/session", headers=bearer("not-a-key"))
    assert wrong.status == 401


async def test_rate_limits_alone_leave_it_unauthenticated(make_client):
    # The access middleware runs (for the limiter) but authenticates no one.
    client = await make_client(rate_limit=parse_rate_limit("1000/second"))
    body = await (await client.get("/api/session")).json()
    assert body["authenticated"] is False and body["auth"] == "off"
