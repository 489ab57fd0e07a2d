"""A deleted workflow's executions can still draw their graph: the versions they ran are kept
(until those executions are pruned or deleted), served by ``GET /api/workflows/{id}?version=N``,
and an id created again continues the version numbers."""

from __future__ import annotations

import dataclasses

import pytest

from flowengine.server.app import make_app
from flowengine.server.keys import CATALOG

from support.api import execute, link, node, register


def _document(name: str, *node_ids: str) -> dict:
    nodes = [node(node_ids[0], "transform.set", message=name)] + [node(n, "debug.log") for n in node_ids[1:]]
    connections = [link(a, "message", b, "message") for a, b in zip(node_ids, node_ids[1:])]
    return {"id": "wf", "name": name, "nodes": nodes, "connections": connections}


async def _version(client, version: int, workflow_id: str = "wf"):
    response = await client.get(f"/api/workflows/{workflow_id}?version={version}")
    return response.status, await response.json()


async def _versions(client, workflow_id: str = "wf") -> list[int] | None:
    response = await client.get(f"/api/workflows/{workflow_id}/versions")
    if response.status == 404:
        return None
    return [entry["version"] for entry in await response.json()]


async def _deleted_with_history(client) -> dict[int, str]:
    """wf v1 and v2 each ran once, v3 never; then wf is deleted. Execution ids by version."""
    await register(client, _document("one", "a", "b"))
    ran = {1: (await execute(client, "wf"))["execution_id"]}
    assert (await client.put("/api/workflows/wf", json=_document("two", "a", "c", "d"))).status == 200
    ran[2] = (await execute(client, "wf"))["execution_id"]
    assert (await client.put("/api/workflows/wf", json=_document("three", "z"))).status == 200
    assert (await client.delete("/api/workflows/wf")).status == 200
    return ran


async def test_the_versions_executions_ran_are_served_after_the_delete(client):
    ran = await _deleted_with_history(client)
    for version, execution_id in ran.items():
        record = await (await client.get(f"/api/executions/{execution_id}")).json()
        assert record["workflow_version"] == version
        status, document = await _version(client, version)
        assert status == 200 and document["version"] == version
        # Enough to draw the graph the execution ran.
        expected = _document("one" if version == 1 else "two", *("a", "b") if version == 1 else ("a", "c", "d"))
        assert [n["id"] for n in document["nodes"]] == [n["id"] for n in expected["nodes"]]
        assert [(c["from_node"], c["to_node"]) for c in document["connections"]] == [
            (c["from_node"], c["to_node"]) for c in expected["connections"]
        ]
    # The workflow itself is gone: 404, not listed, cannot run.
    assert (await client.get("/api/workflows/wf")).status == 404
    assert [w["id"] for w in await (await client.get("/api/workflows")).json()] == []
    assert (await client.post("/api/workflows/wf/execute")).status == 404
    # The latest version is kept too while executions of the id remain (it holds the numbering).
    assert await _versions(client) == [1, 2, 3]
    listed = await (await client.get("/api/workflows/wf/versions")).json()
    assert not any(entry["current"] for entry in listed)


async def test_an_id_created_again_continues_the_version_numbers(client):
    ran = await _deleted_with_history(client)
    response = await client.post("/api/workflows", json=_document("reborn", "x", "y"))
    assert response.status == 201
    assert (await response.json())["version"] == 4
    assert (await (await client.get("/api/workflows/wf")).json())["version"] == 4
    # The old versions still answer with their own documents, the new one with its own.
    assert (await _version(client, 1))[1]["name"] == "one"
    assert (await _version(client, 2))[1]["name"] == "two"
    assert (await _version(client, 4))[1]["name"] == "reborn"
    assert await _versions(client) == [1, 2, 3, 4]
    assert (await client.put("/api/workflows/wf", json=_document("again", "x"))).status == 200
    assert (await (await client.get("/api/workflows/wf")).json())["version"] == 5
    # The old execution still reads its own nodes, not the new workflow's.
    record = await (await client.get(f"/api/executions/{ran[2]}")).json()
    assert [entry["node_id"] for entry in record["nodes"]] == ["a", "c", "d"]


async def test_deleting_the_executions_lets_their_versions_go(client):
    ran = await _deleted_with_history(client)
    assert (await client.delete(f"/api/executions/{ran[1]}")).status == 200
    assert (await _version(client, 1))[0] == 404
    assert await _versions(client) == [2, 3]
    assert (await client.delete(f"/api/executions/{ran[2]}")).status == 200
    assert (await _version(client, 2))[0] == 404
    assert await _versions(client) is None
    # Nothing of the old id is left, so a new one starts at 1 again.
    response = await client.post("/api/workflows", json=_document("fresh", "q"))
    assert (await response.json())["version"] == 1


async def test_a_workflow_deleted_without_executions_leaves_nothing(client):
    await register(client, _document("one", "a"))
    assert (await client.delete("/api/workflows/wf")).status == 200
    assert await _versions(client) is None
    assert (await (await client.post("/api/workflows", json=_document("two", "b"))).json())["version"] == 1


async def _run_other(client, times: int) -> None:
    await register(client, {"id": "other", "name": "other", "nodes": [node("s", "transform.set", x=1)]})
    for _ in range(times):
        await execute(client, "other")


async def test_pruning_the_executions_lets_their_versions_go(make_client):
    client = await make_client(max_executions=3)
    await _deleted_with_history(client)
    assert await _versions(client) == [1, 2, 3]
    await _run_other(client, 4)  # pushes both executions of wf out of the history
    assert await _versions(client) is None
    assert await _versions(client, "other") == [1]


async def test_versions_kept_across_a_restart_are_still_pruned(aiohttp_client, config):
    config = dataclasses.replace(config, max_executions=3)
    first = await aiohttp_client(make_app(config))
    ran = await _deleted_with_history(first)
    await first.close()
    second = await aiohttp_client(make_app(dataclasses.replace(config)))
    assert (await _version(second, 2))[0] == 200
    record = await (await second.get(f"/api/executions/{ran[1]}")).json()
    assert [entry["node_id"] for entry in record["nodes"]] == ["a", "b"]
    await _run_other(second, 4)
    assert await _versions(second) is None


async def test_a_failed_creation_keeps_the_versions_an_earlier_workflow_left(client):
    await _deleted_with_history(client)

    def broken_listener(workflow_id, workflow):
        if workflow is not None:
            raise RuntimeError("listener bug")

    client.app[CATALOG].listeners.append(broken_listener)
    response = await client.post("/api/workflows", json=_document("doomed", "d"))
    assert response.status == 500
    client.app[CATALOG].listeners.remove(broken_listener)
    assert (await client.get("/api/workflows/wf")).status == 404
    assert await _versions(client) == [1, 2, 3]
    assert (await _version(client, 2))[1]["name"] == "two"
    response = await client.post("/api/workflows", json=_document("recovered", "r"))
    assert (await response.json())["version"] == 4


@pytest.mark.parametrize("version", [0, 99])
async def test_a_version_never_stored_is_still_a_404_or_400(client, version):
    await _deleted_with_history(client)
    response = await client.get(f"/api/workflows/wf?version={version}")
    assert response.status == (400 if version == 0 else 404)
