"""Workflows survive a restart: a new app on the same SQLite file finds them."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from support.api import link, node, register


def document(name: str) -> dict:
    return {
        "id": "kept",
        "name": name,
        "description": "survives restarts",
        "nodes": [node("a", "transform.set", greeting="hi"), node("b", "debug.log")],
        "connections": [link("a", "greeting", "b", "message")],
        "settings": {"max_parallel_nodes": 3, "on_error": "ContinueOnError"},
    }


async def test_workflow_survives_a_restart(make_client, config):
    first = await make_client()
    await register(first, document("Original"))
    await register(first, {"id": "gone", "name": "deleted before the restart"})
    assert (await first.delete("/api/workflows/gone")).status == 200
    registered = await (await first.get("/api/workflows/kept")).json()
    await first.close()

    second = await make_client()
    response = await second.get("/api/workflows/kept")
    assert response.status == 200
    assert await response.json() == registered
    assert (await second.get("/api/workflows/gone")).status == 404
    listed = await (await second.get("/api/workflows")).json()
    assert [item["id"] for item in listed] == ["kept"]

    response = await second.put("/api/workflows/kept", json=document("Replaced"))
    assert (await response.json())["version"] == 2
    replaced = await (await second.get("/api/workflows/kept")).json()
    await second.close()

    third = await make_client()
    restored = await (await third.get("/api/workflows/kept")).json()
    assert restored == replaced
    assert (restored["name"], restored["version"]) == ("Replaced", 2)
    assert restored["created_at"] == registered["created_at"]
    # The id is still taken after the restart, and versions go on from where they were.
    create_only = {"If-None-Match": "*"}
    assert (await third.post("/api/workflows", json=document("Again"), headers=create_only)).status == 412
    response = await third.put("/api/workflows/kept", json=document("Third"))
    assert (await response.json())["version"] == 3


@pytest.mark.sqlite_only
async def test_database_is_in_wal_mode(make_client, config):
    client = await make_client()
    await register(client, document("Original"))
    await client.close()
    with closing(sqlite3.connect(config.db)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert db.execute("SELECT id, version FROM workflows").fetchall() == [("kept", 1)]


async def test_memory_database_starts_empty(make_client):
    client = await make_client(db=":memory:")
    await register(client, document("Throwaway"))
    await client.close()
    client = await make_client(db=":memory:")
    assert await (await client.get("/api/workflows")).json() == []


async def test_a_stored_workflow_that_no_longer_loads_can_be_replaced_or_deleted(aiohttp_client, config, monkeypatch):
    from flowengine.server.app import make_app

    document = {
        "id": "hooked",
        "name": "needs a secret",
        "nodes": [{"id": "log", "node_type": "debug.log"}],
        "triggers": [{"trigger_type": {"type": "Webhook", "path": "p", "secret": {"type": "Secret", "value": "HK"}}}],
    }
    monkeypatch.setenv("FLOWENGINE_SECRET_HK", "hook-key-1")
    first = await aiohttp_client(make_app(config))
    assert (await first.post("/api/workflows", json=document)).status == 201
    await first.close()

    monkeypatch.delenv("FLOWENGINE_SECRET_HK")  # the secret is gone: the stored document no longer validates
    second = await aiohttp_client(make_app(config))
    shown = await second.get("/api/workflows/hooked")
    assert shown.status == 404 and "cannot be loaded" in (await shown.json())["error"]
    again = await second.post("/api/workflows", json={**document, "triggers": []}, headers={"If-None-Match": "*"})
    assert again.status == 412  # the id is still taken, not a 500
    replaced = await second.put("/api/workflows/hooked", json={**document, "triggers": []})
    assert replaced.status == 200 and (await replaced.json())["version"] == 2
    assert (await second.get("/api/workflows/hooked")).status == 200
    assert (await second.delete("/api/workflows/hooked")).status == 200
    assert (await second.get("/api/workflows/hooked")).status == 404
