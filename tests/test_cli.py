"""The command line as a user runs it: ``python -m flowengine run/validate/nodes`` in a subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from support.api import link, node
from support.paths import REPO

ENVIRONMENT = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}


def flowengine(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowengine", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env=ENVIRONMENT,
    )


def start_run(tmp_path: Path, document: dict, *args: str) -> subprocess.Popen[str]:
    """``flowengine run`` on the document, in the background, its output on pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine", "run", write(tmp_path, "wf.json", document), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=ENVIRONMENT,
    )


def write(tmp_path: Path, name: str, document: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


GREETING = {
    "name": "greeting",
    "nodes": [
        node("render", "transform.template", template="${greeting}, ${name}!", greeting="Hello"),
        node("log", "debug.log"),
    ],
    "connections": [link("render", "text", "log", "message")],
}


def result_of(stdout: str) -> dict:
    """The result JSON printed after the per-node lines."""
    return json.loads(stdout[stdout.index("\n{") + 1 :])


def test_run_prints_a_line_per_node_then_the_result(tmp_path):
    done = flowengine("run", write(tmp_path, "wf.json", GREETING), "--input", "name=Ada")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "start  render (transform.template)"
    assert re.fullmatch(r"done   render in \d+\.\d ms", lines[1])
    assert lines[2] == "start  log (debug.log)"
    assert lines[3] == "  log | Info: Hello, Ada!"
    assert re.fullmatch(r"done   log in \d+\.\d ms", lines[4])
    result = result_of(done.stdout)
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"log": {"message": {"type": "String", "value": "Hello, Ada!"}}}
    assert (result["completed_nodes"], result["total_nodes"]) == (2, 2)


def test_run_inputs_are_json_else_strings_and_can_come_from_a_file(tmp_path):
    document = {"name": "n", "nodes": [node("show", "transform.json_stringify")]}
    path = write(tmp_path, "wf.json", document)
    as_json = result_of(flowengine("run", path, "--input", 'value={"n": [1, 2]}').stdout)
    assert as_json["outputs"]["show"]["json"]["value"] == '{"n": [1, 2]}'
    as_text = result_of(flowengine("run", path, "--input", "value=not json").stdout)
    assert as_text["outputs"]["show"]["json"]["value"] == '"not json"'
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"value": {"type": "Number", "value": 5}}))
    from_file = result_of(flowengine("run", path, "--inputs-json", str(inputs)).stdout)
    assert from_file["outputs"]["show"]["json"]["value"] == "5"
    bad = flowengine("run", path, "--input", "novalue")
    assert bad.returncode == 1
    assert "--input 'novalue': expected NAME=VALUE" in bad.stderr


def test_run_failure_exits_1_with_the_failing_node(tmp_path):
    document = {
        "name": "broken",
        "nodes": [node("set", "transform.set", text="{not json"), node("parse", "transform.json_parse"), node("log", "debug.log")],
        "connections": [link("set", "text", "parse", "json"), link("parse", "parsed", "log", "message")],
    }
    done = flowengine("run", write(tmp_path, "wf.json", document))
    assert done.returncode == 1
    assert re.search(r"^FAILED parse after \d+\.\d ms: input 'json' is not valid JSON", done.stdout, re.M)
    assert "start  log" not in done.stdout
    result = result_of(done.stdout)
    assert result["status"] == "failed"
    assert result["error"].startswith("Node execution failed: node 'parse' (transform.json_parse): input 'json'")


def test_run_with_errors_continued_is_not_a_success(tmp_path):
    document = {
        "name": "partly broken",
        "nodes": [node("parse", "transform.json_parse", json="{"), node("fine", "transform.set", x=1)],
        "settings": {"on_error": "ContinueOnError"},
    }
    done = flowengine("run", write(tmp_path, "wf.json", document))
    assert result_of(done.stdout)["status"] == "completed_with_errors"
    assert done.returncode == 1


def test_run_an_invalid_file_says_why(tmp_path):
    done = flowengine("run", write(tmp_path, "wf.json", {"name": "x", "nodes": [node("a", "no.such")]}))
    assert done.returncode == 1
    assert "nodes[0].node_type: unknown node type 'no.such'" in done.stderr
    assert done.stdout == ""


def test_validate_prints_ok_or_the_errors(tmp_path):
    good = flowengine("validate", write(tmp_path, "good.json", GREETING))
    assert (good.returncode, good.stdout) == (0, "ok\n")
    cyclic = {**GREETING, "connections": GREETING["connections"] + [link("log", "message", "render", "greeting")]}
    bad = flowengine("validate", write(tmp_path, "bad.json", cyclic))
    assert bad.returncode == 1
    assert "bad.json: connections: cycle:" in bad.stdout
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    broken = flowengine("validate", str(not_json))
    assert broken.returncode == 1 and "is not valid JSON" in broken.stdout


def test_nodes_lists_the_node_types():
    done = flowengine("nodes")
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert {"debug.log", "transform.template", "control.if", "http.request"} <= set(names)
    assert names == sorted(names)
    assert "shell.exec" not in names  # disabled unless FLOWENGINE_ENABLE_SHELL is set


def test_the_example_workflow_runs(tmp_path):
    done = flowengine("run", "examples/engine_order_routing.json", "--input", "value=250")
    assert done.returncode == 0, done.stderr
    assert "skip   small: no incoming connection delivered a value" in done.stdout
    assert result_of(done.stdout)["outputs"]["log"]["message"]["value"] == {
        "decision": {"type": "String", "value": "order of 250 needs approval"}
    }


def test_ctrl_c_cancels_the_running_nodes_and_still_prints_the_result(tmp_path):
    document = {
        "name": "slow",
        "nodes": [node("wait", "time.delay", delay_ms=60_000), node("after", "debug.log")],
        "connections": [link("wait", "x", "after", "message")],
    }
    process = start_run(tmp_path, document, "--input", "x=1")
    try:
        assert process.stdout.readline() == "start  wait (time.delay)\n"  # the node is running
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert re.search(r"^cancel wait after \d+\.\d ms$", stdout, re.M)
    assert "start  after" not in stdout
    result = result_of(stdout)
    assert (result["status"], result["cancelled_nodes"]) == ("interrupted", ["wait"])
    assert stderr.strip() == "flowengine: interrupted"


def test_a_reader_that_goes_away_does_not_break_the_run(tmp_path):
    # Enough output to fill the pipe, so the writer really meets a closed pipe.
    count = 3_000
    document = {
        "name": "chatty",
        "nodes": [node(f"n{i}", "debug.log") for i in range(count)],
        "connections": [link(f"n{i}", "message", f"n{i + 1}", "message") for i in range(count - 1)],
    }
    process = start_run(tmp_path, document, "--input", "message=hi")
    try:
        assert process.stdout.readline() == "start  n0 (debug.log)\n"
        process.stdout.close()  # like `flowengine run wf.json | head -1`
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert process.returncode == 0  # the workflow itself succeeded
