"""``python -m bench.server_variants [--quick]``: the same server on asyncio and on uvloop, with
and without ``gc.freeze()`` after start-up, side by side in one run.

Four ``python -m flowengine`` processes (SQLite history, answers after the commit, the defaults):
``FLOWENGINE_LOOP=asyncio`` and ``uvloop``, each as shipped (start-up frozen) and with
``gc.freeze`` made a no-op (the server started through a one-line wrapper, nothing else
changed). For each:
- ``POST /api/workflows/{id}/execute`` of the one-node ``transform.set`` workflow, 32 clients
  (the load generator of ``bench.loadgen``): requests/s and server CPU µs per request, after the
  history is filled past its retention limit; runs interleaved, medians of the repeats;
- a 10,000-node chain of ``time.delay`` nodes with ``delay_ms`` 0, executed over HTTP one at a
  time: µs per node (client-side wall time / 10,000) and server CPU per node;
- VmRSS once started and after all of the above.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import workflows
from .common import FULL, QUICK, Profile, Server, cpu_seconds, http_json, rss_kib
from .http_bench import BODY, HISTORY_FILL, WORKFLOW_ID
from .loadgen import GENERATOR, run_load, run_requests
from .report import machine, table

__all__ = ["Variant", "VARIANTS", "measure"]

CHAIN_ID = "bench-delay-chain"
CHAIN_NODES = 10_000
# The server exactly as ``python -m flowengine`` runs it, except that gc.freeze does nothing.
_NO_FREEZE = "import gc, sys; gc.freeze = lambda: None; from flowengine.cli import main; sys.exit(main())"


@dataclass
class Variant:
    name: str
    loop: str
    freeze: bool
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # share of its core the server used during the load
    chain_us_per_node: list[float] = field(default_factory=list)
    chain_cpu_us_per_node: list[float] = field(default_factory=list)
    rss_start_kib: int = 0
    rss_end_kib: int = 0


VARIANTS = (("asyncio", True), ("uvloop", True), ("asyncio", False), ("uvloop", False))


def _delay_chain() -> dict:
    document = workflows.chain(CHAIN_NODES, "time.delay", CHAIN_ID)
    for node in document["nodes"]:
        node["config"] = {"delay_ms": {"type": "Number", "value": 0}}
    for connection in document["connections"]:
        connection["from_port"] = "in"  # time.delay passes its inputs on under their own names
    return document


def _server(variant: Variant, db: Path) -> Server:
    argv = [sys.executable, "-m", "flowengine"] if variant.freeze else [sys.executable, "-c", _NO_FREEZE]
    return Server(f"variant-{variant.loop}-{'freeze' if variant.freeze else 'nofreeze'}", argv,
                  {"FLOWENGINE_DB": str(db), "LOG_LEVEL": "warn", "FLOWENGINE_LOOP": variant.loop})


@contextlib.contextmanager
def _started(variants: list[Variant], tmp: Path) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack:
        servers = []
        for index, variant in enumerate(variants):
            server = stack.enter_context(_server(variant, tmp / f"history-{index}.db"))
            for document in (workflows.one_node_set(WORKFLOW_ID), _delay_chain()):
                status, body = http_json("POST", f"{server.url}/api/workflows", document)
                if status != 201:
                    raise RuntimeError(f"{server.name}: registering {document['id']} gave {status}: {body}")
            servers.append(server)
        yield servers


def _chain_once(server: Server) -> tuple[float, float]:
    """Wall seconds and server CPU seconds of one execution of the chain."""
    before = cpu_seconds(server.pid)
    started = time.perf_counter()
    status, body = http_json("POST", f"{server.url}/api/workflows/{CHAIN_ID}/execute", {"inputs": {"in": 1}}, timeout=300)
    wall = time.perf_counter() - started
    if status != 200 or body.get("completed_nodes") != CHAIN_NODES:
        raise RuntimeError(f"{server.name}: the chain answered {status}: {str(body)[:300]}")
    return wall, cpu_seconds(server.pid) - before


def measure(profile: Profile, progress) -> list[Variant]:
    variants = [Variant(f"{loop}{'' if freeze else ', no gc.freeze'}", loop, freeze) for loop, freeze in VARIANTS]
    execute = f"/api/workflows/{WORKFLOW_ID}/execute"
    with tempfile.TemporaryDirectory(prefix="flowengine-variants-") as tmp, _started(variants, Path(tmp)) as servers:
        pairs = list(zip(variants, servers))
        for variant, server in pairs:
            variant.rss_start_kib = rss_kib(server.pid)
        progress(f"warm-up: {HISTORY_FILL:,} executions per server (history past its retention limit)")
        for server in servers:
            warm = run_requests(f"{server.url}{execute}", BODY, requests=HISTORY_FILL, connections=profile.connections)
            if warm.errors:
                raise RuntimeError(f"{server.name}: {warm.errors} failed requests while warming up")
            _chain_once(server)
        for repeat in range(profile.repeats):
            progress(f"execute throughput and the {CHAIN_NODES:,}-node delay chain, repeat {repeat + 1}/{profile.repeats}")
            for variant, server in pairs:
                result = run_load(f"{server.url}{execute}", BODY, seconds=profile.load_seconds,
                                  connections=profile.connections, server_pid=server.pid)
                if result.errors:
                    raise RuntimeError(f"{server.name}: {result.errors} failed requests of {result.requests}")
                variant.rps.append(result.rps)
                variant.cpu_us.append(result.server_us_per_request)
                variant.busy.append(result.server_busy)
            for variant, server in pairs:
                wall, cpu = _chain_once(server)
                variant.chain_us_per_node.append(wall / CHAIN_NODES * 1e6)
                variant.chain_cpu_us_per_node.append(cpu / CHAIN_NODES * 1e6)
        time.sleep(1.0)
        for variant, server in pairs:
            variant.rss_end_kib = rss_kib(server.pid)
    return variants


def render(variants: list[Variant], profile: Profile, elapsed: float) -> str:
    base = variants[0]
    med = statistics.median

    def versus(value: float, reference: float) -> str:
        return f"{value / reference:.2f}x"

    rows = []
    for variant in variants:
        rows.append([
            variant.name,
            f"{med(variant.rps):,.0f} ({versus(med(variant.rps), med(base.rps))})",
            f"{med(variant.cpu_us):.0f} ({versus(med(variant.cpu_us), med(base.cpu_us))})",
            f"{med(variant.busy):.0%}",
            f"{med(variant.chain_us_per_node):.1f} ({versus(med(variant.chain_us_per_node), med(base.chain_us_per_node))})",
            f"{med(variant.chain_cpu_us_per_node):.1f}",
            f"{variant.rss_start_kib / 1024:.1f} → {variant.rss_end_kib / 1024:.1f}",
        ])
    return "\n".join([
        f"# Server variants ({profile.name} run, {elapsed:.0f} s, medians of {profile.repeats})",
        "",
        table(["", ""], machine()),
        "",
        table(["server", "execute req/s (vs asyncio)", "server CPU µs/request (vs asyncio)", "server busy",
               f"{CHAIN_NODES:,}-node delay-0 chain, µs/node (vs asyncio)", "chain server CPU µs/node",
               "RSS MiB, started → after"], rows),
        "",
        f"Load generator: {GENERATOR}, 32 clients, {profile.load_seconds} s runs; the chain one execution at a time."
        " A server busy well under 100% was short of CPU (other work on the machine): its requests/s and the"
        " chain's wall time then measure the machine, and CPU per request is the figure to compare.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_variants", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats of 1 s runs")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    variants = measure(profile, progress)
    print(render(variants, profile, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
