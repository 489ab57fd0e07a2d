"""Rate limits through the HTTP API: every answer counts, refusals and errors included."""

from __future__ import annotations

from flowengine.lib.auth import Authenticator
from flowengine.lib.ratelimit import parse_rate_limit

from support.tokens import bearer


async def test_scope_refusals_count(make_client):
    """A reader probing admin routes is throttled like any other caller."""
    client = await make_client(rate_limit=parse_rate_limit("3/minute"), api_keys={"reader-key-123": "read"})
    statuses = [(await client.delete(f"/api/workflows/w{n}", headers=bearer("reader-key-123"))).status for n in range(5)]
    assert statuses == [403, 403, 403, 429, 429]


async def test_error_answers_count(make_client):
    client = await make_client(rate_limit=parse_rate_limit("2/minute"))
    statuses = [
        (await client.get("/api/workflows/missing")).status,
        (await client.post("/api/workflows", data=b"{not json", headers={"Content-Type": "application/json"})).status,
        (await client.get("/api/workflows")).status,
    ]
    assert statuses == [404, 400, 429]


async def test_credentials_that_break_the_verifier_count(make_client, monkeypatch):
    """An unexpected failure while checking credentials is a 500, and still charged to the caller."""

    def broken(self, token):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(Authenticator, "authenticate", broken)
    client = await make_client(rate_limit=parse_rate_limit("2/minute"), api_keys={"real-key-123": "read"})
    statuses = [(await client.get("/api/workflows", headers=bearer("x" * 20))).status for _ in range(3)]
    assert statuses == [500, 500, 429]
