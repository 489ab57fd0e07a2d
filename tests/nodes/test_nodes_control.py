"""control.if (every operator, both branches) and control.merge, run through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from support.api import execute, link, node, register


def _branching(operator: str, compare: Any = None, *, with_compare: bool = True) -> dict[str, Any]:
    """if -> yes / no (debug.log on each branch) -> merge."""
    config: dict[str, Any] = {"operator": operator}
    if with_compare:
        config["compare"] = compare
    return {
        "name": f"if {operator}",
        "nodes": [
            node("check", "control.if", **config),
            node("yes", "debug.log"),
            node("no", "debug.log"),
            node("join", "control.merge"),
        ],
        "connections": [
            link("check", "true", "yes", "message"),
            link("check", "false", "no", "message"),
            link("yes", "message", "join", "yes"),
            link("no", "message", "join", "no"),
        ],
    }


async def _branch(client, document: dict[str, Any], inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Which branch ran, and the execution response."""
    workflow_id = await register(client, document)
    body = await execute(client, workflow_id, inputs)
    assert body["status"] == "succeeded", body
    (skipped,) = body["skipped_nodes"]
    taken = {"yes": "true", "no": "false"}[{"yes", "no"}.difference([skipped]).pop()]
    return taken, body


CASES = [
    ("equals", 5, 5, "true"),
    ("equals", 5, 5.0, "true"),
    ("equals", "a", "b", "false"),
    ("equals", True, 1, "false"),  # JSON: true is not 1
    ("equals", {"a": [1]}, {"a": [1]}, "true"),
    ("equals", None, None, "true"),
    ("not_equals", 1, 2, "true"),
    ("not_equals", "x", "x", "false"),
    ("gt", 3, 2, "true"),
    ("gt", 2, 2, "false"),
    ("gte", 2, 2, "true"),
    ("gte", 1, 2, "false"),
    ("lt", 1, 2, "true"),
    ("lt", "b", "a", "false"),
    ("lte", 2, 2, "true"),
    ("lte", 3, 2, "false"),
    ("contains", "workflow", "flow", "true"),
    ("contains", "workflow", "xyz", "false"),
    ("contains", [1, "a"], "a", "true"),
    ("contains", [1, "a"], True, "false"),
    ("contains", {"key": 1}, "key", "true"),
    ("matches", "order-1234", r"^order-\d+$", "true"),
    ("matches", "order-x", r"^order-\d+$", "false"),
    ("matches", 404, r"^4\d\d$", "true"),
    ("matches", True, "^true$", "true"),
    ("truthy", "text", None, "true"),
    ("truthy", "", None, "false"),
    ("truthy", 0, None, "false"),
    ("truthy", [], None, "false"),
    ("exists", 0, None, "true"),
    ("exists", None, None, "false"),
]


@pytest.mark.parametrize("operator, value, compare, expected", CASES)
async def test_operator(client, operator, value, compare, expected):
    taken, body = await _branch(client, _branching(operator, compare), {"value": value})
    assert taken == expected
    merged = body["outputs"]["join"]["merged"]
    port = "yes" if expected == "true" else "no"
    assert merged["type"] == "Object" and list(merged["value"]) == [port]


async def test_missing_value_is_null_for_every_operator(client):
    # No input at all: exists is false, and matches does not match the text "None".
    assert (await _branch(client, _branching("exists"), {}))[0] == "false"
    assert (await _branch(client, _branching("matches", "None"), {}))[0] == "false"


async def test_default_operator_is_truthy(client):
    document = _branching("truthy")
    document["nodes"][0] = node("check", "control.if")
    assert (await _branch(client, document, {"value": "x"}))[0] == "true"
    assert (await _branch(client, document, {"value": False}))[0] == "false"


async def test_the_value_goes_out_on_the_chosen_port_unchanged(client):
    workflow_id = await register(client, _branching("exists"))
    body = await execute(client, workflow_id, {"value": {"type": "Bytes", "value": "AAE="}})
    assert body["outputs"]["join"]["merged"]["value"] == {"yes": {"type": "Bytes", "value": "AAE="}}
    assert body["skipped_nodes"] == ["no"]


@pytest.mark.parametrize("operator, value, compare", [("gt", "a", 1), ("lt", True, 2), ("contains", 5, 1)])
async def test_incomparable_values_fail_the_node(client, operator, value, compare):
    workflow_id = await register(client, _branching(operator, compare))
    body = await execute(client, workflow_id, {"value": value}, expect=500)
    assert f"node 'check' (control.if): cannot apply {operator!r}" in body["error"]


async def test_invalid_regex_is_rejected_at_registration(client):
    response = await client.post("/api/workflows", json=_branching("matches", "(unclosed"))
    body = await response.json()
    assert response.status == 400
    assert body["error"].startswith(
        "nodes[0].config: node 'check' (control.if): compare: invalid regular expression: missing )"
    )


async def test_matches_without_a_string_compare_is_rejected(client):
    response = await client.post("/api/workflows", json=_branching("matches", 5))
    assert response.status == 400
    assert "operator 'matches' needs a String 'compare'" in (await response.json())["error"]


async def test_unknown_operator_is_rejected(client):
    response = await client.post("/api/workflows", json=_branching("bigger"))
    assert response.status == 400
    assert (await response.json())["error"] == (
        "nodes[0].config.operator: node 'check' (control.if): 'bigger' is not one of "
        "equals, not_equals, gt, gte, lt, lte, contains, matches, truthy, exists"
    )


async def test_merge_collects_parallel_branches(client):
    workflow_id = await register(
        client,
        {
            "name": "merge",
            "nodes": [
                node("a", "transform.set", v=1),
                node("b", "transform.set", v="two"),
                node("m", "control.merge"),
            ],
            "connections": [link("a", "v", "m", "first"), link("b", "v", "m", "second")],
        },
    )
    body = await execute(client, workflow_id)
    assert body["outputs"]["m"] == {
        "merged": {
            "type": "Object",
            "value": {"first": {"type": "Number", "value": 1}, "second": {"type": "String", "value": "two"}},
        }
    }


async def test_merge_is_skipped_when_nothing_arrives(client):
    workflow_id = await register(
        client,
        {
            "name": "nothing arrives",
            "nodes": [node("check", "control.if", operator="equals", compare="impossible"), node("join", "control.merge")],
            "connections": [link("check", "true", "join", "a")],
        },
    )
    body = await execute(client, workflow_id, {"value": 1})
    assert body["status"] == "succeeded"
    assert body["skipped_nodes"] == ["join"]
    assert body["outputs"] == {}
