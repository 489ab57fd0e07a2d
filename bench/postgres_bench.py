"""Measurement 8: flowengine on PostgreSQL, against SQLite in the same run.

a. One process, ``POST /api/workflows/{id}/execute`` (one no-op node, answers after the commit,
   32 connections): SQLite (default, and with an fsync per commit) vs PostgreSQL, requests per second and the flowengine process's CPU
   per request; for PostgreSQL also the database's own CPU per request (the postmaster and all
   its children, from /proc).
b. One vs two flowengine processes on the same PostgreSQL database, the load split over both:
   flowengine CPU per request (both processes together) and PostgreSQL's.
c. ``?wait=false`` latency (p50/p99, 8 connections) against a bare durable INSERT of a row of
   the same size from asyncpg at the same concurrency (``synchronous_commit=on``, one
   transaction per INSERT), in the same run.

The cluster is a throwaway one from the PostgreSQL binaries (tests/support/postgres.py) with
fsync on; ``BENCH_PG_URL`` uses an existing server instead (its CPU is then not measured).
Runs are interleaved per repeat; medians are reported.

Where each part runs on two cores: every flowengine process on CPU 0, as in the other
measurements, and the database on CPU 1 with the load generator, as if on a machine of its own
(it is one in any deployment the PostgreSQL store is for). Left on both cores, the database's
own CPU per execution is taken from flowengine's core and the comparison by requests measures
that competition rather than the store. Two processes are measured twice: each with the load one
process gets alone (the cost of sharing the database, what scaling out adds) and with that load
split over both (each group commit then carries half as many executions).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import workflows
from .common import PINNING, REPO, Profile, Server, cpu_seconds, flowengine_server, median, register
from .loadgen import LoadResult, run_load, run_requests

__all__ = ["MissingPostgres", "PostgresResults", "measure_postgres", "render", "summary_rows"]

WORKFLOW_ID = "bench-one-node"
BODY = {"inputs": {"message": "hello"}}
LATENCY_CONNECTIONS = 8


class MissingPostgres(RuntimeError):
    """No PostgreSQL binaries (or asyncpg) on this machine."""


@dataclass
class Case:
    """Load runs of one configuration: requests, seconds and CPU seconds (flowengine, database)."""

    name: str
    rps: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)
    db_us: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)

    def add(self, requests: int, seconds: float, server_cpu: float, db_cpu: float | None, p50: float, p99: float) -> None:
        self.rps.append(requests / seconds)
        self.server_us.append(server_cpu / requests * 1e6)
        if db_cpu is not None:
            self.db_us.append(db_cpu / requests * 1e6)
        self.p50_ms.append(p50)
        self.p99_ms.append(p99)

    def figure(self, name: str) -> float:
        values = getattr(self, name)
        return median(values) if values else float("nan")


@dataclass
class PostgresResults:
    cases: dict[str, Case]
    own_cluster: bool


def _database_pids(postmaster: int | None) -> list[int]:
    if postmaster is None:
        return []
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rpartition(")")[2].split()[1]) == postmaster:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def _database_cpu(postmaster: int | None) -> float | None:
    """CPU seconds of the postmaster and its children so far (None: not our cluster)."""
    if postmaster is None:
        return None
    total = 0.0
    for pid in _database_pids(postmaster):
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def _pin_database(postmaster: int | None) -> None:
    """Move the database (postmaster and the processes it has started) to CPU 1; processes it
    starts later inherit that."""
    if postmaster is None or not PINNING:
        return
    for pid in _database_pids(postmaster):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {1})


@contextlib.contextmanager
def _cluster() -> Iterator[tuple[Any, int | None]]:
    sys.path.insert(0, str(REPO / "tests"))
    from support.postgres import PostgresCluster, missing

    if os.environ.get("BENCH_PG_URL"):
        os.environ.setdefault("FLOWENGINE_TEST_PG_URL", os.environ["BENCH_PG_URL"])
    reason = missing()
    if reason is not None:
        raise MissingPostgres(f"PostgreSQL benchmark cannot run: {reason}")
    cluster = PostgresCluster(durable=True)
    cluster.start()
    try:
        postmaster = cluster.postmaster_pid()
        _pin_database(postmaster)
        yield cluster, postmaster
    finally:
        cluster.drop_databases()
        cluster.stop()


def _loads(targets: list[tuple[Server, str]], seconds: int, connections: int) -> list[LoadResult]:
    """Load every target at once (one generator each), ``connections`` each."""
    results: list[LoadResult | None] = [None] * len(targets)
    failures: list[BaseException] = []

    def one(index: int, server: Server, path: str) -> None:
        try:
            results[index] = run_load(
                f"{server.url}{path}", BODY, seconds=seconds, connections=connections, server_pid=server.pid
            )
        except BaseException as exc:  # handed to the main thread
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(index, *target)) for index, target in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    done = [result for result in results if result is not None]
    for result, (server, path) in zip(done, targets):
        if result.errors:
            raise RuntimeError(f"{server.name} {path}: {result.errors} failed requests out of {result.requests}")
    return done


def _run(case: Case, targets: list[tuple[Server, str]], postmaster: int | None, seconds: int, connections: int) -> None:
    db_before = _database_cpu(postmaster)
    results = _loads(targets, seconds, connections)
    db_after = _database_cpu(postmaster)
    requests = sum(result.requests for result in results)
    elapsed = max(result.seconds for result in results)
    server_cpu = sum(result.server_cpu_s for result in results)
    db_cpu = None if db_before is None or db_after is None else db_after - db_before
    case.add(requests, elapsed, server_cpu, db_cpu, median([r.p50_ms for r in results]), max(r.p99_ms for r in results))


async def _bare_inserts(url: str, seconds: float, connections: int, size: int) -> tuple[int, float, float, float]:
    """Durable INSERTs (own transaction each) from ``connections`` clients: count, seconds, p50, p99 ms."""
    import asyncpg

    setup = await asyncpg.connect(url)
    await setup.execute("CREATE TABLE IF NOT EXISTS bench_bare (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text)")
    await setup.close()
    payload = "x" * size
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        connection = await asyncpg.connect(url)
        await connection.execute("SET synchronous_commit = on")
        try:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                await connection.execute("INSERT INTO bench_bare (body) VALUES ($1)", payload)
                latencies.append(time.perf_counter() - began)
        finally:
            await connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return len(latencies), elapsed, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def measure_postgres(profile: Profile, progress: Callable[[str], None] = lambda _: None) -> PostgresResults:
    cases = {
        name: Case(name)
        for name in (
            "sqlite-1", "sqlite-2-control", "sqlite-full-1", "postgres-1", "postgres-2", "postgres-2-split",
            "postgres-async-202", "bare-insert",
        )
    }
    execute = f"/api/workflows/{WORKFLOW_ID}/execute"
    with _cluster() as (cluster, postmaster), tempfile.TemporaryDirectory(prefix="flowengine-bench-pg-") as tmp, contextlib.ExitStack() as stack:
        url = cluster.create_database()
        sqlite = stack.enter_context(flowengine_server("flowengine-sqlite", str(Path(tmp) / "history.db")))
        # A second SQLite server with its own file: two processes that share nothing but CPU 0,
        # the control for what two processes on one core cost without any shared database.
        sqlite_b = stack.enter_context(flowengine_server("flowengine-sqlite-b", str(Path(tmp) / "history-b.db")))
        # SQLite with an fsync per commit, as PostgreSQL does: the like-for-like durability.
        sqlite_full = stack.enter_context(
            flowengine_server("flowengine-sqlite-full", str(Path(tmp) / "full.db"), FLOWENGINE_DB_SYNCHRONOUS="full")
        )
        first = stack.enter_context(flowengine_server("flowengine-pg-a", url))
        second = stack.enter_context(flowengine_server("flowengine-pg-b", url))
        for server in (sqlite, sqlite_b, sqlite_full, first):
            register(server, workflows.one_node_set(WORKFLOW_ID))
        progress("9. warm-up (SQLite and PostgreSQL, 2,000 executions each)")
        for server in (sqlite, sqlite_b, sqlite_full, first, second):
            warm = run_requests(f"{server.url}{execute}", BODY, requests=2_000, connections=profile.connections)
            if warm.errors:
                raise RuntimeError(f"{server.name}: {warm.errors} failed requests while warming up")
        seconds, connections = profile.load_seconds, profile.connections
        for round_number in range(profile.repeats):
            progress(f"9. PostgreSQL vs SQLite, 1 vs 2 processes, repeat {round_number + 1}/{profile.repeats}")
            _run(cases["sqlite-1"], [(sqlite, execute)], None, seconds, connections)
            _run(cases["sqlite-2-control"], [(sqlite, execute), (sqlite_b, execute)], None, seconds, connections)
            _run(cases["sqlite-full-1"], [(sqlite_full, execute)], None, seconds, connections)
            _run(cases["postgres-1"], [(first, execute)], postmaster, seconds, connections)
            both = [(first, execute), (second, execute)]
            _run(cases["postgres-2"], both, postmaster, seconds, connections)
            _run(cases["postgres-2-split"], both, postmaster, seconds, connections // 2)
            _run(cases["postgres-async-202"], [(first, f"{execute}?wait=false")], postmaster, seconds, LATENCY_CONNECTIONS)
            count, elapsed, p50, p99 = asyncio.run(_bare_inserts(url, seconds, LATENCY_CONNECTIONS, 200))
            cases["bare-insert"].add(count, elapsed, 0.0, None, p50, p99)
    return PostgresResults(cases, own_cluster=postmaster is not None)


def _control(cases: dict[str, Case]) -> float:
    """CPU per request of two unrelated SQLite processes on one core against one alone."""
    return cases["sqlite-2-control"].figure("server_us") / cases["sqlite-1"].figure("server_us")


def render(results: PostgresResults, table: Callable[[list[str], list[list[Any]]], str]) -> str:
    cases = results.cases
    rows = []
    labels = {
        "sqlite-1": "SQLite, 1 process, execute (32 connections)",
        "sqlite-2-control": "SQLite, 2 processes with a file each, execute (32 + 32 connections; the control)",
        "sqlite-full-1": "SQLite with FLOWENGINE_DB_SYNCHRONOUS=full (fsync per commit), same",
        "postgres-1": "PostgreSQL, 1 process, execute (32 connections)",
        "postgres-2": "PostgreSQL, 2 processes, execute (32 + 32 connections: each the load of one alone)",
        "postgres-2-split": "PostgreSQL, 2 processes, execute (16 + 16 connections: one process's load split)",
        "postgres-async-202": f"PostgreSQL, 1 process, execute ?wait=false ({LATENCY_CONNECTIONS} connections)",
        "bare-insert": f"bare durable INSERT from asyncpg ({LATENCY_CONNECTIONS} connections, 200-byte row)",
    }
    for name, label in labels.items():
        case = cases[name]
        rows.append([
            label, f"{case.figure('rps'):,.0f}",
            "" if name == "bare-insert" else f"{case.figure('server_us'):.0f}",
            f"{case.figure('db_us'):.0f}" if case.db_us else "",
            f"{case.figure('p50_ms'):.2f}", f"{case.figure('p99_ms'):.2f}",
        ])  # fmt: skip
    sqlite, pg1, pg2 = cases["sqlite-1"], cases["postgres-1"], cases["postgres-2"]
    ratios = [
        ["PostgreSQL / SQLite, requests per second (target ≥ 0.9x)", f"{pg1.figure('rps') / sqlite.figure('rps'):.2f}x"],
        ["SQLite / PostgreSQL, flowengine CPU per request (target ≥ 0.9x)", f"{sqlite.figure('server_us') / pg1.figure('server_us'):.2f}x"],
        ["PostgreSQL / SQLite with an fsync per commit (synchronous=full), requests per second", f"{pg1.figure('rps') / cases['sqlite-full-1'].figure('rps'):.2f}x"],
        ["SQLite / PostgreSQL, flowengine + database CPU per request", f"{sqlite.figure('server_us') / (pg1.figure('server_us') + pg1.figure('db_us')):.2f}x" if pg1.db_us else "n/a"],
        ["2 processes / 1 process, flowengine CPU per request (target ≤ 1.1x)", f"{pg2.figure('server_us') / pg1.figure('server_us'):.2f}x"],
        ["the control: 2 SQLite processes (nothing shared but CPU 0) / 1, flowengine CPU per request", f"{_control(cases):.2f}x"],
        ["2 processes / 1 on PostgreSQL, divided by the control's ratio: what sharing the database adds", f"{pg2.figure('server_us') / pg1.figure('server_us') / _control(cases):.2f}x"],
        ["2 processes / 1 process with the load split (16 + 16), flowengine CPU per request", f"{cases['postgres-2-split'].figure('server_us') / pg1.figure('server_us'):.2f}x"],
        ["?wait=false p50 / bare durable INSERT p50", f"{cases['postgres-async-202'].figure('p50_ms') / cases['bare-insert'].figure('p50_ms'):.2f}x"],
    ]  # fmt: skip
    return (
        "### 9. PostgreSQL (one database, fsync on, on CPU 1) vs SQLite, in the same run\n\n"
        + table(["configuration", "req/s", "flowengine CPU µs/request", "PostgreSQL CPU µs/request", "p50 ms", "p99 ms"], rows)
        + "\n\n"
        + table(["comparison", "figure"], ratios)
    )


def summary_rows(results: PostgresResults, holds: Callable[[bool], str]) -> list[list[Any]]:
    """The targets of measurement 8, for the summary table."""
    cases = results.cases
    sqlite, pg1, pg2 = cases["sqlite-1"], cases["postgres-1"], cases["postgres-2"]
    by_requests = pg1.figure("rps") / sqlite.figure("rps")
    by_cpu = sqlite.figure("server_us") / pg1.figure("server_us")
    scaling = pg2.figure("server_us") / pg1.figure("server_us")
    control = _control(cases)
    shared = scaling / control
    return [
        ["9. PostgreSQL vs SQLite, one process, by requests", f"{by_requests:.2f}x", "≥ 0.9x", holds(by_requests >= 0.9)],
        ["9. PostgreSQL vs SQLite, one process, by flowengine CPU per request", f"{by_cpu:.2f}x", "≥ 0.9x", holds(by_cpu >= 0.9)],
        ["9. 2 processes vs 1 on PostgreSQL, flowengine CPU per request, as measured", f"{scaling:.2f}x", "≤ 1.1x",
         holds(scaling <= 1.1)],
        # Two processes on one core cost more per request whatever they do (the control shares
        # nothing else): divided by the control, what remains is what sharing the database adds.
        ["9. the same divided by the control (2 SQLite processes on that core / 1)", f"{shared:.2f}x (control {control:.2f}x)",
         "≤ 1.1x", holds(shared <= 1.1)],
    ]
