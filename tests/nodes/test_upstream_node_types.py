"""Upstream node types flowengine does not provide are refused at registration saying what they
are, what they need and where the README lists them, not with a generic "unknown node type"."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.api import node
from flowengine.nodes import registry

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("node_type", "needs"),
    [
        ("docker.run", "needs a Docker daemon"),
        ("zypi.exec", "needs the Zypi service"),
        ("api.call", "needs the Zypi service"),
        ("browser.render", "needs a browser and the Zypi service"),
    ],
)
async def test_upstream_only_types_are_refused_with_what_they_need(client, node_type, needs):
    document = {"name": "upstream", "nodes": [node("first", "debug.log"), node("step", node_type, image="alpine")]}
    response = await client.post("/api/workflows", json=document)
    body = await response.json()
    assert response.status == 400, body
    assert body["error"].startswith(f"nodes[1].node_type: node type {node_type!r} ")
    assert needs in body["error"]
    assert "flowengine does not provide it (README: 'Upstream node types flowengine does not provide')" in body["error"]
    assert "unknown node type" not in body["error"]


async def test_other_unknown_types_keep_the_generic_message(client):
    response = await client.post("/api/workflows", json={"name": "x", "nodes": [node("a", "nope.nothing")]})
    body = await response.json()
    assert response.status == 400
    assert body["error"].startswith("nodes[0].node_type: unknown node type 'nope.nothing' (known: ")


def test_the_readme_lists_every_upstream_only_type_under_the_heading_the_message_names():
    text = README.read_text(encoding="utf-8")
    heading = "### Upstream node types flowengine does not provide"
    assert heading in text
    section = text.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    for name in registry.UPSTREAM_ONLY:
        assert f"`{name}`" in section, name


def test_a_plugin_may_provide_an_upstream_only_type():
    from flowengine.nodes.api import NodeType

    registered = registry.NodeRegistry()
    registered.register(NodeType(type="docker.run", description="mine", category="docker", run=lambda ctx: {}))
    assert registered.require("docker.run", "nodes[0].node_type").description == "mine"
