"""Every workflow in ``examples/`` registers through the API (twice, as a client script run
again would), and the README uses only workflows that ``examples/`` or the README itself
defines, and only commands that work in a fresh shell after ``make run`` / ``make test``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
DOCUMENTS = sorted(EXAMPLES.glob("*.json"))


def _node_types(document: dict[str, Any]) -> set[str]:
    return {node["node_type"] for node in document.get("nodes") or ()}


def test_there_are_examples_and_greet_is_one():
    names = {path.name for path in DOCUMENTS}
    assert {"greet.json", "github_zen.json", "data_pipeline.json", "branching.json", "retry_demo.json"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=[path.name for path in DOCUMENTS])
async def test_every_example_registers(make_client, path: Path):
    # shell.exec is off by default; a reader who uses a shell example turns it on.
    client = await make_client(enable_shell=True)
    document = json.loads(path.read_text())
    provided = {entry["type"] for entry in await (await client.get("/api/nodes")).json()}
    missing = sorted(_node_types(document) - provided)

    response = await client.post("/api/workflows", json=document)
    body = await response.json()
    if missing:
        # Upstream node types this server does not provide: refused, naming what is missing.
        assert response.status == 400, body
        assert any(node_type in body["error"] for node_type in missing), body
        return
    assert response.status == 201, body
    assert body["message"] == "Workflow created successfully"
    workflow_id = body["id"]
    if "id" in document:
        assert workflow_id == document["id"]
        again = await client.post("/api/workflows", json=document)
        assert again.status == 201
        assert await again.json() == {"id": workflow_id, "version": 1, "message": "Workflow unchanged"}
    stored = await (await client.get(f"/api/workflows/{workflow_id}")).json()
    assert [node["id"] for node in stored["nodes"]] == [node["id"] for node in document.get("nodes") or ()]


async def test_the_cycle_example_is_refused_with_the_cycle(client):
    document = json.loads((EXAMPLES / "invalid" / "cycle.json").read_text())
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert await response.json() == {"error": "connections: cycle: a -> b -> a"}


async def test_greet_says_hello(client):
    document = json.loads((EXAMPLES / "greet.json").read_text())
    assert (await client.post("/api/workflows", json=document)).status == 201
    response = await client.post("/api/workflows/greet/execute", json={"inputs": {"who": "world"}})
    body = await response.json()
    assert response.status == 200, body
    assert body["outputs"] == {"log": {"message": {"type": "String", "value": "Hello, world!"}}}


def _readme_defined_ids(text: str) -> set[str]:
    """Workflow ids the README registers inline (curl ... -d '{"id":"...", ...}')."""
    return set(re.findall(r"""-d '\{"id":\s*"([A-Za-z0-9._:-]+)\"""", text))


def test_every_workflow_the_readme_runs_is_defined():
    text = README.read_text()
    used = set(re.findall(r"/api/workflows/([A-Za-z][A-Za-z0-9._:-]*)/(?:execute|versions)", text))
    used |= set(re.findall(r"[?&]workflow_id=([A-Za-z][A-Za-z0-9._:-]*)", text))
    used |= set(re.findall(r"/api/workflows/([A-Za-z][A-Za-z0-9._:-]*)\?version=", text))
    used -= {"ID"}  # placeholders
    defined = {json.loads(path.read_text()).get("id") for path in DOCUMENTS} | _readme_defined_ids(text)
    assert used, "the README runs workflows"
    assert used - defined == set(), "workflows the README uses but neither examples/ nor the README defines"


def test_every_example_file_the_readme_names_exists():
    text = README.read_text()
    named = set(re.findall(r"examples/[A-Za-z0-9_./-]+\.json", text))
    made = set(re.findall(r"\bcp \S+ (examples/\S+\.json)", text))  # files the reader creates
    assert "examples/greet.json" in named
    assert {name for name in named - made if not (ROOT / name).is_file()} == set()


def _readme_shell_lines() -> list[str]:
    """The lines of the README's sh blocks and of its ``$ `` transcripts: what a reader types."""
    lines = []
    block: str | None = None
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            block = None if block is not None else line[3:].strip()
            continue
        if block == "sh":
            lines.append(line.strip())
        elif block == "" and line.startswith("$ "):
            lines.append(line[2:].strip())
    return lines


def test_readme_commands_need_no_activated_virtual_environment():
    """flowengine is installed in .venv only: a bare ``flowengine`` or ``python -m flowengine``
    fails in a fresh shell (no module named aiohttp), so the README spells ``.venv/bin/``."""
    lines = _readme_shell_lines()
    assert lines
    bare = [
        line
        for line in lines
        if re.search(r"(^|[;&|(]\s*|PYTHONPATH=\S+\s+FLOWENGINE_PLUGINS=\S+\s+)(flowengine|flowserver|python3? -m flowengine)\b", line)
        or re.search(r"(^|[;&|(]\s*)python3? -c .*flowengine", line)
        or re.search(r"(^|[;&|(]\s*)python3? fuzz/", line)
    ]
    assert bare == []
