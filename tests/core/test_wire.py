"""The hand-built JSON text of core/wire.py is exactly what a JSON encoder gives for the same
data, including names that need escaping."""

from __future__ import annotations

import json

import pytest

from flowengine.core import wire

NAMES = ["plain", 'quo"te', "back\\slash", "new\nline", "ünï©ødé", "\udc80"]


def _members(text: str) -> dict:
    return json.loads("{" + text + "}")


@pytest.mark.parametrize("node_id", NAMES)
def test_node_event_fields_are_json_members(node_id):
    assert _members(wire.node_started(node_id, "debug.log")) == {"node_id": node_id, "node_type": "debug.log"}
    outputs = {"out": {"type": "String", "value": node_id}}
    text = wire.node_completed(node_id, json.dumps(outputs), 1250, 3, cached=False)
    assert _members(text) == {"node_id": node_id, "outputs": outputs, "duration_ms": 1, "duration_us": 1250, "attempts": 3}
    cached = _members(wire.node_completed(node_id, "{}", 0, 1, cached=True))
    assert cached["cached"] is True


def test_workflow_event_fields_are_json_members():
    assert wire.workflow_started(None) == ""
    assert _members(wire.workflow_started('{"type":"manual","id":null}')) == {"trigger": {"type": "manual", "id": None}}
    completed = _members(wire.workflow_completed(False, "failed", 12999))
    assert completed == {"success": False, "status": "failed", "duration_ms": 12, "duration_us": 12999}


def test_members_and_objects_compose():
    members = [wire.member(name, json.dumps([index])) for index, name in enumerate(NAMES[:5])]
    assert json.loads(wire.object_of(members)) == {name: [index] for index, name in enumerate(NAMES[:5])}
    assert wire.object_of([]) == "{}"
