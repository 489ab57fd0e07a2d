"""``POST /api/workflows`` on an id that is already registered: upstream clients post fixed-id
documents on every run, so the answer is 201 with the next version, or the same version when
the document is unchanged; ``If-None-Match: *`` keeps the old create-only safety (412)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from support.api import execute, link, node

CREATED = "Workflow created successfully"
UPDATED = "Workflow updated successfully"
UNCHANGED = "Workflow unchanged"


def greet(workflow_id: str = "550e8400-e29b-41d4-a716-446655440000", greeting: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": "Greet",
        "nodes": [node("say", "transform.template", template=greeting + " ${name}"), node("log", "debug.log")],
        "connections": [link("say", "text", "log", "message")],
        **extra,
    }


async def post(client, document: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/workflows", json=document, headers=headers)
    return response.status, await response.json()


async def versions(client, workflow_id: str) -> list[int]:
    response = await client.get(f"/api/workflows/{workflow_id}/versions")
    assert response.status == 200
    return [entry["version"] for entry in await response.json()]


async def test_the_same_client_script_twice_answers_201_both_times(client):
    document = greet()
    workflow_id = document["id"]

    response = await client.post("/api/workflows", json=document)
    assert response.status == 201
    assert await response.json() == {"id": workflow_id, "version": 1, "message": CREATED}
    assert response.headers["Location"] == f"/api/workflows/{workflow_id}"
    first = await (await client.get(f"/api/workflows/{workflow_id}")).json()

    response = await client.post("/api/workflows", json=document)
    assert response.status == 201
    assert await response.json() == {"id": workflow_id, "version": 1, "message": UNCHANGED}
    assert response.headers["Location"] == f"/api/workflows/{workflow_id}"
    # Nothing was stored: same version, same updated_at, one entry in the history.
    assert await (await client.get(f"/api/workflows/{workflow_id}")).json() == first
    assert await versions(client, workflow_id) == [1]
    body = await execute(client, workflow_id, {"name": "Ada"})
    assert body["outputs"]["log"]["message"] == {"type": "String", "value": "Hello Ada"}


async def test_a_changed_document_is_the_next_version_and_runs_keep_theirs(client):
    assert await post(client, greet("g")) == (201, {"id": "g", "version": 1, "message": CREATED})
    started = await execute(client, "g", {"name": "Ada"})

    assert await post(client, greet("g", "Bye")) == (201, {"id": "g", "version": 2, "message": UPDATED})
    current = await (await client.get("/api/workflows/g")).json()
    assert current["version"] == 2
    assert current["nodes"][0]["config"]["template"] == {"type": "String", "value": "Bye ${name}"}
    kept = await (await client.get("/api/workflows/g?version=1")).json()
    assert kept["nodes"][0]["config"]["template"] == {"type": "String", "value": "Hello ${name}"}
    assert await versions(client, "g") == [1, 2]

    body = await execute(client, "g", {"name": "Ada"})
    assert body["outputs"]["log"]["message"] == {"type": "String", "value": "Bye Ada"}
    record = await (await client.get(f"/api/executions/{started['execution_id']}")).json()
    assert record["workflow_version"] == 1

    # Posting the new document again changes nothing; posting the old one is a third version.
    assert await post(client, greet("g", "Bye")) == (201, {"id": "g", "version": 2, "message": UNCHANGED})
    assert await post(client, greet("g")) == (201, {"id": "g", "version": 3, "message": UPDATED})
    assert await versions(client, "g") == [1, 2, 3]


async def test_triggers_without_ids_do_not_make_a_document_differ(client):
    """Parsing gives a trigger without an id a random one; the same document re-posted is
    still the same document."""
    triggers = [
        {"trigger_type": {"type": "Webhook", "path": "greet"}},
        {"trigger_type": {"type": "Cron", "expression": "0 0 1 1 *"}},
    ]
    assert (await post(client, greet("t", triggers=triggers)))[1]["message"] == CREATED
    assert await post(client, greet("t", triggers=triggers)) == (201, {"id": "t", "version": 1, "message": UNCHANGED})
    named = [{**triggers[0], "id": "hook"}, triggers[1]]
    assert await post(client, greet("t", triggers=named)) == (201, {"id": "t", "version": 2, "message": UPDATED})
    assert await post(client, greet("t", triggers=named)) == (201, {"id": "t", "version": 2, "message": UNCHANGED})
    stored = await (await client.get("/api/workflows/t")).json()
    assert stored["triggers"][0]["id"] == "hook"


async def test_a_webhook_path_another_workflow_uses_is_still_409(client):
    hooked = [{"trigger_type": {"type": "Webhook", "path": "shared"}}]
    assert (await post(client, greet("owner", triggers=hooked)))[0] == 201
    assert (await post(client, greet("other")))[0] == 201

    status, body = await post(client, greet("other", "Bye", triggers=hooked))
    assert status == 409
    assert body == {"error": "webhook path 'shared' is already used by workflow owner"}
    assert (await (await client.get("/api/workflows/other")).json())["version"] == 1
    assert await versions(client, "other") == [1]
    # The owner itself may re-post its path.
    assert await post(client, greet("owner", "Bye", triggers=hooked)) == (
        201,
        {"id": "owner", "version": 2, "message": UPDATED},
    )


async def test_an_invalid_document_for_a_taken_id_is_400_and_keeps_the_current_one(client):
    assert (await post(client, greet("g")))[0] == 201
    broken = greet("g", "Bye")
    broken["connections"].append(link("log", "message", "missing", "message"))
    status, body = await post(client, broken)
    assert status == 400
    assert body == {"error": "connections[1].to_node: unknown node 'missing'"}
    assert (await (await client.get("/api/workflows/g")).json())["version"] == 1


async def test_if_none_match_star_is_create_only(client):
    create_only = {"If-None-Match": "*"}
    assert await post(client, greet("c"), create_only) == (201, {"id": "c", "version": 1, "message": CREATED})
    for document in (greet("c"), greet("c", "Bye")):
        status, body = await post(client, document, create_only)
        assert status == 412
        assert body == {"error": "Workflow c already exists (If-None-Match: * asks to create a new id only)"}
    assert await versions(client, "c") == [1]
    # Surrounding spaces are allowed, as in any header value.
    assert (await post(client, greet("d"), {"If-None-Match": " * "}))[0] == 201


async def test_if_none_match_with_an_entity_tag_is_refused(client):
    status, body = await post(client, greet("e"), {"If-None-Match": '"v1"'})
    assert status == 400
    assert body == {"error": "header If-None-Match: only * is supported (create-only), got '\"v1\"'"}
    assert (await client.get("/api/workflows/e")).status == 404


async def test_concurrent_posts_of_one_id_get_consecutive_versions(client):
    responses = await asyncio.gather(*(post(client, greet("race", f"Hi{i}")) for i in range(8)))
    assert all(status == 201 for status, _ in responses)
    numbers = sorted(body["version"] for _, body in responses)
    assert numbers == list(range(1, 9))
    assert Counter(body["message"] for _, body in responses) == {CREATED: 1, UPDATED: 7}
    assert await versions(client, "race") == list(range(1, 9))
    # The current document is the one whose answer carried the highest version.
    last = next(i for i, (_, body) in enumerate(responses) if body["version"] == 8)
    current = await (await client.get("/api/workflows/race")).json()
    assert current["nodes"][0]["config"]["template"]["value"] == f"Hi{last} ${{name}}"

    # The same document posted concurrently: stored at most once.
    again = await asyncio.gather(*(post(client, greet("race", "Same")) for _ in range(5)))
    assert Counter(body["message"] for _, body in again) == {UPDATED: 1, UNCHANGED: 4}
    assert {body["version"] for _, body in again} == {9}
    assert await versions(client, "race") == list(range(1, 10))


async def test_re_registering_across_a_restart(make_client):
    first = await make_client()
    assert (await post(first, greet("kept")))[0] == 201
    assert (await post(first, greet("kept", "Bye")))[1]["version"] == 2
    await first.close()

    second = await make_client()
    assert await post(second, greet("kept", "Bye")) == (201, {"id": "kept", "version": 2, "message": UNCHANGED})
    assert await post(second, greet("kept")) == (201, {"id": "kept", "version": 3, "message": UPDATED})
    status, _ = await post(second, greet("kept"), {"If-None-Match": "*"})
    assert status == 412
    assert await versions(second, "kept") == [1, 2, 3]


async def test_a_stored_workflow_that_no_longer_loads_is_replaced_by_post(make_client, monkeypatch):
    document = greet(
        "hooked",
        triggers=[{"trigger_type": {"type": "Webhook", "path": "p", "secret": {"type": "Secret", "value": "HK"}}}],
    )
    monkeypatch.setenv("FLOWENGINE_SECRET_HK", "hook-key-1")
    first = await make_client()
    assert (await post(first, document))[0] == 201
    await first.close()

    monkeypatch.delenv("FLOWENGINE_SECRET_HK")  # the stored document no longer validates
    second = await make_client()
    assert (await second.get("/api/workflows/hooked")).status == 404
    # The same document cannot be posted again: it does not validate either.
    status, body = await post(second, document)
    assert status == 400 and "FLOWENGINE_SECRET_HK" in body["error"]
    assert await post(second, {**document, "triggers": []}) == (
        201,
        {"id": "hooked", "version": 2, "message": UPDATED},
    )
    shown = await (await second.get("/api/workflows/hooked")).json()
    assert (shown["version"], shown["triggers"]) == (2, [])
