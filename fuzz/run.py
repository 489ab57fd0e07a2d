"""Fuzz a live flowengine server with Schemathesis, from the server's own /openapi.json.

    python fuzz/run.py            # make fuzz: the full run
    python fuzz/run.py --quick    # make fuzz-quick: a short bounded run for CI (under a minute)

What it does:
1. starts ``fuzz/sandbox.py`` (the server, outbound traffic limited to loopback) on a free
   127.0.0.1 port with a throwaway database;
2. registers a few workflows and runs them, so that real ids exist (a webhook, a workflow that
   succeeds, one that fails, executions of each) and hands those ids to Schemathesis as
   dictionaries, next to what it generates itself;
3. runs ``schemathesis run --checks all``: no server error, every answer as documented (status
   code, content type, headers, body schema), schema-valid requests accepted and invalid ones
   refused, 405 for undocumented methods; every phase, the stateful one included. The 500 of
   execute, retry and webhooks is a failed execution, a documented answer, so it is allowed
   there -- and its body must still be an execution
   (``ExecutionFailure``), which an ``{"error": "internal error"}`` crash is not.
   ``/api/events`` (a WebSocket) is left out.

Exits non-zero on any finding: a Schemathesis failure, or an ERROR that flowengine logged
(an internal error's traceback) even if no response showed it. The server's log is printed
then, so the traceback behind a 500 is not lost. Arguments after ``--`` go to
``schemathesis run``, e.g. ``python fuzz/run.py -- --include-path /health``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Every check Schemathesis has: besides the answers being as documented, a request the
# document allows must not be refused and one it forbids must not be accepted, undocumented
# methods must get 405, and the stateful phase follows the document's links.
CHECKS = "all"
# The routes whose 500 is a failed execution (documented), not a server fault.
RUN_ROUTES_REGEX = r"^/api/(workflows/\{id\}/execute|executions/\{id\}/retry|hooks/\{path\})$"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until_up(base: str, server: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"fuzz: the server exited with {server.returncode} before it was up")
        try:
            if call(base, "GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"fuzz: the server was not up after {timeout:g} s")


def _node(node_id: str, node_type: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "node_type": node_type, "config": config}


SEED_WORKFLOWS = [
    {
        "id": "fuzz-echo",
        "name": "Echo",
        "nodes": [_node("say", "transform.template", template="hi {name}"), _node("log", "debug.log")],
        "connections": [{"from_node": "say", "from_port": "text", "to_node": "log", "to_port": "message"}],
        "triggers": [
            {"id": "hook", "trigger_type": {"type": "Webhook", "path": "fuzz-echo"}},
            {"id": "yearly", "trigger_type": {"type": "Cron", "expression": "0 0 1 1 *"}},
        ],
    },
    {
        "id": "fuzz-fail",
        "name": "Always fails",
        "nodes": [_node("parse", "transform.json_parse", json="{not json")],
        "triggers": [{"id": "hook", "trigger_type": {"type": "Webhook", "path": "fuzz-fail"}}],
    },
    {
        "id": "fuzz-signed",
        "name": "Signed webhook",
        "nodes": [_node("log", "debug.log")],
        "triggers": [
            {
                "id": "hook",
                "trigger_type": {"type": "Webhook", "path": "fuzz/signed", "secret": "fuzz-secret-0123456789"},
            }
        ],
    },
]


def seed(base: str) -> dict[str, list[str]]:
    """Register the seed workflows and run them; return the ids that now exist."""
    for document in SEED_WORKFLOWS:
        status, body = call(base, "POST", "/api/workflows", document)
        if status != 201:
            raise SystemExit(f"fuzz: registering {document['id']} answered {status}: {body}")
    executions = []
    for workflow_id, inputs, expected in (("fuzz-echo", {"name": "Ada"}, 200), ("fuzz-fail", {}, 500)):
        for _ in range(2):
            status, body = call(base, "POST", f"/api/workflows/{workflow_id}/execute", {"inputs": inputs})
            if status != expected:
                raise SystemExit(f"fuzz: executing {workflow_id} answered {status}: {body}")
            executions.append(body["execution_id"])
    return {
        "workflow-ids": [document["id"] for document in SEED_WORKFLOWS],
        "execution-ids": executions,
        "hook-paths": ["fuzz-echo", "fuzz-fail", "fuzz/signed"],
    }


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def write_config(path: Path, known: dict[str, list[str]]) -> None:
    """A schemathesis.toml: the run routes may answer 500, and known ids are drawn half the time."""
    lines = []
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml_list(values)}", ""]
    lines += [
        "[[operations]]",
        f"include-path-regex = {json.dumps(RUN_ROUTES_REGEX)}",
        'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "500"]',
        "",
    ]
    # A document can be schema-valid and still not a workflow: an unknown node type, a connection
    # to a node or port that does not exist, a cycle, a cron expression that never fires. Those
    # graph rules are beyond JSON Schema; the server answers them 400 naming the JSON path. The
    # state decides 409 (a webhook path taken) and 412 (If-None-Match: * on an id that is taken).
    lines += [
        "[[operations]]",
        'include-operation-id = ["createWorkflow", "replaceWorkflow"]',
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]',
        "",
    ]
    bindings = (
        (r"^/api/workflows/\{id\}", "path.id", "workflow-ids"),
        (r"^/api/executions/\{id\}", "path.id", "execution-ids"),
        (r"^/api/hooks/\{path\}$", "path.path", "hook-paths"),
    )
    for regex, parameter, dictionary in bindings:
        lines += [
            "[[operations]]",
            f"include-path-regex = {json.dumps(regex)}",
            f'parameters = {{ "{parameter}" = {{ dictionary = "{dictionary}", probability = 0.5 }} }}',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def schemathesis_command(args: argparse.Namespace, config: Path, schema_url: str, report_dir: Path) -> list[str]:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if executable is None:
        raise SystemExit("fuzz: schemathesis is not installed (pip install schemathesis)")
    command = [
        executable,
        "--config-file",
        str(config),
        "run",
        schema_url,
        "--checks",
        CHECKS,
        "--exclude-path",
        "/api/events",
        "--max-examples",
        str(args.max_examples),
        "--max-time",
        str(args.max_time),
        "--request-timeout",
        "10",
        "--workers",
        str(args.workers),
        "--generation-database",
        "none",
        "--report",
        "ndjson",
        "--report-dir",
        str(report_dir),
        "--no-color",
    ]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    if args.phases:
        command += ["--phases", args.phases]
    return command + list(args.extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short bounded run for CI")
    parser.add_argument("--max-examples", type=int, help="test cases per operation (default 100, quick 15)")
    parser.add_argument("--max-time", type=int, help="seconds for the whole Schemathesis run (default 300, quick 40)")
    # One worker: with several, Hypothesis parses lambdas from threads at once, which CPython
    # 3.11's ast can fail ("AST constructor recursion depth mismatch"), a false error.
    parser.add_argument("--workers", default="1", help="concurrent Schemathesis workers (default 1)")
    parser.add_argument("--seed", type=int, help="Schemathesis seed, to replay a run")
    parser.add_argument("--phases", help="e.g. examples,coverage,fuzzing,stateful (default: all)")
    parser.add_argument("extra", nargs="*", help="more schemathesis run arguments, after --")
    args = parser.parse_args(argv)
    if args.max_examples is None:
        args.max_examples = 15 if args.quick else 100
    if args.max_time is None:
        args.max_time = 40 if args.quick else 300

    with tempfile.TemporaryDirectory(prefix="flowengine-fuzz-") as scratch:
        scratch_dir = Path(scratch)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "FLOWENGINE_DB": str(scratch_dir / "fuzz.db"),
            "BIND_ADDRESS": f"127.0.0.1:{port}",
            "LOG_LEVEL": "warn",
            "FLOWENGINE_ENABLE_SHELL": "0",
            "FLOWENGINE_PLUGINS": "",
        }
        for name in ("FLOWENGINE_API_KEYS", "FLOWENGINE_JWT_SECRET", "FLOWENGINE_RATE_LIMIT"):
            env.pop(name, None)  # fuzz the default, open server
        log_path = scratch_dir / "server.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, str(HERE / "sandbox.py")], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_until_up(base, server)
                known = seed(base)
                config = scratch_dir / "schemathesis.toml"
                write_config(config, known)
                command = schemathesis_command(args, config, f"{base}/openapi.json", scratch_dir / "report")
                print("fuzz:", " ".join(command[:1] + command[3:]), flush=True)
                code = subprocess.call(command, cwd=scratch)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        server_log = log_path.read_text(encoding="utf-8", errors="replace")
        # flowengine logs an ERROR with a traceback for every internal error and node-body bug:
        # one is a finding even if no response showed it (a background execution, say).
        # aiohttp's own parser errors (a NUL byte in a header, ...) are answered 400 and not ours.
        faults = [line for line in server_log.splitlines() if " ERROR flowengine" in line]
        if faults:
            code = code or 1
        if code != 0 and server_log.strip():
            print("\n--- server log (last 20,000 characters) ---\n" + server_log[-20_000:], flush=True)
    print(f"fuzz: {'no findings' if code == 0 else 'FINDINGS (exit %d)' % code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
