"""Markdown tables for the benchmark results, with each target and whether it holds."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from .common import PINNING, REPO, Profile, median
from .loadgen import GENERATOR

__all__ = ["render", "machine"]

ENGINE_TARGET = 1.5  # at most 1.5x asyncio.gather per node (first 4x; tightened for async no-op nodes)
SCALING_BAND = (7.0, 13.0)  # time per 10x more nodes: "near 10"
THROUGHPUT_TARGET = 0.5  # at least half the bare handler, SQLite history on
LISTENER_TARGET = 0.7  # 100 listeners cost at most 30% of throughput
LONG_CHAIN_TARGET = 4.0  # the 10,000-node time.delay chain: at most 4x bare asyncio per node
MEMORY_TARGET = 0.10  # under 10% RSS growth from 1,000 to 20,000 executions


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _quartiles(values: list[float]) -> str:
    """The middle half of a list of ratios, as "lower quartile to upper quartile"."""
    if len(values) < 4:
        return ", ".join(f"{value:.2f}x" for value in sorted(values))
    lower, _, upper = statistics.quantiles(values, n=4)
    return f"middle half {lower:.2f}x to {upper:.2f}x"


def _holds(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> list[tuple[str, str]]:
    import aiohttp

    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", _cpu_model()),
        ("Python", sys.version.split()[0]),
        ("aiohttp", aiohttp.__version__),
        ("flowengine commit", _commit()),
        ("load generator", GENERATOR),
        ("pinning", "server on CPU 0, generator and listeners on CPU 1 (taskset)" if PINNING else "none (taskset or a 2nd CPU missing)"),
    ]


def _per_10x(small: int, small_s: float, large: int, large_s: float) -> float:
    """Growth in time for 10x more nodes, from any two sizes (10.0 is exactly linear)."""
    return (large_s / small_s) ** (math.log(10) / math.log(large / small))


def render(profile: Profile, results: dict[str, Any], elapsed: float) -> str:
    out: list[str] = []
    summary: list[list[Any]] = []
    sections: list[str] = []

    if "engine" in results:
        rows, task_chain_us = results["engine"]
        detail = []
        for row in rows:
            ok = row.ratio <= ENGINE_TARGET
            summary.append([f"1. engine, {row.nodes:,}-node {row.shape}, {row.body} body",
                            f"{row.ratio:.2f}x gather ({row.us_per_node:.1f} µs/node)", f"≤ {ENGINE_TARGET:g}x", _holds(ok)])
            detail.append([f"{row.shape}, {row.body} body", f"{row.us_per_node:.2f}", f"{row.baseline_us_per_node:.2f}",
                           f"{row.ratio:.2f}x", f"{row.nogc_us_per_node:.2f}"])
        detail.append(["bare asyncio task chain (reference)", f"{task_chain_us:.2f}", f"{rows[0].baseline_us_per_node:.2f}",
                       f"{task_chain_us / rows[0].baseline_us_per_node:.2f}x", ""])
        sections.append(f"### 1. Engine overhead per node ({rows[0].nodes:,} no-op nodes, in process, events on, nobody listening)\n\n"
                        + table(["workflow", "µs/node", "asyncio.gather µs/coroutine", "ratio", "µs/node with gc off"], detail))

    if "scaling" in results:
        rows = results["scaling"]
        detail = []
        for row in rows:
            detail.append([f"{row.nodes:,}", f"{row.validate_s * 1000:.1f}", f"{row.plan_s * 1000:.1f}",
                           f"{row.execute_s * 1000:.1f}", f"{row.execute_s / row.nodes * 1e6:.2f}",
                           f"{row.validate_nogc_s * 1000:.1f} / {row.plan_nogc_s * 1000:.1f} / {row.execute_nogc_s * 1000:.1f}"])
        growth = []
        for small, large in zip(rows, rows[1:]):
            figures = [_per_10x(small.nodes, getattr(small, part), large.nodes, getattr(large, part))
                       for part in ("validate_s", "plan_s", "execute_s")]
            growth.append([f"{small.nodes:,} → {large.nodes:,}", *(f"{value:.1f}" for value in figures)])
            worst = max(figures)
            ok = SCALING_BAND[0] <= min(figures) and worst <= SCALING_BAND[1]
            summary.append([f"2. scaling {small.nodes:,} → {large.nodes:,} nodes (time per 10x)",
                            " / ".join(f"{value:.1f}" for value in figures) + " (validate / plan / execute)",
                            f"≈ 10 ({SCALING_BAND[0]:g}–{SCALING_BAND[1]:g})", _holds(ok)])
        sections.append("### 2. Scaling (layered DAG, width 10, 2 connections per node, async no-op)\n\n"
                        + table(["nodes", "validate ms", "plan ms", "execute ms", "execute µs/node",
                                 "same with gc off: validate / plan / execute ms"], detail)
                        + "\n\nTime multiplier per 10x more nodes (10 = linear):\n\n"
                        + table(["sizes", "validate", "plan", "execute"], growth))

    if "http" in results:
        http = results["http"]
        bare = http.throughput["bare"]
        detail = []
        for name, label in (("bare", "bare aiohttp handler"), ("sqlite", "flowengine, SQLite history (answer after commit)"),
                            ("sqlite-async", "flowengine, SQLite history, FLOWENGINE_HISTORY_ACK=async"),
                            ("memory", "flowengine, :memory: history")):
            series = http.throughput[name]
            detail.append([label, f"{series.rps:,.0f}", f"{series.rps_vs(bare):.2f}x", f"{series.p50_ms:.2f}",
                           f"{series.p99_ms:.2f}", f"{series.server_us:.0f}", f"{series.cpu_vs(bare):.2f}x",
                           f"{series.server_busy:.0%}", f"{series.client_cpu:.0%}"])
        for name in ("sqlite", "sqlite-async", "memory"):
            series = http.throughput[name]
            ratio, capacity = series.rps_vs(bare), series.cpu_vs(bare)
            result = f"{ratio:.2f}x bare req/s ({series.rps:,.0f}); {capacity:.2f}x by server CPU per request"
            if name == "sqlite":
                spread = _quartiles(series.rps_ratios(bare))
                summary.append([f"3. execute throughput, {name} history",
                                f"{result} (rounds' ratios by requests: {spread})",
                                f"≥ {THROUGHPUT_TARGET:g}x (both)", _holds(min(ratio, capacity) >= THROUGHPUT_TARGET)])
            else:
                summary.append([f"3. execute throughput, {name} history", result, "(no target)", "-"])
        durable, fast = http.throughput["sqlite"], http.throughput["sqlite-async"]
        summary.append(["3. cost of answering after the commit (SQLite, against async)",
                        f"{durable.rps_vs(fast):.2f}x req/s, {durable.server_us - fast.server_us:+.0f} µs server CPU per request",
                        "(no target)", "-"])
        sections.append(f"### 3. Execute throughput over HTTP (one-node workflow, {profile.connections} connections)\n\n"
                        + table(["server", "req/s", "vs bare", "p50 ms", "p99 ms", "server CPU µs/req",
                                 "vs bare by CPU", "server CPU busy", "generator CPU"], detail)
                        + f"\n\n{profile.throughput_rounds} rounds, each one run of every server, every other"
                        " round in reverse order. The ratios are medians of each round's own ratio (a run"
                        " against the bare run of the same round); the other figures are medians over the runs."
                        + " \"vs bare by CPU\" is bare µs/req ÷ this server's µs/req: the throughput ratio"
                        " both would reach if each had a whole core. It is the steadier figure when other"
                        " processes share the cores (\"server CPU busy\" well under 100% means the server"
                        " was not the bottleneck of that run).")

        alone = http.listeners[0]
        detail = []
        for count, series in http.listeners.items():
            ratio, capacity = series.rps_vs(alone), series.cpu_vs(alone)
            detail.append([count, f"{series.rps:,.0f}", f"{ratio:.2f}x", f"{series.p50_ms:.2f}", f"{series.p99_ms:.2f}",
                           f"{series.server_us:.0f}", f"{capacity:.2f}x", f"{series.events_per_s:,.0f}", series.dropped])
            if count:
                ok = min(ratio, capacity) >= LISTENER_TARGET if count >= 100 else None
                summary.append([f"4. throughput with {count} WebSocket listener{'s' if count > 1 else ''}",
                                f"{ratio:.2f}x of 0 listeners req/s, {capacity:.2f}x by CPU"
                                f" ({series.events_per_s:,.0f} events/s delivered)",
                                f"≥ {LISTENER_TARGET:g}x (both)" if count >= 100 else "(no target)",
                                _holds(ok) if ok is not None else "-"])
        sections.append("### 4. Execute throughput with WebSocket listeners (SQLite history)\n\n"
                        + table(["listeners", "req/s", "vs 0", "p50 ms", "p99 ms", "server CPU µs/req", "vs 0 by CPU",
                                 "events delivered/s", "listeners dropped"], detail))

        chain = http.chain
        fe40, bare40, fe1, bare1 = chain["flowengine-40"], chain["bare-40"], chain["flowengine-1"], chain["bare-1"]
        per_node = fe40.p50_ms * 1000 / 40
        marginal = (fe40.p50_ms - fe1.p50_ms) * 1000 / 39
        bare_marginal = (bare40.p50_ms - bare1.p50_ms) * 1000 / 39
        detail = [
            ["flowengine, 40-node chain", f"{fe40.p50_ms:.2f}", f"{fe40.p99_ms:.2f}", f"{per_node:.1f}", f"{marginal:.1f}"],
            ["bare handler + 40 chained asyncio tasks", f"{bare40.p50_ms:.2f}", f"{bare40.p99_ms:.2f}",
             f"{bare40.p50_ms * 1000 / 40:.1f}", f"{bare_marginal:.1f}"],
            ["flowengine, 1-node chain", f"{fe1.p50_ms:.2f}", f"{fe1.p99_ms:.2f}", "", ""],
            ["bare handler + 1 asyncio task", f"{bare1.p50_ms:.2f}", f"{bare1.p99_ms:.2f}", "", ""],
        ]
        summary.append(["6. 40-node sequential chain over HTTP", f"{per_node:.1f} µs/node end to end, "
                        f"{fe40.p50_ms / bare40.p50_ms:.2f}x bare", "(no target)", "-"])
        sections.append("### 6. Sequential chain of 40 async no-op nodes over HTTP (one client)\n\n"
                        + table(["case", "p50 ms", "p99 ms", "µs/node end to end", "µs per extra node"], detail))

    if "long-chain" in results:
        chain = results["long-chain"]
        fe_us, bare_us = median(chain.flowengine_us), median(chain.bare_us)
        summary.append(["8. 10,000-node time.delay 0 chain over HTTP", f"{fe_us:.1f} µs/node, {chain.ratio:.2f}x the bare"
                        " asyncio chain", f"≤ {LONG_CHAIN_TARGET:.0f}x", _holds(chain.ratio <= LONG_CHAIN_TARGET)])
        summary.append(["8. its history", f"{chain.stored_bytes / chain.events:.0f} bytes stored per event"
                        f" ({chain.published_bytes / chain.events:.0f} as published)", "(no target)", "-"])
        sections.append("### 8. A 10,000-node chain of time.delay 0 over HTTP (one client), and its history\n\n"
                        + table(["case", "µs/node (median)", "runs"],
                                [["flowengine, SQLite history", f"{fe_us:.1f}", ", ".join(f"{v:.1f}" for v in chain.flowengine_us)],
                                 ["bare handler + 10,000 chained asyncio tasks", f"{bare_us:.1f}",
                                  ", ".join(f"{v:.1f}" for v in chain.bare_us)]])
                        + f"\n\nHistory of one execution: {chain.events:,} events, {chain.stored_bytes:,} bytes stored"
                        f" ({chain.stored_bytes / chain.events:.0f} per event), {chain.published_bytes:,} bytes as published.")

    if "memory" in results:
        memory = results["memory"]
        ok = memory.growth < MEMORY_TARGET
        (first, _), (last, _) = memory.points[0], memory.points[-1]
        summary.append([f"5. RSS growth {first:,} → {last:,} executions", f"{memory.growth:+.1%}",
                        f"< {MEMORY_TARGET:.0%}", _holds(ok)])
        sections.append("### 5. Server memory (SQLite history, default retention)\n\n"
                        + table(["executions", "VmRSS MiB"], [[f"{n:,}", f"{kib / 1024:.1f}"] for n, kib in memory.points]))

    if "retry-memory" in results:
        retry = results["retry-memory"]
        ok = retry.growth < MEMORY_TARGET
        summary.append(["7. RSS while a 1000 x 1000 retry workflow runs", f"{retry.growth:+.1%} over"
                        f" {retry.samples[-1][0]:.0f} s ({retry.events_emitted:,} events emitted)",
                        f"< {MEMORY_TARGET:.0%}", _holds(ok)])
        summary.append(["7. its stored record", f"{retry.recorded_events:,} events, {retry.record_bytes / 1024:,.0f} KiB",
                        "bounded (FLOWENGINE_MAX_RECORDED_EVENTS)", _holds(retry.recorded_events <= 10_001)])
        sections.append("### 7. Memory of a 1000 x 1000 retry workflow (one execution, cancelled at the end)\n\n"
                        + table(["seconds", "VmRSS MiB"], [[f"{t:.0f}", f"{kib / 1024:.1f}"] for t, kib in retry.samples]))

    if "postgres" in results:
        from .postgres_bench import render as render_postgres
        from .postgres_bench import summary_rows

        summary.extend(summary_rows(results["postgres"], _holds))
        sections.append(render_postgres(results["postgres"], table))

    if "dashboard" in results:
        dash = results["dashboard"]
        summary.append(["10. dashboard page weight", f"{dash.raw_bytes / 1024:.1f} KiB raw, {dash.gzip_bytes / 1024:.1f} KiB gzip,"
                        f" {dash.requests} requests", "≤ 60 KB / 20 KB, ≤ 8", _holds(dash.raw_bytes <= 60_000 and dash.gzip_bytes <= 20_000 and dash.requests <= 8)])
        summary.append(["10. first contentful paint (localhost)", f"{dash.first_paint_ms:.0f} ms", "≤ 300 ms", _holds(dash.first_paint_ms <= 300)])
        summary.append(["10. a route with data (50 executions)", f"{dash.route_ms:.0f} ms", "≤ 1 s", _holds(dash.route_ms <= 1000)])
        for graph in dash.graphs:
            if graph["nodes"] == 1000:
                summary.append(["10. 1,000-node execution page interactive", f"{graph['render_ms']:.0f} ms, {graph['dom_nodes']} graph nodes in the DOM",
                                "≤ 1 s, ≤ 400", _holds(graph["render_ms"] <= 1000 and graph["dom_nodes"] <= 400)])
                summary.append(["10. its slowest pan frame", f"{graph['pan_ms']:.1f} ms", "≤ 16 ms", _holds(graph["pan_ms"] <= 16)])
        watch = dash.watch
        summary.append(["10. main-thread tasks > 50 ms while a 5,000-node run streams", f"{watch['long_tasks']} (longest {watch['longest_ms']:.0f} ms)",
                        "none", _holds(watch["long_tasks"] == 0)])
        sections.append("### 10. Dashboard in headless Chromium (execution pages of finished runs; timings from the page)\n\n"
                        + table(["nodes", "layout ms", "view start to first graph frame ms", "graph nodes in the DOM", "slowest pan frame ms"],
                                [[f"{g['nodes']:,}", f"{g['layout_ms']:.1f}", f"{g['render_ms']:.0f}", g["dom_nodes"], f"{g['pan_ms']:.1f}"] for g in dash.graphs])
                        + f"\n\nWatching a 5,000-node run (10,003 events) from the click on Run to the last node drawn: {watch['seconds']:.1f} s"
                        f" (0.5 s of it a time.delay); {watch['long_tasks']} main-thread task(s) over 50 ms, the longest {watch['longest_ms']:.0f} ms.")

    if "instructions" in results:
        from .instructions_bench import render as render_instructions
        from .instructions_bench import summary_rows as instructions_rows

        summary.extend(instructions_rows(results["instructions"]))
        sections.append(render_instructions(results["instructions"], profile.connections, table))

    out.append(f"## flowengine benchmarks ({profile.name} run: median of {profile.repeats} after warm-up,"
               f" {profile.throughput_rounds} for execute throughput; {profile.load_seconds} s load runs;"
               f" took {elapsed:.0f} s)\n")
    out.append(table(["machine", ""], machine()))
    out.append("")
    out.append(table(["measurement", "result", "target", "holds"], summary))
    for section in sections:
        out.append("")
        out.append(section)
    return "\n".join(out)
