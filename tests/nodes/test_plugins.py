"""Third-party node types: from FLOWENGINE_PLUGINS modules and `flowengine.nodes` entry points."""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from flowengine.config import Config
from flowengine.nodes import PluginError
from flowengine.server.app import make_app

from support.api import execute, link, node, register
from support.paths import EXAMPLES

EXAMPLE_PLUGIN = EXAMPLES / "plugin"


async def test_plugin_module_node_type_is_listed_and_runs(make_client):
    client = await make_client(plugins=("support.plugin_fixture",))
    listed = {n["type"]: n for n in await (await client.get("/api/nodes")).json()}
    assert listed["fixture.repeat"]["category"] == "fixture"
    assert [k["name"] for k in listed["fixture.repeat"]["config"]] == ["times", "separator"]

    workflow_id = await register(
        client,
        {
            "name": "plugin",
            "nodes": [node("rep", "fixture.repeat", times=3, separator="-"), node("log", "debug.log")],
            "connections": [link("rep", "text", "log", "message")],
        },
    )
    async with client.ws_connect(f"/api/events?workflow_id={workflow_id}&types=NodeEvent") as ws:
        body = await execute(client, workflow_id, {"text": "ab"})
        event = await ws.receive_json(timeout=5)
    assert body["outputs"]["log"] == {"message": {"type": "String", "value": "ab-ab-ab"}}
    assert event["node_id"] == "rep" and event["event"] == {"event_type": "Info", "message": "repeating 3 times"}


async def test_plugin_node_failures_and_config_checks(make_client):
    client = await make_client(plugins=("support.plugin_fixture",))
    workflow_id = await register(client, {"name": "p", "nodes": [node("rep", "fixture.repeat", times=-1)]})
    body = await execute(client, workflow_id, {"text": "x"}, expect=500)
    assert body["error"] == "Node execution failed: node 'rep' (fixture.repeat): times must not be negative, got -1"

    response = await client.post(
        "/api/workflows", json={"name": "p", "nodes": [node("rep", "fixture.repeat", separator="/")]}
    )
    assert response.status == 400
    assert (await response.json())["error"] == (
        "nodes[0].config.separator: node 'rep' (fixture.repeat): '/' is not one of ,  , -"
    )


async def test_without_the_plugin_its_type_is_unknown(client):
    response = await client.post("/api/workflows", json={"name": "p", "nodes": [node("rep", "fixture.repeat")]})
    assert response.status == 400
    assert "unknown node type 'fixture.repeat'" in (await response.json())["error"]


def test_a_plugin_that_cannot_be_imported_stops_start_up(tmp_path):
    with pytest.raises(PluginError, match="plugin module 'no_such_plugin_xyz' cannot be imported"):
        make_app(Config(db=str(tmp_path / "x.db"), plugins=("no_such_plugin_xyz",)))


def test_a_plugin_that_crashes_on_import_stops_start_up(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_xyz.py").write_text("raise RuntimeError('half-written plugin')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="'broken_plugin_xyz' cannot be imported: RuntimeError: half-written plugin"):
        make_app(Config(db=str(tmp_path / "x.db"), plugins=("broken_plugin_xyz",)))
    sys.modules.pop("broken_plugin_xyz", None)


def test_a_plugin_reusing_a_builtin_name_stops_start_up(tmp_path, monkeypatch):
    (tmp_path / "clash_plugin_xyz.py").write_text(
        "from flowengine.nodes import NodeType\n"
        "NODE_TYPES = [NodeType(type='debug.log', description='d', category='c', run=lambda ctx: {})]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin module 'clash_plugin_xyz': node type 'debug.log' is already registered"):
        make_app(Config(db=str(tmp_path / "x.db"), plugins=("clash_plugin_xyz",)))
    sys.modules.pop("clash_plugin_xyz", None)


def test_a_plugin_cannot_bring_back_the_disabled_shell(tmp_path, monkeypatch):
    (tmp_path / "shell_plugin_xyz.py").write_text(
        "from flowengine.nodes import NodeType\n"
        "NODE_TYPES = [NodeType(type='shell.exec', description='d', category='c', run=lambda ctx: {})]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="'shell.exec' is a built-in that is switched off"):
        make_app(Config(db=str(tmp_path / "x.db"), plugins=("shell_plugin_xyz",)))
    sys.modules.pop("shell_plugin_xyz", None)


@pytest.mark.parametrize(
    "declaration, message",
    [
        ("NodeType(type='bad name', description='d', category='c', run=lambda ctx: {})", "must look like"),
        (
            "NodeType(type='a.b', description='d', category='c', run=lambda ctx: {}, inputs=(Port('x', type='Text'),))",
            "input port 'x' has unknown type 'Text'",
        ),
        (
            "NodeType(type='a.b', description='d', category='c', run=lambda ctx: {},"
            " config=(ConfigKey('m', 'String', 'z', choices=('x', 'y')),))",
            "config key 'm' default 'z' is not one of its choices",
        ),
    ],
)
def test_bad_declarations_are_reported_when_the_plugin_loads(tmp_path, monkeypatch, declaration, message):
    (tmp_path / "decl_plugin_xyz.py").write_text(
        f"from flowengine.nodes import ConfigKey, NodeType, Port\nNODE_TYPES = [{declaration}]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(PluginError, match=message):
            make_app(Config(db=str(tmp_path / "x.db"), plugins=("decl_plugin_xyz",)))
    finally:
        sys.modules.pop("decl_plugin_xyz", None)


async def test_a_callable_object_with_async_call_is_awaited(make_client, tmp_path, monkeypatch):
    (tmp_path / "callable_plugin_xyz.py").write_text(
        "import asyncio\n"
        "from flowengine.nodes import NodeType, Port\n"
        "class Shout:\n"
        "    async def __call__(self, ctx):\n"
        "        await asyncio.sleep(0)\n"
        "        return {'text': ctx.require('text').upper()}\n"
        "NODE_TYPES = [NodeType(type='callable.shout', description='d', category='c', run=Shout(),\n"
        "                       inputs=(Port('text'),), outputs=(Port('text'),))]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        client = await make_client(plugins=("callable_plugin_xyz",))
        workflow_id = await register(client, {"name": "c", "nodes": [node("s", "callable.shout")]})
        body = await execute(client, workflow_id, {"text": "hey"})
    finally:
        sys.modules.pop("callable_plugin_xyz", None)
    assert body["outputs"]["s"]["text"] == {"type": "String", "value": "HEY"}


def _install_entry_point(site: Path, name: str, value: str) -> None:
    """What `pip install` leaves behind that importlib.metadata reads: a dist-info directory."""
    dist_info = site / f"{name}-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[flowengine.nodes]\n{name} = {value}\n")


async def test_entry_point_plugin_is_loaded(make_client, tmp_path, monkeypatch):
    _install_entry_point(tmp_path, "fixture_plugin", "support.plugin_fixture:REPEAT")
    monkeypatch.syspath_prepend(str(tmp_path))
    client = await make_client()
    workflow_id = await register(client, {"name": "ep", "nodes": [node("rep", "fixture.repeat")]})
    body = await execute(client, workflow_id, {"text": "ha"})
    assert body["outputs"]["rep"]["text"] == {"type": "String", "value": "haha"}
    assert body["outputs"]["rep"]["length"] == {"type": "Number", "value": 4}


def test_broken_entry_point_stops_start_up_naming_it(tmp_path, monkeypatch):
    _install_entry_point(tmp_path, "broken_ep", "no_such_module_xyz:THING")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin entry point 'broken_ep'"):
        make_app(Config(db=str(tmp_path / "x.db")))


# -- examples/plugin ------------------------------------------------------------------------


@pytest.fixture
def example_plugin_path(tmp_path, monkeypatch):
    """The example's module alone on sys.path (a copy: a build of the example in place leaves
    an egg-info there that would register it a second time)."""
    site = tmp_path / "example_site"
    site.mkdir()
    shutil.copy(EXAMPLE_PLUGIN / "flowengine_text_case.py", site)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("flowengine_text_case", None)


async def test_example_plugin_via_flowengine_plugins(make_client, example_plugin_path):
    client = await make_client(plugins=("flowengine_text_case",))
    workflow_id = await register(
        client, {"name": "shout", "nodes": [node("case", "text.case", mode="title")]}
    )
    body = await execute(client, workflow_id, {"text": "hello plugins"})
    assert body["outputs"]["case"] == {"text": {"type": "String", "value": "Hello Plugins"}}


async def test_example_plugin_via_its_declared_entry_point(make_client, example_plugin_path, tmp_path, monkeypatch):
    project = tomllib.loads((EXAMPLE_PLUGIN / "pyproject.toml").read_text())
    ((name, value),) = project["project"]["entry-points"]["flowengine.nodes"].items()
    _install_entry_point(tmp_path, name, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    client = await make_client()
    workflow_id = await register(client, {"name": "shout", "nodes": [node("case", "text.case")]})
    body = await execute(client, workflow_id, {"text": "quiet"})
    assert body["outputs"]["case"]["text"]["value"] == "QUIET"
    response = await client.post(
        "/api/workflows", json={"name": "bad", "nodes": [node("case", "text.case", mode="loud")]}
    )
    assert response.status == 400
    assert "'loud' is not one of upper, lower, title, swap" in (await response.json())["error"]
