"""``python -m flowengine`` as a user runs it: start, answer /health, log where, stop cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.paths import EXAMPLES, REPO
from support.process import free_port, stop

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("LOG_LEVEL", "RUST_LOG")}
    env = {key: value for key, value in env.items() if not key.startswith("FLOWENGINE_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["FLOWENGINE_DB"] = str(tmp_path / "served.db")
    env.update(variables)
    return env


def start(tmp_path: Path, *args: str, **variables: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine", *args],
        cwd=tmp_path,
        env=environment(tmp_path, **variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_health(process: subprocess.Popen, url: str) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the server exited with {process.returncode}: {err}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT} s")


@pytest.fixture
def served(tmp_path):
    """Processes started by a test; any still running at the end are killed."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_health_and_stops_cleanly(tmp_path, served, signum):
    port = free_port()
    process = start(tmp_path, BIND_ADDRESS=f"127.0.0.1:{port}")
    served.append(process)
    health = wait_for_health(process, f"http://127.0.0.1:{port}/health")
    assert health == {"status": "healthy", "version": "0.1.0", "service": "flowengine"}

    code, err = stop(process, signum)
    assert code == 0, err
    startup = [line for line in err.splitlines() if "listening" in line]
    assert len(startup) == 1, err
    assert f"127.0.0.1:{port}" in startup[0]
    assert str(tmp_path / "served.db") in startup[0]
    assert "Traceback" not in err
    assert (tmp_path / "served.db").exists()


def test_workflow_registered_over_http_is_in_the_database_after_stop(tmp_path, served):
    port = free_port()
    process = start(tmp_path, "serve", "--bind", f"127.0.0.1:{port}")
    served.append(process)
    wait_for_health(process, f"http://127.0.0.1:{port}/health")
    document = (EXAMPLES / "github_zen.json").read_bytes()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/workflows",
        data=document,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        workflow_id = json.loads(response.read())["id"]
    code, err = stop(process)
    assert code == 0, err

    port = free_port()
    process = start(tmp_path, BIND_ADDRESS=f"127.0.0.1:{port}")
    served.append(process)
    wait_for_health(process, f"http://127.0.0.1:{port}/health")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workflows/{workflow_id}", timeout=5) as response:
        assert json.loads(response.read())["name"] == "GitHub Zen"
    code, err = stop(process)
    assert code == 0, err


def test_ipv6_bind_address(tmp_path, served):
    try:
        port = free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    process = start(tmp_path, BIND_ADDRESS=f"[::1]:{port}")
    served.append(process)
    health = wait_for_health(process, f"http://[::1]:{port}/health")
    assert health["status"] == "healthy"
    code, err = stop(process)
    assert code == 0, err
    assert f"[::1]:{port}" in err


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"FLOWENGINE_MAX_BODY_BYTES": "abc"}, "FLOWENGINE_MAX_BODY_BYTES"),
        ({"BIND_ADDRESS": "nowhere"}, "BIND_ADDRESS"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_bad_setting_exits_2_with_one_line(tmp_path, variables, named):
    result = subprocess.run(
        [sys.executable, "-m", "flowengine"],
        cwd=tmp_path,
        env=environment(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert not (tmp_path / "served.db").exists()


def _run_on_a_taken_port(tmp_path: Path) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run the server on a port another socket already listens on; the port and the outcome."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        return port, subprocess.run(
            [sys.executable, "-m", "flowengine"],
            cwd=tmp_path,
            env=environment(tmp_path, BIND_ADDRESS=f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT,
        )


def test_port_in_use_exits_2(tmp_path):
    port, result = _run_on_a_taken_port(tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_listening_line_when_the_port_is_taken(tmp_path):
    port, result = _run_on_a_taken_port(tmp_path)
    assert result.returncode == 2
    assert "listening on" not in result.stderr


@pytest.mark.parametrize("with_command", [False, True])
def test_server_flags_work_with_or_without_the_serve_command(tmp_path, served, with_command):
    port = free_port()
    database = str(tmp_path / "flags.db")
    args = ["--bind", f"127.0.0.1:{port}", "--db", database]
    process = start(tmp_path, *(["serve", *args] if with_command else args))
    served.append(process)
    assert wait_for_health(process, f"http://127.0.0.1:{port}/health")["status"] == "healthy"
    code, err = stop(process)
    assert code == 0, err
    assert database in err  # the startup line names the database given by the flag


def _health_status(port: int, timeout: float) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
        return response.status


def _low_descriptor_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_slow_clients_at_the_descriptor_limit_neither_stop_the_server_nor_flood_the_log(tmp_path, served):
    """300 clients sending half a request head, or nothing, to a server that may open 256 files:
    it keeps answering (the head timeout frees their connections) and logs a few lines, not a
    storm."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flowengine"],
        cwd=tmp_path,
        env=environment(tmp_path, BIND_ADDRESS=f"127.0.0.1:{port}", FLOWENGINE_HEAD_TIMEOUT="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_low_descriptor_limit,
    )
    served.append(process)
    wait_for_health(process, f"http://127.0.0.1:{port}/health")
    slow: list[socket.socket] = []
    try:
        for number in range(300):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            if number % 2:
                client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            slow.append(client)  # the others send nothing at all
        # Answered once the head timeout has closed the slow clients' connections.
        assert _health_status(port, timeout=30) == 200
    finally:
        for client in slow:
            client.close()
    assert _health_status(port, timeout=10) == 200
    code, err = stop(process)
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) < 12, err
    assert "lowered from 1000 to 224" in err  # the cap leaves descriptors for everything else
    assert sum("connection limit reached" in line for line in lines) == 1, err
    assert "Traceback" not in err and "Too many open files" not in err


def test_connections_over_the_limit_wait_until_one_closes(tmp_path, served):
    port = free_port()
    process = start(tmp_path, BIND_ADDRESS=f"127.0.0.1:{port}", FLOWENGINE_MAX_CONNECTIONS="3")
    served.append(process)
    wait_for_health(process, f"http://127.0.0.1:{port}/health")
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            _health_status(port, timeout=1)  # queued behind the three open connections
        idle.pop().close()
        assert _health_status(port, timeout=10) == 200
    finally:
        for client in idle:
            client.close()
    code, err = stop(process)
    assert code == 0, err
    assert "connection limit reached: 3 open" in err


def test_the_served_server_answers_parser_errors_as_json(tmp_path, served):
    """``flowengine serve`` goes through the same connection layer as the tests' server."""
    port = free_port()
    process = start(tmp_path, BIND_ADDRESS=f"127.0.0.1:{port}", FLOWENGINE_API_KEYS="serve-test-key-99:admin")
    served.append(process)
    wait_for_health(process, f"http://127.0.0.1:{port}/health")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /api/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer serve-test-key-99\r\nX-Bad: \x01\r\n\r\n")
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/json" in head
    assert json.loads(body) == {"error": "a header value holds a control character"}
    code, err = stop(process)
    assert code == 0, err
    assert "ERROR" not in err and "serve-test-key-99" not in err
