"""Measurements 3, 4 and 6, over HTTP against server subprocesses on 127.0.0.1.

3. ``POST /api/workflows/{id}/execute`` of a one-node no-op workflow, 32 concurrent clients:
   flowengine with SQLite history (answers after the commit, the default; and with
   FLOWENGINE_HISTORY_ACK=async, answers at once) and with ``:memory:``, against the bare
   aiohttp handler of ``bench.bare_server`` (same body, same response shape, same load generator).
4. The same on the SQLite server with 0, 1 and 100 WebSocket listeners on /api/events, held and
   read by a separate process; throughput against 0 listeners, and events delivered per second.
5. (memory) lives in ``memory_bench``.
6. A chain of 40 no-op nodes executed end to end, one request at a time: per-node time against
   the bare handler awaiting a chain of 40 bare asyncio tasks.

Measurement 3 runs in rounds (15 in the full profile), each one load run of every server with the
SQLite server right next to the baseline, every other round in reverse order; measurement 4's
listener runs follow the SQLite server's run in the first ``repeats`` rounds. Absolute figures
are medians over the runs; a ratio is the median of the rounds' own ratios (each run against
its baseline's run of the same round, seconds apart). Single load runs of one server on a shared
2-core machine were seen to move by a third from one second to the next, so the figure with a
target gets more pairs than the others.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import workflows
from .common import LOOPBACK, REPO, Profile, Server, bare_server, flowengine_server, http_json, median, pin, register
from .loadgen import LoadResult, run_load, run_requests

__all__ = ["Series", "HttpResults", "measure_http"]

WORKFLOW_ID = "bench-one-node"
CHAIN_ID = "bench-chain-40"
CHAIN_ONE_ID = "bench-chain-1"
CHAIN_LENGTH = 40
BODY = {"inputs": {"message": "hello"}}
HISTORY_FILL = 10_500  # executions before measuring: past the default retention of 10,000
FLOWENGINE_THROUGHPUT = ("sqlite", "sqlite-async", "memory")  # servers of measurement 3


@dataclass
class Series:
    """Repeated load runs of one configuration; figures are medians."""

    name: str
    runs: list[LoadResult] = field(default_factory=list)
    events: list[float] = field(default_factory=list)  # events delivered per second, per run
    dropped: int = 0  # listeners the server closed for falling behind

    def _median(self, pick: Callable[[LoadResult], float]) -> float:
        return median([pick(run) for run in self.runs])

    @property
    def rps(self) -> float:
        return self._median(lambda run: run.rps)

    @property
    def p50_ms(self) -> float:
        return self._median(lambda run: run.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self._median(lambda run: run.p99_ms)

    @property
    def server_us(self) -> float:
        return self._median(lambda run: run.server_us_per_request)

    @property
    def server_busy(self) -> float:
        return self._median(lambda run: run.server_busy)

    @property
    def client_cpu(self) -> float:
        return self._median(lambda run: run.client_cpu_share)

    @property
    def events_per_s(self) -> float:
        return median(self.events) if self.events else 0.0

    def rps_ratios(self, baseline: Series) -> list[float]:
        """Requests per second against the baseline's, round by round (the runs are paired)."""
        return [run.rps / base.rps for run, base in zip(self.runs, baseline.runs, strict=True)]

    def cpu_ratios(self, baseline: Series) -> list[float]:
        """The baseline's server CPU per request against this one's (the throughput ratio both
        would reach with a whole core each), round by round."""
        pairs = zip(self.runs, baseline.runs, strict=True)
        return [base.server_us_per_request / run.server_us_per_request for run, base in pairs]

    def rps_vs(self, baseline: Series) -> float:
        """The median of ``rps_ratios``."""
        return median(self.rps_ratios(baseline))

    def cpu_vs(self, baseline: Series) -> float:
        """The median of ``cpu_ratios``."""
        return median(self.cpu_ratios(baseline))


@dataclass
class HttpResults:
    throughput: dict[str, Series]  # "bare", "sqlite", "sqlite-async", "memory"
    listeners: dict[int, Series]  # listener count -> series (0 is the SQLite server alone)
    chain: dict[str, Series]  # "bare-40", "flowengine-40", "bare-1", "flowengine-1"


class _Listeners:
    """The ``bench.ws_listeners`` process, pinned with the load generator to CPU 1."""

    def __init__(self, server: Server, count: int) -> None:
        self.process = subprocess.Popen(
            [*pin(1), sys.executable, "-m", "bench.ws_listeners", LOOPBACK, str(server.port), str(count),
             "--max-seconds", "300"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True,
        )
        line = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        if line != "ready":
            self.close()
            raise RuntimeError(f"listener process did not start: {line!r}")

    def count(self) -> dict[str, int]:
        self.process.stdin.write("count\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.process.stdin.write("stop\n")  # type: ignore[union-attr]
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _check_shapes(servers: dict[str, Server]) -> None:
    """Both sides answer 200 with the same top-level fields (the baseline is fair)."""
    shapes = {}
    for name, server in servers.items():
        status, body = http_json("POST", f"{server.url}/api/workflows/{WORKFLOW_ID}/execute", BODY)
        if status != 200 or body.get("status") != "succeeded":
            raise RuntimeError(f"{name}: execute answered {status}: {body}")
        shapes[name] = sorted(body)
    if len({tuple(shape) for shape in shapes.values()}) != 1:
        raise RuntimeError(f"response shapes differ: {shapes}")


def _load(server: Server, path: str, profile: Profile, *, connections: int, seconds: int | None = None) -> LoadResult:
    result = run_load(
        f"{server.url}{path}", BODY, seconds=seconds or profile.load_seconds,
        connections=connections, server_pid=server.pid,
    )
    if result.errors:
        raise RuntimeError(f"{server.name} {path}: {result.errors} failed requests out of {result.requests}")
    return result


@contextlib.contextmanager
def _servers(tmp: Path) -> Iterator[dict[str, Server]]:
    """Both flowengine servers with the workflows registered, then the baseline answering
    with the shape of a real flowengine response."""
    with contextlib.ExitStack() as stack:
        servers = {
            "sqlite": stack.enter_context(flowengine_server("flowengine-sqlite", str(tmp / "history.db"))),
            "sqlite-async": stack.enter_context(
                flowengine_server("flowengine-sqlite-async", str(tmp / "async.db"), FLOWENGINE_HISTORY_ACK="async")
            ),
            "memory": stack.enter_context(flowengine_server("flowengine-memory", ":memory:")),
        }
        for name in FLOWENGINE_THROUGHPUT:
            register(servers[name], workflows.one_node_set(WORKFLOW_ID))
        register(servers["sqlite"], workflows.chain(CHAIN_LENGTH, "bench.noop", CHAIN_ID))
        register(servers["sqlite"], workflows.chain(1, "bench.noop", CHAIN_ONE_ID))
        status, template = http_json("POST", f"{servers['sqlite'].url}/api/workflows/{WORKFLOW_ID}/execute", BODY)
        if status != 200:
            raise RuntimeError(f"flowengine execute answered {status}: {template}")
        servers["bare"] = stack.enter_context(bare_server(template))
        _check_shapes(servers)
        yield servers


def measure_http(profile: Profile, progress: Callable[[str], None] = lambda _: None) -> HttpResults:
    with tempfile.TemporaryDirectory(prefix="flowengine-bench-") as tmp, _servers(Path(tmp)) as servers:
        execute = f"/api/workflows/{WORKFLOW_ID}/execute"
        bare_execute = "/api/workflows/any/execute"
        connections = profile.connections

        progress("warm-up (flowengine: history filled to its retention limit)")
        _load(servers["bare"], bare_execute, profile, connections=connections, seconds=profile.warmup_seconds)
        for name in FLOWENGINE_THROUGHPUT:
            # Fill the history past the retention limit so every measured run is in the steady
            # state: a full history that is pruned as it grows, as on a long-running server.
            warm = run_requests(f"{servers[name].url}{execute}", BODY, requests=HISTORY_FILL, connections=connections)
            if warm.errors:
                raise RuntimeError(f"{name}: {warm.errors} failed requests while warming up")

        throughput = {name: Series(name) for name in ("bare", *FLOWENGINE_THROUGHPUT)}
        listeners = {count: Series(f"{count} listeners") for count in (0, *profile.listener_counts)}
        for round_number in range(profile.throughput_rounds):
            listened = round_number < profile.repeats  # listener runs: the first ``repeats`` rounds
            progress(
                f"throughput round {round_number + 1}/{profile.throughput_rounds}"
                + (f", with listeners {round_number + 1}/{profile.repeats}" if listened else "")
            )
            # Every other round in reverse order (bare, SQLite, ... then ..., SQLite, bare): the
            # SQLite server always runs right next to the baseline, and a machine slowing down
            # or speeding up through a round favours neither side over the whole run.
            forward = round_number % 2 == 0
            order = ["bare", *FLOWENGINE_THROUGHPUT] if forward else [*reversed(FLOWENGINE_THROUGHPUT), "bare"]
            for name in order:
                if name == "sqlite":
                    _sqlite_runs(servers[name], execute, profile, throughput[name], listeners if listened else None, forward)
                else:
                    path = bare_execute if name == "bare" else execute
                    throughput[name].runs.append(_load(servers[name], path, profile, connections=connections))

        progress("40-node chain")
        chain = {name: Series(name) for name in ("bare-1", "flowengine-1", "bare-40", "flowengine-40")}
        cases = {
            "bare-1": (servers["bare"], f"{bare_execute}?chain=1"),
            "flowengine-1": (servers["sqlite"], f"/api/workflows/{CHAIN_ONE_ID}/execute"),
            "bare-40": (servers["bare"], f"{bare_execute}?chain={CHAIN_LENGTH}"),
            "flowengine-40": (servers["sqlite"], f"/api/workflows/{CHAIN_ID}/execute"),
        }
        for name, (server, path) in cases.items():  # the servers are warm: this builds the plans
            for _ in range(20):
                status, body = http_json("POST", f"{server.url}{path}", BODY)
                if status != 200:
                    raise RuntimeError(f"{name}: execute answered {status}: {body}")
        for _ in range(profile.repeats):
            for name, (server, path) in cases.items():
                chain[name].runs.append(_load(server, path, profile, connections=1))
        return HttpResults(throughput, listeners, chain)


def _sqlite_runs(
    server: Server, path: str, profile: Profile, alone: Series, listeners: dict[int, Series] | None, forward: bool
) -> None:
    """A run of the SQLite server alone and, given ``listeners``, one with each count of
    listeners, which are compared with it: after it in a forward round, before it in a reversed
    one, so that the run alone stays next to the baseline's."""
    def listened_runs() -> None:
        if listeners is not None:
            for count in profile.listener_counts:
                _listened_run(server, path, profile, count, listeners[count])

    if not forward:
        listened_runs()
    result = _load(server, path, profile, connections=profile.connections)
    alone.runs.append(result)
    if listeners is not None:
        listeners[0].runs.append(result)
    if forward:
        listened_runs()


def _listened_run(server: Server, path: str, profile: Profile, count: int, series: Series) -> None:
    holder = _Listeners(server, count)
    try:
        before = holder.count()
        result = _load(server, path, profile, connections=profile.connections)
        after = holder.count()
    finally:
        holder.close()
    series.runs.append(result)
    series.events.append((after["received"] - before["received"]) / result.seconds)
    series.dropped += after["closed"]
