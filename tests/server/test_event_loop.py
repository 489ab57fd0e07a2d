"""The server's event loop as a user chooses it: ``--loop`` / ``FLOWENGINE_LOOP``, uvloop by
default when it is installed, and a clear refusal when it is asked for but missing.

Every test starts a real ``python -m flowengine`` process; the loop it runs on is the one its
start-up line names. "Not installed" is a real process in which ``import uvloop`` fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.paths import REPO
from support.process import free_port, stop

START_TIMEOUT = 20.0  # a bound on a hang, not a speed expectation
# The command line with ``import uvloop`` failing, as on an install without the extra ``fast``.
WITHOUT_UVLOOP = "import sys; sys.modules['uvloop'] = None; from flowengine.cli import main; sys.exit(main())"


def start(tmp_path: Path, *args: str, without_uvloop: bool = False, **variables: str) -> tuple[subprocess.Popen, str]:
    """The server on a free loopback port at info level; the process and its base URL."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWENGINE_")}
    env.pop("RUST_LOG", None)
    env.update(
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        FLOWENGINE_DB=str(tmp_path / "loop.db"),
        BIND_ADDRESS=f"127.0.0.1:{port}",
        LOG_LEVEL="info",
        **variables,
    )
    command = [sys.executable, "-c", WITHOUT_UVLOOP] if without_uvloop else [sys.executable, "-m", "flowengine"]
    process = subprocess.Popen(
        [*command, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return process, f"http://127.0.0.1:{port}"


def request(method: str, url: str, body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    prepared = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(prepared, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_health(process: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}: {process.communicate()[1]}")
        try:
            status, body = request("GET", f"{base}/health")
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
            continue
        assert (status, body["status"]) == (200, "healthy")
        return
    pytest.fail(f"{base}/health did not answer within {START_TIMEOUT} s")


def serve_and_stop(process: subprocess.Popen, base: str) -> str:
    """Health, one execution end to end, a clean stop; what the server logged."""
    try:
        wait_for_health(process, base)
        workflow = {"id": "greet", "name": "Greet", "nodes": [{"id": "a", "node_type": "transform.set",
                    "config": {"x": {"type": "Number", "value": 1}}}], "connections": []}
        assert request("POST", f"{base}/api/workflows", workflow)[0] == 201
        status, result = request("POST", f"{base}/api/workflows/greet/execute", {"inputs": {}})
        assert (status, result["status"], result["outputs"]) == (200, "succeeded", {"a": {"x": {"type": "Number", "value": 1}}})
    finally:
        code, logged = stop(process, signal.SIGTERM)
    assert code == 0, logged
    return logged


def started_on(logged: str) -> str:
    """The loop the start-up line names."""
    lines = [line for line in logged.splitlines() if "listening on" in line]
    assert len(lines) == 1, logged
    return lines[0].rpartition("event loop: ")[2].rstrip(")")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_each_loop_serves_and_says_which_it_is(tmp_path, loop):
    process, base = start(tmp_path, "--loop", loop)
    assert started_on(serve_and_stop(process, base)) == loop


def test_uvloop_is_the_default_when_installed(tmp_path):
    process, base = start(tmp_path)
    assert started_on(serve_and_stop(process, base)) == "uvloop"


def test_the_environment_chooses_and_the_flag_wins(tmp_path):
    process, base = start(tmp_path, FLOWENGINE_LOOP="asyncio")
    assert started_on(serve_and_stop(process, base)) == "asyncio"
    process, base = start(tmp_path, "--loop", "asyncio", FLOWENGINE_LOOP="uvloop")
    assert started_on(serve_and_stop(process, base)) == "asyncio"


@pytest.mark.parametrize("args, variables", [((), {}), (("--loop", "auto"), {}), ((), {"FLOWENGINE_LOOP": "auto"})])
def test_without_uvloop_the_default_is_asyncio(tmp_path, args, variables):
    process, base = start(tmp_path, *args, without_uvloop=True, **variables)
    assert started_on(serve_and_stop(process, base)) == "asyncio"


@pytest.mark.parametrize("args, variables", [(("--loop", "uvloop"), {}), ((), {"FLOWENGINE_LOOP": "uvloop"})])
def test_asking_for_uvloop_without_it_exits_2_naming_the_extra(tmp_path, args, variables):
    process, base = start(tmp_path, *args, without_uvloop=True, **variables)
    _, err = process.communicate(timeout=START_TIMEOUT)
    assert process.returncode == 2
    assert "pip install 'flowengine-server[fast]'" in err
    assert "listening on" not in err
    with pytest.raises(urllib.error.URLError):
        request("GET", f"{base}/health")


def test_an_unknown_loop_is_refused(tmp_path):
    process, _ = start(tmp_path, "--loop", "trio")
    _, err = process.communicate(timeout=START_TIMEOUT)
    assert process.returncode == 2
    assert "invalid --loop='trio': expected one of auto, asyncio, uvloop" in err
