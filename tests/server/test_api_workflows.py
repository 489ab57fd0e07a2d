"""The workflow registry over HTTP: every success shape of DESIGN.md section 6."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from support.api import TIMESTAMP, link, node, register, two_node_workflow
from support.paths import example


@pytest.mark.sqlite_only  # on PostgreSQL it also names the store (tests/runtime/test_pgstore.py)
async def test_health_shape(client):
    response = await client.get("/health")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"status": "healthy", "version": "0.1.0", "service": "flowengine"}


async def test_list_is_empty_at_first(client):
    response = await client.get("/api/workflows")
    assert response.status == 200
    assert await response.json() == []


async def test_create_answers_201_with_id_and_message(client):
    response = await client.post("/api/workflows", json=two_node_workflow(id="wf-1"))
    assert response.status == 201
    assert await response.json() == {"id": "wf-1", "version": 1, "message": "Workflow created successfully"}
    assert response.headers["Location"] == "/api/workflows/wf-1"


async def test_missing_id_gets_a_uuid4(client):
    response = await client.post("/api/workflows", json=two_node_workflow())
    assert response.status == 201
    made = (await response.json())["id"]
    assert uuid.UUID(made).version == 4
    assert (await client.get(f"/api/workflows/{made}")).status == 200


async def test_null_id_counts_as_missing(client):
    response = await client.post("/api/workflows", json=two_node_workflow(id=None))
    assert response.status == 201
    assert uuid.UUID((await response.json())["id"]).version == 4


async def test_list_shows_counts(client):
    await register(client, two_node_workflow(id="wf-1", description="first"))
    await register(client, {"id": "wf-2", "name": "Empty"})
    response = await client.get("/api/workflows")
    assert response.status == 200
    listed = {item["id"]: item for item in await response.json()}
    assert set(listed) == {"wf-1", "wf-2"}
    for item in listed.values():
        assert {"id", "name", "description", "nodes", "connections"} <= set(item)
    first = listed["wf-1"]
    assert (first["name"], first["description"], first["nodes"], first["connections"]) == ("greet", "first", 2, 1)
    second = listed["wf-2"]
    assert (second["name"], second["description"], second["nodes"], second["connections"]) == ("Empty", None, 0, 0)


async def test_get_returns_the_document_with_defaults(client):
    sent = {
        "id": "wf-1",
        "name": "Defaults",
        "nodes": [{"id": "a", "node_type": "debug.log"}],
        "unknown_field": "ignored",
    }
    await register(client, sent)
    response = await client.get("/api/workflows/wf-1")
    assert response.status == 200
    document = await response.json()
    created, updated = document.pop("created_at"), document.pop("updated_at")
    assert TIMESTAMP.fullmatch(created) and created == updated
    assert document == {
        "id": "wf-1",
        "name": "Defaults",
        "description": None,
        "nodes": [
            {
                "id": "a",
                "node_type": "debug.log",
                "name": "a",
                "config": {},
                "position": None,
                "retry_policy": None,
                "timeout_ms": None,
            }
        ],
        "connections": [],
        "triggers": [],
        "settings": {"max_execution_time_ms": None, "max_parallel_nodes": 10, "on_error": "StopWorkflow"},
        "version": 1,
    }


async def test_get_returns_what_was_registered(client):
    sent = {
        "id": "wf-full",
        "name": "Full",
        "description": "every field set",
        "nodes": [
            {
                "id": "fetch",
                "node_type": "http.request",
                "name": "Fetch",
                "config": {
                    "url": {"type": "String", "value": "http://127.0.0.1:1/"},
                    "method": {"type": "String", "value": "POST"},
                    "timeout_ms": {"type": "Number", "value": 500},
                },
                "position": {"x": 100, "y": 200},
                "retry_policy": {
                    "max_attempts": 2,
                    "delay_ms": 10,
                    "backoff_multiplier": 1.5,
                    "max_delay_ms": 100,
                    "retry_on_timeout": False,
                },
                "timeout_ms": 5000,
            },
            {"id": "log", "node_type": "debug.log", "name": "Log", "config": {}, "position": None,
             "retry_policy": None, "timeout_ms": None},
        ],
        "connections": [link("fetch", "body", "log", "message")],
        "triggers": [{"id": "t1", "enabled": False, "trigger_type": {"type": "Manual"}}],
        "settings": {"max_execution_time_ms": 60000, "max_parallel_nodes": 2,
                     "on_error": {"RetryWorkflow": {"max_attempts": 3}}},
    }
    await register(client, sent)
    document = await (await client.get("/api/workflows/wf-full")).json()
    for key in ("created_at", "updated_at", "version"):
        document.pop(key)
    assert document == sent


async def test_put_replaces_and_bumps_version(client):
    await register(client, two_node_workflow(id="wf-1"))
    before = await (await client.get("/api/workflows/wf-1")).json()

    response = await client.put("/api/workflows/wf-1", json={"name": "Renamed", "nodes": [node("only", "debug.log")]})
    assert response.status == 200
    assert await response.json() == {"id": "wf-1", "version": 2, "message": "Workflow updated successfully"}

    after = await (await client.get("/api/workflows/wf-1")).json()
    assert after["name"] == "Renamed"
    assert [n["id"] for n in after["nodes"]] == ["only"]
    assert after["connections"] == []
    assert after["version"] == 2
    assert after["created_at"] == before["created_at"]
    assert TIMESTAMP.fullmatch(after["updated_at"]) and after["updated_at"] >= before["updated_at"]

    response = await client.put("/api/workflows/wf-1", json={"id": "wf-1", "name": "Third"})
    assert await response.json() == {"id": "wf-1", "version": 3, "message": "Workflow updated successfully"}
    listed = await (await client.get("/api/workflows")).json()
    assert [(item["id"], item["name"]) for item in listed] == [("wf-1", "Third")]


async def test_put_unknown_workflow_is_404(client):
    response = await client.put("/api/workflows/nope", json={"name": "x"})
    assert response.status == 404
    assert await response.json() == {"error": "Workflow nope not found"}
    assert (await client.get("/api/workflows/nope")).status == 404


async def test_put_with_another_id_in_the_body_is_400(client):
    await register(client, two_node_workflow(id="wf-1"))
    response = await client.put("/api/workflows/wf-1", json={"id": "wf-2", "name": "x"})
    assert response.status == 400
    assert "id" in (await response.json())["error"]
    assert (await client.get("/api/workflows/wf-2")).status == 404
    assert (await (await client.get("/api/workflows/wf-1")).json())["version"] == 1


async def test_delete(client):
    await register(client, two_node_workflow(id="wf-1"))
    response = await client.delete("/api/workflows/wf-1")
    assert response.status == 200
    assert await response.json() == {"message": "Workflow deleted successfully"}
    response = await client.get("/api/workflows/wf-1")
    assert response.status == 404
    assert await response.json() == {"error": "Workflow wf-1 not found"}
    assert await (await client.get("/api/workflows")).json() == []
    # The id is free again.
    await register(client, two_node_workflow(id="wf-1"))


async def test_delete_unknown_is_404(client):
    response = await client.delete("/api/workflows/nope")
    assert response.status == 404
    assert await response.json() == {"error": "Workflow nope not found"}


async def test_get_unknown_is_404(client):
    response = await client.get("/api/workflows/550e8400-e29b-41d4-a716-446655440000")
    assert response.status == 404
    assert await response.json() == {"error": "Workflow 550e8400-e29b-41d4-a716-446655440000 not found"}


async def test_create_only_duplicate_id_is_412_and_keeps_the_first(client):
    await register(client, two_node_workflow(id="wf-1", name="First"))
    response = await client.post("/api/workflows", json=two_node_workflow(id="wf-1", name="Second"), headers={"If-None-Match": "*"})
    assert response.status == 412
    assert "wf-1" in (await response.json())["error"]
    document = await (await client.get("/api/workflows/wf-1")).json()
    assert (document["name"], document["version"]) == ("First", 1)


async def test_rejected_post_leaves_nothing_behind(client):
    bad = two_node_workflow(id="wf-bad")
    bad["connections"].append(link("b", "message", "missing", "message"))
    response = await client.post("/api/workflows", json=bad)
    assert response.status == 400
    assert (await client.get("/api/workflows/wf-bad")).status == 404
    assert await (await client.get("/api/workflows")).json() == []
    # The id was not taken by the rejected attempt.
    await register(client, two_node_workflow(id="wf-bad"))


async def test_rejected_put_keeps_the_previous_version(client):
    await register(client, two_node_workflow(id="wf-1"))
    before = await (await client.get("/api/workflows/wf-1")).json()
    response = await client.put("/api/workflows/wf-1", json={"name": "x", "nodes": [node("a", "no.such.type")]})
    assert response.status == 400
    assert await (await client.get("/api/workflows/wf-1")).json() == before
    # The failed attempt did not use up a version number either.
    response = await client.put("/api/workflows/wf-1", json=two_node_workflow())
    assert (await response.json())["version"] == 2


async def test_uuid_and_plain_node_ids(client):
    first, second = str(uuid.uuid4()), "node-1"
    workflow_id = await register(
        client,
        {
            "name": "ids",
            "nodes": [node(first, "transform.set", greeting="hi"), node(second, "debug.log")],
            "connections": [link(first, "greeting", second, "message")],
        },
    )
    document = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert [n["id"] for n in document["nodes"]] == [first, second]
    assert document["connections"][0]["from_node"] == first


async def test_null_optional_fields_are_accepted(client):
    await register(
        client,
        {
            "id": "wf-null",
            "name": "nulls",
            "description": None,
            "nodes": [
                {"id": "a", "node_type": "debug.log", "name": None, "config": None, "position": None,
                 "retry_policy": None, "timeout_ms": None}
            ],
            "connections": None,
            "triggers": None,
            "settings": {"max_execution_time_ms": None, "max_parallel_nodes": None, "on_error": None},
        },
    )
    document = await (await client.get("/api/workflows/wf-null")).json()
    assert document["description"] is None
    assert document["nodes"][0]["retry_policy"] is None
    assert document["nodes"][0]["name"] == "a"
    assert document["settings"] == {"max_execution_time_ms": None, "max_parallel_nodes": 10, "on_error": "StopWorkflow"}


async def test_retry_policy_fields_left_out_get_defaults(client):
    await register(
        client,
        {"id": "wf-r", "name": "r", "nodes": [{"id": "a", "node_type": "debug.log", "retry_policy": {"max_attempts": 5}}]},
    )
    document = await (await client.get("/api/workflows/wf-r")).json()
    assert document["nodes"][0]["retry_policy"] == {
        "max_attempts": 5,
        "delay_ms": 1000,
        "backoff_multiplier": 2.0,
        "max_delay_ms": 60000,
        "retry_on_timeout": True,
    }


async def test_typed_values_round_trip(client):
    config = {
        "values": {
            "type": "Object",
            "value": {
                "n": {"type": "Null"},
                "b": {"type": "Bool", "value": True},
                "x": {"type": "Number", "value": 1.5},
                "s": {"type": "String", "value": "text"},
                "raw": {"type": "Bytes", "value": "aGVsbG8="},
                "j": {"type": "Json", "value": {"deep": [1, None, "two"]}},
                "a": {"type": "Array", "value": [{"type": "Number", "value": 1}]},
            },
        }
    }
    await register(client, {"id": "wf-v", "name": "v", "nodes": [{"id": "a", "node_type": "transform.set", "config": config}]})
    document = await (await client.get("/api/workflows/wf-v")).json()
    assert document["nodes"][0]["config"] == config


async def test_list_nodes_is_sorted_and_described(client):
    response = await client.get("/api/nodes")
    assert response.status == 200
    described = await response.json()
    types = [item["type"] for item in described]
    assert types == sorted(types)
    assert {"http.request", "debug.log"} <= set(types)
    for item in described:
        assert isinstance(item["description"], str) and item["description"]
        assert isinstance(item["category"], str) and item["category"]
    http = next(item for item in described if item["type"] == "http.request")
    assert "url" in [port["name"] for port in http["inputs"]]
    assert "body" in [port["name"] for port in http["outputs"]]


async def test_github_zen_example_registers(client):
    document = example("github_zen.json")
    response = await client.post("/api/workflows", json=document)
    assert response.status == 201, await response.text()
    workflow_id = (await response.json())["id"]
    stored = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert [n["node_type"] for n in stored["nodes"]] == ["http.request", "debug.log"]
    assert stored["nodes"][0]["config"]["url"] == {"type": "String", "value": "https://api.github.com/zen"}
    assert stored["connections"] == [link("fetch-zen", "body", "log-zen", "message")]


async def test_concurrent_posts_with_one_id_register_it_once(client):
    responses = await asyncio.gather(
        *(
            client.post("/api/workflows", json=two_node_workflow(id="race", name=f"n{i}"), headers={"If-None-Match": "*"})
            for i in range(6)
        )
    )
    assert sorted(response.status for response in responses) == [201] + [412] * 5
    listed = await (await client.get("/api/workflows")).json()
    assert [item["id"] for item in listed] == ["race"]


async def test_concurrent_puts_each_get_their_own_version(client):
    await register(client, two_node_workflow(id="wf-1"))
    responses = await asyncio.gather(
        *(client.put("/api/workflows/wf-1", json=two_node_workflow(name=f"n{i}")) for i in range(5))
    )
    versions = sorted([(await response.json())["version"] for response in responses])
    assert versions == [2, 3, 4, 5, 6]
    assert (await (await client.get("/api/workflows/wf-1")).json())["version"] == 6
