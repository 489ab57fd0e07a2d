"""transform.json_parse, json_stringify, template, get and set, run through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from support.api import link, node, run


async def _run(client, nodes, connections=(), inputs=None, expect: int = 200) -> dict[str, Any]:
    return await run(client, {"name": "t", "nodes": list(nodes), "connections": list(connections)}, inputs, expect)


async def _rejected(client, nodes, connections=()) -> str:
    response = await client.post("/api/workflows", json={"name": "t", "nodes": nodes, "connections": list(connections)})
    body = await response.json()
    assert response.status == 400, body
    return body["error"]


def _typed_node(node_id: str, node_type: str, **config: dict[str, Any]) -> dict[str, Any]:
    """A node whose config is given already typed (node() would wrap these dicts as Json)."""
    return {"id": node_id, "node_type": node_type, "config": config}


# -- json_parse / json_stringify ------------------------------------------------------------


async def test_json_parse_gives_json(client):
    body = await _run(client, [node("p", "transform.json_parse")], inputs={"json": '{"items": [1, "two", null]}'})
    assert body["outputs"]["p"] == {"parsed": {"type": "Json", "value": {"items": [1, "two", None]}}}


async def test_json_parse_of_invalid_text_fails_the_node(client):
    body = await _run(client, [node("p", "transform.json_parse")], inputs={"json": "{nope"}, expect=500)
    assert "node 'p' (transform.json_parse): input 'json' is not valid JSON: Expecting property name" in body["error"]


async def test_json_parse_of_a_number_fails_the_node(client):
    body = await _run(client, [node("p", "transform.json_parse")], inputs={"json": 5}, expect=500)
    assert "input 'json' must be a String, got Number" in body["error"]


async def test_json_parse_without_input_fails_naming_it(client):
    body = await _run(client, [node("p", "transform.json_parse")], expect=500)
    assert "missing required input 'json'" in body["error"]


async def test_json_stringify_compact_and_pretty(client):
    value = {"b": [1, 2], "a": "é"}
    body = await _run(
        client,
        [node("compact", "transform.json_stringify"), node("pretty", "transform.json_stringify", pretty=True)],
        inputs={"value": value},
    )
    assert body["outputs"]["compact"]["json"] == {"type": "String", "value": '{"b": [1, 2], "a": "é"}'}
    assert body["outputs"]["pretty"]["json"]["value"] == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "é"\n}'


async def test_json_stringify_unwraps_typed_objects(client):
    body = await _run(
        client,
        [_typed_node("s", "transform.set", thing={"type": "Object", "value": {"n": {"type": "Number", "value": 1}}}),
         node("j", "transform.json_stringify")],
        [link("s", "thing", "j", "value")],
    )
    assert body["outputs"]["j"]["json"]["value"] == '{"n": 1}'


async def test_json_stringify_of_bytes_fails_the_node(client):
    body = await _run(
        client, [node("j", "transform.json_stringify")], inputs={"value": {"type": "Bytes", "value": "AAE="}}, expect=500
    )
    assert "input 'value' cannot be written as JSON" in body["error"]


async def test_json_parse_then_stringify_round_trips(client):
    body = await _run(
        client,
        [node("p", "transform.json_parse"), node("j", "transform.json_stringify")],
        [link("p", "parsed", "j", "value")],
        inputs={"json": '{"k": [true, 1.5]}'},
    )
    assert body["outputs"]["j"]["json"]["value"] == '{"k": [true, 1.5]}'


# -- template -------------------------------------------------------------------------------


async def test_template_fills_placeholders_from_connected_inputs(client):
    body = await _run(
        client,
        [
            node("s", "transform.set", who="world", n=3, tags=["a"]),
            node("t", "transform.template", template="Hello ${who}, ${n} times $$5 ${tags}"),
        ],
        [link("s", "who", "t", "who"), link("s", "n", "t", "n"), link("s", "tags", "t", "tags")],
    )
    assert body["outputs"]["t"] == {"text": {"type": "String", "value": 'Hello world, 3 times $5 ["a"]'}}


async def test_template_as_root_takes_execution_inputs(client):
    body = await _run(client, [node("t", "transform.template", template="id=${id}")], inputs={"id": "x1", "other": 1})
    assert body["outputs"]["t"]["text"]["value"] == "id=x1"


async def test_template_missing_placeholder_fails_naming_it(client):
    body = await _run(
        client, [node("t", "transform.template", template="${a} and ${b}")], inputs={"a": "x"}, expect=500
    )
    assert "template placeholder 'b' has no value" in body["error"]


async def test_template_placeholder_can_fall_back_to_config(client):
    body = await _run(client, [node("t", "transform.template", template="${greeting}!", greeting="hi")])
    assert body["outputs"]["t"]["text"]["value"] == "hi!"


async def test_template_rejects_connections_to_a_port_without_placeholder(client):
    error = await _rejected(
        client,
        [node("s", "transform.set", x=1), node("t", "transform.template", template="${a}")],
        [link("s", "x", "t", "b")],
    )
    assert error == "connections[0].to_port: node 't' (transform.template) has no input port 'b' (known: a)"


async def test_template_with_invalid_syntax_is_rejected(client):
    error = await _rejected(client, [node("t", "transform.template", template="cost: $5")])
    assert error.startswith("nodes[0].config: node 't' (transform.template): template: invalid placeholder")


async def test_template_is_required(client):
    error = await _rejected(client, [node("t", "transform.template")])
    assert error == "nodes[0].config.template: node 't' (transform.template) requires it"


# -- get ------------------------------------------------------------------------------------

_DATA = {"items": [{"name": "first", "tags": ["x", "y"]}, {"name": "second"}], "count": 2}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("items[0].name", {"type": "String", "value": "first"}),
        ("items[1]", {"type": "Json", "value": {"name": "second"}}),
        ("items[-1].name", {"type": "String", "value": "second"}),
        ("items[0].tags[1]", {"type": "String", "value": "y"}),
        ("count", {"type": "Number", "value": 2}),
    ],
)
async def test_get_follows_the_path(client, path, expected):
    body = await _run(client, [node("g", "transform.get", path=path)], inputs={"value": _DATA})
    assert body["outputs"]["g"] == {"value": expected}


async def test_get_on_a_top_level_array(client):
    body = await _run(client, [node("g", "transform.get", path="[1].name")], inputs={"value": _DATA["items"]})
    assert body["outputs"]["g"]["value"]["value"] == "second"


@pytest.mark.parametrize(
    "path, missing",
    [
        ("items[5].name", "items[5]"),
        ("items[0].title", "items[0].title"),
        ("nothing", "nothing"),
        ("count.more", "count.more"),
        ("items[0].name[0]", "items[0].name[0]"),  # strings are not indexed into
        ("items.name", "items.name"),
    ],
)
async def test_get_missing_path_fails_naming_where(client, path, missing):
    body = await _run(client, [node("g", "transform.get", path=path)], inputs={"value": _DATA}, expect=500)
    assert f"path {path!r}: nothing at {missing!r}" in body["error"]


async def test_get_missing_path_with_default_outputs_the_default(client):
    body = await _run(
        client,
        [node("g", "transform.get", path="items[9].name", default="n/a"),
         node("z", "transform.get", path="nope", default=None)],
        inputs={"value": _DATA},
    )
    assert body["outputs"]["g"] == {"value": {"type": "String", "value": "n/a"}}
    assert body["outputs"]["z"] == {"value": {"type": "Null"}}


async def test_get_works_on_typed_objects(client):
    body = await _run(
        client,
        [
            _typed_node(
                "s",
                "transform.set",
                rec={"type": "Object", "value": {"a": {"type": "Array", "value": [{"type": "Number", "value": 7}]}}},
            ),
            node("g", "transform.get", path="a[0]"),
        ],
        [link("s", "rec", "g", "value")],
    )
    assert body["outputs"]["g"]["value"] == {"type": "Number", "value": 7}


@pytest.mark.parametrize("path", ["", ".a", "a..b", "a[x]", "a[0"])
async def test_get_invalid_path_is_rejected_at_registration(client, path):
    error = await _rejected(client, [node("g", "transform.get", path=path)])
    assert error.startswith("nodes[0].config: node 'g' (transform.get): path")


async def test_get_path_is_required(client):
    error = await _rejected(client, [node("g", "transform.get")])
    assert error == "nodes[0].config.path: node 'g' (transform.get) requires it"


# -- set ------------------------------------------------------------------------------------


async def test_set_outputs_each_config_entry_as_a_port(client):
    body = await _run(
        client,
        [node("s", "transform.set", text="hi", n=1.5, flag=False, obj={"k": 1}, nothing=None)],
    )
    assert body["outputs"]["s"] == {
        "text": {"type": "String", "value": "hi"},
        "n": {"type": "Number", "value": 1.5},
        "flag": {"type": "Bool", "value": False},
        "obj": {"type": "Json", "value": {"k": 1}},
        "nothing": {"type": "Null"},
    }


async def test_set_ports_feed_other_nodes(client):
    body = await _run(
        client,
        [node("s", "transform.set", a="x", b="y"), node("t", "transform.template", template="${a}${b}")],
        [link("s", "a", "t", "a"), link("s", "b", "t", "b")],
    )
    assert body["outputs"]["t"]["text"]["value"] == "xy"


async def test_set_rejects_connections_from_a_port_it_does_not_have(client):
    error = await _rejected(
        client,
        [node("s", "transform.set", a="x"), node("d", "debug.log")],
        [link("s", "b", "d", "message")],
    )
    assert error == "connections[0].from_port: node 's' (transform.set) has no output port 'b' (known: a)"
