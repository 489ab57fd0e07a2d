"""Both servers in one run, with the same load generator, interleaved repeat by repeat.

For each server (flowengine, and n8n once per expression engine asked for):
- idle RSS of the whole process tree once the workflows are loaded;
- the ``set`` webhook under 32 concurrent clients: requests/s, latency p50 / p99, and server CPU
  per request, the whole tree's user + system time from /proc over the run;
- the 40-step ``chain`` webhook with one client: latency p50;
- RSS of the tree after 10,000 more executions of the ``set`` webhook.
Servers run pinned to CPU 0, the load generator to CPU 1; figures are medians over the repeats.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import Server, flowengine_server, http_json
from ..loadgen import LoadResult, run_load, run_requests
from . import workflows
from .install import Peer
from .n8n import N8nServer
from .proctree import tree_cpu_seconds, tree_rss_kib

__all__ = ["Side", "describe", "measure_peers"]

BODY = {"message": "hello"}
SETTLE_SECONDS = 2.0  # idle before reading RSS: history writes land, collections run
WEBHOOK_TIMEOUT = 120.0  # n8n answers 404 until its published workflows are registered
EXECUTION_CHUNK = 2_000  # executions per load-generator run (slow servers need many minutes)
MIN_REQUESTS = 200  # answers in one timed run at least (32 clients)
MIN_CHAIN_REQUESTS = 30  # answers in one timed chain run at least (1 client)
MAX_RUN_SECONDS = 30
QUIESCE_TIMEOUT = 120.0
IDLE_CPU = 0.1  # share of a core below which a server counts as idle


@dataclass
class Side:
    """One server's figures."""

    name: str
    pid: int
    set_url: str
    chain_url: str
    throughput: list[LoadResult] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # tree CPU per request, per run
    chain: list[LoadResult] = field(default_factory=list)
    rss_idle_kib: int = 0
    rss_after_kib: int = 0
    executions: int = 0  # counted by the load generator before the last RSS reading
    errors: int = 0  # requests of the timed runs that failed or timed out

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self.median([run.rps for run in self.throughput])

    @property
    def p50_ms(self) -> float:
        return self.median([run.p50_ms for run in self.throughput])

    @property
    def p99_ms(self) -> float:
        return self.median([run.p99_ms for run in self.throughput])

    @property
    def server_us(self) -> float:
        return self.median(self.cpu_us)

    @property
    def chain_p50_ms(self) -> float:
        return self.median([run.p50_ms for run in self.chain])


def _check(side: Side, url: str) -> None:
    status, body = http_json("POST", url, BODY, timeout=60)
    if status != 200:
        raise RuntimeError(f"{side.name}: {url} answered {status}: {body}")


def _timed_load(side: Side, url: str, seconds: int, connections: int) -> tuple[LoadResult, float]:
    before = tree_cpu_seconds(side.pid)
    result = run_load(url, BODY, seconds=seconds, connections=connections)
    cpu = tree_cpu_seconds(side.pid) - before
    if not result.requests:
        raise RuntimeError(f"{side.name} {url}: no answer in {seconds} s ({result.errors} failed)")
    # A server too slow for 32 clients has requests time out (wrk gives up after 10 s, the
    # Python generator after 30 s): counted and reported, not fatal; the other answers of the
    # run still measure it.
    side.errors += result.errors
    _quiesce(side)
    return result, cpu


def _quiesce(side: Side) -> None:
    """Wait until the server has finished what the last run left in flight: a slow server is
    still executing the requests the load generator gave up on when its run ended, and that
    work must not be charged to the next run."""
    deadline = time.monotonic() + QUIESCE_TIMEOUT
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(side.pid)
        time.sleep(0.5)
        if tree_cpu_seconds(side.pid) - before < IDLE_CPU * 0.5:
            return


def _warm_up(side: Side, url: str, seconds: int, connections: int, requests: int, at_least: int) -> int:
    """A run that is not measured; the seconds a timed run needs for at least ``requests``
    answers at its rate (a server that answers 13 requests a second needs longer runs than one
    that answers thousands)."""
    result = run_load(url, BODY, seconds=seconds, connections=connections)
    _quiesce(side)
    if not result.requests:
        return MAX_RUN_SECONDS
    return min(MAX_RUN_SECONDS, max(at_least, math.ceil(requests / result.rps)))


@contextlib.contextmanager
def _flowengine(tmp: Path, loop: str) -> Iterator[Side]:
    server: Server = flowengine_server("peers-flowengine", str(tmp / "flowengine.db"), plugins="", FLOWENGINE_LOOP=loop)
    with server:
        for document in (workflows.flowengine_set(), workflows.flowengine_chain()):
            status, body = http_json("POST", f"{server.url}/api/workflows", document)
            if status != 201:
                raise RuntimeError(f"registering {document['id']} gave {status}: {body}")
        yield Side("flowengine", server.pid, f"{server.url}/api/hooks/{workflows.SET_PATH}",
                   f"{server.url}/api/hooks/{workflows.CHAIN_PATH}")


@contextlib.contextmanager
def _n8n(peer: Peer, tmp: Path, engine: str) -> Iterator[Side]:
    extra = {"N8N_EXPRESSION_ENGINE": "legacy"} if engine == "legacy" else {}
    server = N8nServer(peer, tmp / f"n8n-{engine}", extra_env=extra)
    server.import_workflows([workflows.n8n_set(), workflows.n8n_chain()])
    with server:
        name = "n8n" if engine == "default" else f"n8n ({engine} expressions)"
        side = Side(name, server.pid, f"{server.url}/webhook/{workflows.SET_PATH}",
                    f"{server.url}/webhook/{workflows.CHAIN_PATH}")
        # n8n reports ready before it has registered the published workflows' webhooks.
        deadline = time.monotonic() + WEBHOOK_TIMEOUT
        for url in (side.set_url, side.chain_url):
            while http_json("POST", url, BODY, timeout=60)[0] == 404 and time.monotonic() < deadline:
                time.sleep(0.5)
        yield side


def measure_peers(
    peer: Peer,
    *,
    engines: tuple[str, ...],
    repeats: int,
    seconds: int,
    warmup_seconds: int,
    executions: int,
    loop: str,
    progress: Callable[[str], None],
) -> list[Side]:
    with tempfile.TemporaryDirectory(prefix="flowengine-peers-") as tmp, contextlib.ExitStack() as stack:
        progress("starting flowengine")
        sides = [stack.enter_context(_flowengine(Path(tmp), loop))]
        for engine in engines:
            progress(f"importing and publishing the workflows in n8n ({engine} expressions), starting it")
            sides.append(stack.enter_context(_n8n(peer, Path(tmp), engine)))
        for side in sides:
            _check(side, side.set_url)
            _check(side, side.chain_url)
        time.sleep(SETTLE_SECONDS)
        for side in sides:
            side.rss_idle_kib = tree_rss_kib(side.pid)

        progress("warm-up")
        durations = {}
        for side in sides:
            durations[side.name] = (
                _warm_up(side, side.set_url, warmup_seconds, 32, MIN_REQUESTS, seconds),
                _warm_up(side, side.chain_url, warmup_seconds, 1, MIN_CHAIN_REQUESTS, seconds),
            )
        for repeat in range(repeats):
            progress(f"webhook -> set -> answer (32 clients) and the {workflows.CHAIN_STEPS}-step chain (1 client), "
                     f"repeat {repeat + 1}/{repeats}")
            for side in sides:
                result, cpu = _timed_load(side, side.set_url, durations[side.name][0], 32)
                side.throughput.append(result)
                side.cpu_us.append(cpu / result.requests * 1e6)
            for side in sides:
                side.chain.append(_timed_load(side, side.chain_url, durations[side.name][1], 1)[0])

        for side in sides:
            progress(f"{side.name}: {executions:,} executions, then RSS")
            done = 0
            while done < executions:
                chunk = min(EXECUTION_CHUNK, executions - done)
                result = run_requests(side.set_url, BODY, requests=chunk, connections=32)
                if result.errors == result.requests:
                    raise RuntimeError(f"{side.name}: all {result.requests} executions failed")
                done += result.requests - result.errors
            _quiesce(side)
            time.sleep(SETTLE_SECONDS)
            side.rss_after_kib = tree_rss_kib(side.pid)
            side.executions = done
        return sides


def describe(sides: list[Side]) -> dict[str, Any]:
    """The figures as plain data (for a JSON dump next to the tables)."""
    return {side.name: {"rps": side.rps, "p50_ms": side.p50_ms, "p99_ms": side.p99_ms, "server_us": side.server_us,
                        "chain_p50_ms": side.chain_p50_ms, "rss_idle_kib": side.rss_idle_kib,
                        "rss_after_kib": side.rss_after_kib, "executions": side.executions,
                        "timed_run_errors": side.errors}
            for side in sides}

