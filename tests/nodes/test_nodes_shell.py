"""shell.exec: off by default, and when enabled, live output lines over /api/events."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from support.api import execute, link, node, register
from support.websocket import receive_until

PY = sys.executable


def _shell(code: str, **config: Any) -> dict[str, Any]:
    """A one-node workflow running ``python -c code``."""
    return {"name": "sh", "nodes": [node("sh", "shell.exec", command=PY, args=["-c", code], **config)]}


@pytest.fixture
async def shell_client(make_client):
    return await make_client(enable_shell=True)


def _output_events(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["event"]["event_type"], e["event"]["line"])
        for e in events
        if e["type"] == "NodeEvent" and e["event"]["event_type"] in ("StdoutLine", "StderrLine")
    ]


# -- off by default -------------------------------------------------------------------------


async def test_shell_is_not_listed_by_default(client):
    types = [n["type"] for n in await (await client.get("/api/nodes")).json()]
    assert "shell.exec" not in types
    assert "debug.log" in types


async def test_workflow_using_shell_is_rejected_saying_how_to_enable(client):
    response = await client.post("/api/workflows", json=_shell("print(1)"))
    body = await response.json()
    assert response.status == 400
    assert body["error"] == (
        "nodes[0].node_type: node type 'shell.exec' is disabled;"
        " set FLOWENGINE_ENABLE_SHELL=1 (or --enable-shell) to allow running programs"
    )


async def test_enabled_shell_is_listed(shell_client):
    nodes = {n["type"]: n for n in await (await shell_client.get("/api/nodes")).json()}
    shell = nodes["shell.exec"]
    assert shell["category"] == "shell"
    assert [p["name"] for p in shell["outputs"]] == ["stdout", "stderr", "exit_code", "output", "success"]
    assert [k["name"] for k in shell["config"]][:3] == ["command", "args", "cwd"]
    assert {"env", "stdin", "timeout_ms"} <= {k["name"] for k in shell["config"]}


# -- running --------------------------------------------------------------------------------


async def test_outputs_and_lines_in_order(shell_client):
    code = (
        "import sys\n"
        "for i in range(5): print(f'out {i}', flush=True)\n"
        "print('err a', file=sys.stderr, flush=True)\n"
        "print('err b', file=sys.stderr, flush=True)\n"
        "sys.stdout.write('no newline')\n"
    )
    workflow_id = await register(shell_client, _shell(code))
    async with shell_client.ws_connect(f"/api/events?workflow_id={workflow_id}") as ws:
        body = await execute(shell_client, workflow_id)
        events = await receive_until(ws)
    lines = _output_events(events)
    assert [line for kind, line in lines if kind == "StdoutLine"] == [f"out {i}" for i in range(5)] + ["no newline"]
    assert [line for kind, line in lines if kind == "StderrLine"] == ["err a", "err b"]
    assert body["outputs"]["sh"] == {
        "stdout": {"type": "String", "value": "out 0\nout 1\nout 2\nout 3\nout 4\nno newline"},
        "stderr": {"type": "String", "value": "err a\nerr b"},
        "exit_code": {"type": "Number", "value": 0},
        "output": {"type": "String", "value": "out 0\nout 1\nout 2\nout 3\nout 4\nno newline"},
        "success": {"type": "Bool", "value": True},
    }


async def test_lines_stream_while_the_program_still_runs(shell_client, tmp_path):
    # The program prints a line, then waits for a file the test creates only after it has seen
    # that line's event: the event cannot have come from output collected at exit.
    gate = tmp_path / "go"
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)\n"
        "print('second', flush=True)\n"
    )
    workflow_id = await register(shell_client, _shell(code, timeout_ms=10_000))
    async with shell_client.ws_connect(f"/api/events?workflow_id={workflow_id}&types=NodeEvent") as ws:
        running = asyncio.ensure_future(execute(shell_client, workflow_id))
        first = await asyncio.wait_for(ws.receive_json(), 5)
        assert first["event"] == {"event_type": "StdoutLine", "line": "first"}
        assert not running.done()
        gate.touch()
        second = await asyncio.wait_for(ws.receive_json(), 5)
        assert second["event"] == {"event_type": "StdoutLine", "line": "second"}
        body = await running
    assert body["outputs"]["sh"]["stdout"]["value"] == "first\nsecond"


async def test_an_overlong_line_arrives_in_pieces(shell_client):
    workflow_id = await register(shell_client, _shell("print('y' * 1_500_000)"))
    body = await execute(shell_client, workflow_id)
    pieces = body["outputs"]["sh"]["stdout"]["value"].split("\n")
    assert len(pieces) == 2 and "".join(pieces) == "y" * 1_500_000


async def test_nonzero_exit_fails_the_node_with_the_last_stderr_line(shell_client):
    code = "import sys; print('bad thing', file=sys.stderr); sys.exit(3)"
    workflow_id = await register(shell_client, _shell(code))
    body = await execute(shell_client, workflow_id, expect=500)
    assert body["error"] == f"Node execution failed: node 'sh' (shell.exec): {PY!r} exited with code 3: bad thing"


async def test_nonzero_exit_is_retried(shell_client, tmp_path):
    # Fails the first time, succeeds the second: retries see the exit code as a failure.
    marker = tmp_path / "tried"
    code = f"import os, sys\nif not os.path.exists({str(marker)!r}):\n open({str(marker)!r}, 'w').close(); sys.exit(1)\nprint('ok')"
    document = _shell(code)
    document["nodes"][0]["retry_policy"] = {"max_attempts": 2, "delay_ms": 0}
    workflow_id = await register(shell_client, document)
    body = await execute(shell_client, workflow_id)
    assert body["outputs"]["sh"]["stdout"]["value"] == "ok"


async def test_timeout_kills_the_program(shell_client):
    workflow_id = await register(shell_client, _shell("import time; time.sleep(60)", timeout_ms=100))
    body = await asyncio.wait_for(execute(shell_client, workflow_id, expect=500), 10)
    assert body["error"].endswith(f"{PY!r} timed out after 100 ms and was killed")


async def test_timeout_kills_a_program_flooding_its_output(shell_client):
    # Unread output must not keep the killed program's pipes (and so the node) open.
    workflow_id = await register(shell_client, _shell("while True: print('x' * 1000)", timeout_ms=200))
    body = await asyncio.wait_for(execute(shell_client, workflow_id, expect=500), 10)
    assert body["error"].endswith("timed out after 200 ms and was killed")


async def test_timeout_kills_what_the_program_started(shell_client):
    # A grandchild holding the output pipe open must not outlive the timeout either.
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    workflow_id = await register(shell_client, _shell(code, timeout_ms=300))
    body = await asyncio.wait_for(execute(shell_client, workflow_id, expect=500), 10)
    assert body["error"].endswith("timed out after 300 ms and was killed")


async def test_stdin_env_and_cwd(shell_client, tmp_path):
    code = "import os, sys; print(sys.stdin.read().upper()); print(os.environ['GREETING']); print(os.getcwd())"
    workflow_id = await register(
        shell_client, _shell(code, stdin="piped in", env={"GREETING": "hola"}, cwd=str(tmp_path))
    )
    body = await execute(shell_client, workflow_id)
    assert body["outputs"]["sh"]["stdout"]["value"].split("\n") == ["PIPED IN", "hola", str(tmp_path)]


async def test_large_stdin_does_not_deadlock(shell_client):
    # The program echoes while the input is still being written; both far exceed a pipe buffer.
    text = "".join(f"{i:099d}\n" for i in range(3000))
    code = "import sys\nfor line in sys.stdin: sys.stdout.write(line)"
    workflow_id = await register(shell_client, _shell(code, timeout_ms=10_000))
    body = await asyncio.wait_for(execute(shell_client, workflow_id, {"stdin": text}), 20)
    assert body["outputs"]["sh"]["stdout"]["value"] == text.rstrip("\n")


async def test_command_and_args_from_connected_inputs(shell_client):
    workflow_id = await register(
        shell_client,
        {
            "name": "sh",
            "nodes": [
                node("s", "transform.set", cmd=PY, argv=["-c", "import sys; print(sys.argv[1:])", "a b", 2]),
                node("sh", "shell.exec"),
            ],
            "connections": [link("s", "cmd", "sh", "command"), link("s", "argv", "sh", "args")],
        },
    )
    body = await execute(shell_client, workflow_id)
    # No shell: "a b" stays one argument.
    assert body["outputs"]["sh"]["stdout"]["value"] == "['a b', '2']"


async def test_missing_program_fails_the_node(shell_client):
    workflow_id = await register(shell_client, {"name": "sh", "nodes": [node("sh", "shell.exec", command="no-such-program-xyz")]})
    body = await execute(shell_client, workflow_id, expect=500)
    assert "cannot run 'no-such-program-xyz': No such file or directory" in body["error"]


async def test_missing_cwd_fails_the_node_naming_it(shell_client, tmp_path):
    missing = str(tmp_path / "nope")
    workflow_id = await register(shell_client, _shell("print(1)", cwd=missing))
    body = await execute(shell_client, workflow_id, expect=500)
    assert f"cwd {missing!r} is not a directory" in body["error"]
