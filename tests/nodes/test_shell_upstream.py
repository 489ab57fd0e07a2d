"""shell.exec in the upstream shape: config timeout (seconds), stream_output, shell, workdir,
env_passthrough, capture_*, strip_trailing_newline, fail_on_error; outputs output and success;
a chain wired output -> input with the program reading its input as JSON on stdin."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from support.api import execute, link, node, register

PY = sys.executable


@pytest.fixture
async def shell_client(make_client):
    return await make_client(enable_shell=True)


def _py(node_id: str, code: str, **config: Any) -> dict[str, Any]:
    return node(node_id, "shell.exec", command=PY, args=["-c", code], **config)


async def _run(client, nodes, connections=(), inputs=None, expect=200) -> dict[str, Any]:
    workflow_id = await register(client, {"name": "sh", "nodes": list(nodes), "connections": list(connections)})
    return await execute(client, workflow_id, inputs, expect=expect)


async def _events(client, execution_id: str) -> list[dict[str, Any]]:
    return await (await client.get(f"/api/executions/{execution_id}/events")).json()


async def test_output_is_stdout_parsed_as_json_and_success_is_a_bool(shell_client):
    body = await _run(shell_client, [_py("json", "print('{\"n\": 2}')"), _py("text", "print('plain words')")])
    assert body["outputs"]["json"]["output"] == {"type": "Json", "value": {"n": 2}}
    assert body["outputs"]["json"]["success"] == {"type": "Bool", "value": True}
    assert body["outputs"]["text"]["output"] == {"type": "String", "value": "plain words"}


async def test_a_chain_wired_output_to_input_reads_json_on_stdin(shell_client):
    # What the upstream SDK generates for @task functions chained with Flow >>.
    first = _py("extract", "import json; print(json.dumps({'value': 21}))", timeout=5, stream_output=True)
    second = _py("double", "import sys, json; d = json.load(sys.stdin); print(json.dumps({'value': d['value'] * 2}))")
    third = _py("show", "import sys, json; print(json.load(sys.stdin)['value'])")
    body = await _run(
        shell_client,
        [first, second, third],
        [link("extract", "output", "double", "input"), link("double", "output", "show", "input")],
    )
    assert body["status"] == "succeeded"
    assert body["outputs"]["show"]["output"] == {"type": "Json", "value": 42}
    assert body["outputs"]["show"]["stdout"] == {"type": "String", "value": "42"}


async def test_text_output_reaches_input_as_a_json_string(shell_client):
    body = await _run(
        shell_client,
        [_py("say", "print('hi there')"), _py("echo", "import sys; print(sys.stdin.read())")],
        [link("say", "output", "echo", "input")],
    )
    assert body["outputs"]["echo"]["stdout"]["value"] == '"hi there"'


async def test_stdin_input_is_written_as_text_and_input_as_json(shell_client):
    body = await _run(shell_client, [_py("cat", "import sys; print(sys.stdin.read())")], inputs={"stdin": "raw text"})
    assert body["outputs"]["cat"]["stdout"]["value"] == "raw text"
    body = await _run(shell_client, [_py("cat", "import sys; print(sys.stdin.read())")], inputs={"input": {"a": [1]}})
    assert body["outputs"]["cat"]["output"] == {"type": "Json", "value": {"a": [1]}}


async def test_stream_output_false_emits_no_line_events(shell_client):
    code = "print('a'); print('b')"
    quiet = await _run(shell_client, [_py("q", code, stream_output=False)])
    loud = await _run(shell_client, [_py("l", code, stream_output=True)])
    default = await _run(shell_client, [_py("d", code)])

    def lines(events):
        return [e["event"]["line"] for e in events if e["type"] == "NodeEvent" and e["event"]["event_type"] == "StdoutLine"]

    assert lines(await _events(shell_client, quiet["execution_id"])) == []
    assert lines(await _events(shell_client, loud["execution_id"])) == ["a", "b"]
    assert lines(await _events(shell_client, default["execution_id"])) == ["a", "b"]
    assert quiet["outputs"]["q"]["stdout"]["value"] == "a\nb"


async def test_timeout_in_seconds_kills_the_program(shell_client):
    body = await _run(shell_client, [_py("slow", "import time; time.sleep(30)", timeout=0.3)], expect=500)
    assert "timed out after 0.3 s (config timeout) and was killed" in body["error"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": 5, "timeout_ms": 5000}, "give either timeout_ms (milliseconds) or timeout (seconds), not both"),
        ({"timeout": 0}, "timeout must be from more than 0"),
        ({"cwd": "/", "workdir": "/"}, "give either cwd or workdir"),
        ({"env_passthrough": ["FLOWENGINE_API_KEYS"]}, "'FLOWENGINE_API_KEYS' is one of the server's own settings"),
        ({"env_passthrough": ["flowengine_jwt_secret"]}, "is one of the server's own settings"),
    ],
)
async def test_conflicting_or_unsafe_config_is_a_400(shell_client, settings, message):
    document = {"name": "bad", "nodes": [_py("sh", "print(1)", **settings)]}
    response = await shell_client.post("/api/workflows", json=document)
    body = await response.json()
    assert response.status == 400, body
    assert message in body["error"] and body["error"].startswith("nodes[0].config")


async def test_fail_on_error_false_succeeds_with_success_false(shell_client):
    code = "import sys; print('partial'); sys.exit(3)"
    body = await _run(shell_client, [_py("soft", code, fail_on_error=False)])
    outputs = body["outputs"]["soft"]
    assert outputs["success"] == {"type": "Bool", "value": False}
    assert outputs["exit_code"]["value"] == 3 and outputs["output"]["value"] == "partial"
    failed = await _run(shell_client, [_py("hard", code)], expect=500)
    assert "exited with code 3" in failed["error"]


async def test_shell_true_runs_the_joined_command_with_sh(shell_client):
    document = {"name": "sh", "nodes": [node("sh", "shell.exec", command="echo", args=["$((6 * 7))", "|", "cat"], shell=True)]}
    workflow_id = await register(shell_client, document)
    body = await execute(shell_client, workflow_id)
    assert body["outputs"]["sh"]["output"] == {"type": "Json", "value": 42}


async def test_workdir_capture_and_trailing_newlines(shell_client, tmp_path):
    code = "import os, sys; print(os.getcwd()); print(); sys.stderr.write('e\\n')"
    body = await _run(
        shell_client,
        [
            _py("strip", code, workdir=str(tmp_path), strip_trailing_newline=True, capture_stderr=False),
            _py("keep", code, workdir=str(tmp_path), strip_trailing_newline=False),
            _py("none", code, capture_stdout=False),
        ],
    )
    assert body["outputs"]["strip"]["stdout"]["value"] == str(tmp_path)
    assert body["outputs"]["strip"]["stderr"]["value"] == ""
    assert body["outputs"]["keep"]["stdout"]["value"] == f"{tmp_path}\n\n"
    assert body["outputs"]["keep"]["stderr"]["value"] == "e"
    assert body["outputs"]["none"]["stdout"]["value"] == "" and body["outputs"]["none"]["output"]["value"] == ""


async def test_env_passthrough_passes_named_variables_but_never_server_settings(shell_client, monkeypatch):
    monkeypatch.setenv("U16_VISIBLE", "yes")
    monkeypatch.setenv("FLOWENGINE_U16_CREDENTIAL", "hunter2")
    code = "import os, json; print(json.dumps({k: os.environ.get(k) for k in ('U16_VISIBLE', 'FLOWENGINE_U16_CREDENTIAL')}))"
    body = await _run(shell_client, [_py("env", code, env_passthrough=["U16_VISIBLE"])])
    assert body["outputs"]["env"]["output"]["value"] == {"U16_VISIBLE": "yes", "FLOWENGINE_U16_CREDENTIAL": None}
    assert os.environ["FLOWENGINE_U16_CREDENTIAL"] == "hunter2"  # it was there to leak


async def test_upstream_shaped_node_stays_off_unless_enabled(client):
    document = {"name": "sh", "nodes": [_py("sh", "print(1)", timeout=5, stream_output=True)]}
    response = await client.post("/api/workflows", json=document)
    assert response.status == 400
    assert "node type 'shell.exec' is disabled" in (await response.json())["error"]


async def test_args_as_a_string_are_split_on_whitespace_and_other_types_refused(shell_client):
    body = await _run(shell_client, [node("sh", "shell.exec", command=PY, args="-c print(6*7)")])
    assert body["outputs"]["sh"]["output"] == {"type": "Json", "value": 42}
    response = await shell_client.post("/api/workflows", json={"name": "bad", "nodes": [node("sh", "shell.exec", command=PY, args={"a": 1})]})
    assert response.status == 400
    assert "args must be an Array" in (await response.json())["error"]
