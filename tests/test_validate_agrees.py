"""``flowengine validate`` and ``POST /api/workflows`` judge a document the same way: trigger
checks are part of the model's validation, not something the server installs at import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _document(trigger_type: dict) -> dict:
    return {"name": "x", "nodes": [{"id": "a", "node_type": "debug.log"}], "triggers": [{"trigger_type": trigger_type}]}


BAD_TRIGGERS = [
    {"type": "Cron", "expression": "not a cron"},
    {"type": "Cron", "expression": "0 0 * * 7/1"},
    {"type": "Cron", "expression": "0 0 30 2 *"},
    {"type": "Cron", "expression": "* * * * *", "timezone": 3},
    {"type": "Webhook", "path": "../../x"},
    {"type": "Webhook", "path": "hook", "signature": "github"},
    {"type": "Event", "event_type": "NoSuchEvent"},
    {"type": "Nope"},
]


def _validate_with_the_cli(tmp_path, document: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(document))
    # A fresh interpreter that imports only what the CLI imports.
    return subprocess.run(
        [sys.executable, "-m", "flowengine", "validate", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("trigger_type", BAD_TRIGGERS, ids=[json.dumps(t) for t in BAD_TRIGGERS])
async def test_cli_and_server_refuse_the_same_trigger_with_the_same_message(client, tmp_path, trigger_type):
    document = _document(trigger_type)
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    server_error = (await response.json())["error"]
    validated = _validate_with_the_cli(tmp_path, document)
    assert validated.returncode != 0
    assert validated.stdout.strip() == f"{tmp_path / 'workflow.json'}: {server_error}"


async def test_cli_and_server_accept_the_same_triggers(client, tmp_path):
    document = _document({"type": "Cron", "expression": "*/5 * * * *", "timezone": "Europe/Paris"})
    assert (await client.post("/api/workflows", json=document)).status == 201
    validated = _validate_with_the_cli(tmp_path, document)
    assert (validated.returncode, validated.stdout.strip()) == (0, "ok")
