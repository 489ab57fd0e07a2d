"""Shared plumbing: timing statistics, free ports, CPU pinning, server subprocesses, /proc.

Everything here talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "REPO",
    "LOOPBACK",
    "Profile",
    "QUICK",
    "FULL",
    "Server",
    "free_port",
    "stop_process",
    "wait_until_ready",
    "median",
    "pin",
    "cpu_seconds",
    "rss_kib",
    "http_json",
    "flowengine_server",
    "bare_server",
    "PINNING",
    "LOOP",
]

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# The event loop every server of a run uses, flowengine's and the baseline's alike, so that the
# ratios compare the same loop: asyncio's (the default install's) unless BENCH_LOOP=uvloop.
LOOP = os.environ.get("BENCH_LOOP", "asyncio")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Profile:
    """How hard to measure: repeats, sizes and durations for one run of the suite."""

    name: str
    repeats: int  # timed repeats after one warm-up; the median is reported
    # Load runs of each execute-throughput server (measurement 3), whose ratio against the
    # baseline has a target: single runs on a shared machine swing by a third within seconds,
    # so that ratio needs more pairs than the other figures to settle.
    throughput_rounds: int
    engine_nodes: int  # chain / fan-out size for measurement 1
    scaling_sizes: tuple[int, ...]  # DAG sizes for measurement 2
    load_seconds: int  # one load-generator run (wrk takes whole seconds)
    warmup_seconds: int
    memory_points: tuple[int, ...]  # executions done at each RSS reading (first and last compared)
    listener_counts: tuple[int, ...] = (1, 100)
    connections: int = 32


FULL = Profile("full", repeats=5, throughput_rounds=15, engine_nodes=10_000, scaling_sizes=(1_000, 10_000, 50_000),
               load_seconds=3, warmup_seconds=2, memory_points=(1_000, 5_000, 10_000, 15_000, 20_000))
QUICK = Profile("quick", repeats=3, throughput_rounds=3, engine_nodes=10_000, scaling_sizes=(1_000, 10_000),
                load_seconds=1, warmup_seconds=1, memory_points=(1_000, 10_000))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _pinning_possible() -> bool:
    try:
        available = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return False
    return shutil.which("taskset") is not None and {0, 1} <= available


PINNING = _pinning_possible()


def pin(cpu: int) -> list[str]:
    """A command prefix that pins a child to one CPU (server on 0, load generator on 1)."""
    return ["taskset", "-c", str(cpu)] if PINNING else []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        # The command name may hold spaces; the fields after the closing parenthesis do not.
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """A small blocking JSON request, for set-up only (never for the measured load)."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"benchmarks only talk to {LOOPBACK}: {url}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Server:
    """A server subprocess on a free loopback port, pinned to CPU 0, stopped on exit."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    start_timeout: float = 20.0  # seconds to answer /health
    stop_timeout: float = 10.0  # seconds to exit after SIGINT, before it is killed

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> "Server":
        # The repo root on PYTHONPATH lets the server import bench.noop_nodes as a plugin.
        python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": python_path, **self.env, "BIND_ADDRESS": f"{LOOPBACK}:{self.port}"}
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{self.name}-{self.port}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [*pin(0), *self.argv], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        if wait_until_ready(
            self.process, self._healthy, name=self.name, log_path=self.log_path, timeout=self.start_timeout, interval=0.05
        ):
            return self
        self.__exit__()
        raise RuntimeError(f"{self.name} did not answer /health within {self.start_timeout:g} s")

    def _healthy(self) -> bool:
        return http_json("GET", f"{self.url}/health", timeout=1)[0] == 200

    def __exit__(self, *exc_info: Any) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, timeout=self.stop_timeout, kill=self.process.kill)
        # The server's output is kept only when something went wrong, to read what.
        if exc_info[:1] == (None,) and self.process is not None and self.process.returncode == 0 and self.log_path:
            self.log_path.unlink(missing_ok=True)


def register(server: Server, document: dict[str, Any]) -> None:
    """Register a workflow document on a flowengine server (201, or a RuntimeError)."""
    status, body = http_json("POST", f"{server.url}/api/workflows", document)
    if status != 201:
        raise RuntimeError(f"{server.name}: registering {document['id']} gave {status}: {body}")


def wait_until_ready(
    process: subprocess.Popen, ready: Callable[[], bool], *, name: str, log_path: Path, timeout: float, interval: float
) -> bool:
    """Poll ``ready`` (an OSError counts as not yet) until it says so: True, or False after
    ``timeout`` seconds. A process that exits meanwhile is an error quoting the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start-up:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if ready():
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


def stop_process(process: subprocess.Popen, stop_signal: int, *, timeout: float, kill: Callable[[], None]) -> None:
    """Ask a server to stop with ``stop_signal``; ``kill`` it if it has not within ``timeout`` s."""
    if process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill()
        process.wait(timeout=10)


def flowengine_server(name: str, db: str, *, plugins: str = "bench.noop_nodes", **env: str) -> Server:
    """``python -m flowengine`` with warn-level logging and the bench no-op node types."""
    return Server(
        name,
        [sys.executable, "-m", "flowengine"],
        {"FLOWENGINE_DB": db, "LOG_LEVEL": "warn", "FLOWENGINE_PLUGINS": plugins, "FLOWENGINE_LOOP": LOOP, **env},
    )


def bare_server(response_template: dict[str, Any] | None = None) -> Server:
    """The baseline; ``response_template`` is a real flowengine execute response to mimic."""
    env = {"BENCH_RESPONSE_TEMPLATE": json.dumps(response_template)} if response_template else {}
    return Server("bare-aiohttp", [sys.executable, "-m", "bench.bare_server"], {"BENCH_LOOP": LOOP, **env})
