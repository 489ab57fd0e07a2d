"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks, print markdown tables.

The full run takes about 14 minutes, four of them measurement 11 under callgrind. ``--quick``
(3 repeats and 3 throughput rounds, 1 s load runs, no 50,000-node DAG, memory read to 10,000
executions, no measurement 11) takes about two. Measurement 9 (PostgreSQL) needs the PostgreSQL
binaries and asyncpg, measurement 11 (instructions per request) valgrind; without them each is
skipped unless asked for with ``--only``. Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import report
from .common import FULL, QUICK

MEASUREMENTS = ("engine", "scaling", "http", "long-chain", "memory", "retry-memory", "postgres", "dashboard", "instructions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (about two minutes)")
    parser.add_argument("--only", action="append", choices=MEASUREMENTS, help="run only these (repeatable)")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    # --quick leaves out measurement 11: four minutes under callgrind, and its count does not
    # need repeats to settle (ask for it with --only instructions).
    selected = args.only or [name for name in MEASUREMENTS if not (args.quick and name == "instructions")]
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    results: dict[str, object] = {}
    if "engine" in selected:
        from .engine_bench import measure_engine

        progress("1. engine overhead per node (in process)")
        results["engine"] = measure_engine(profile)
    if "scaling" in selected:
        from .engine_bench import measure_scaling

        progress("2. scaling: validation and execution of layered DAGs")
        results["scaling"] = measure_scaling(profile)
    if "http" in selected:
        from .http_bench import measure_http

        progress("3/4/6. HTTP throughput, listeners, 40-node chain")
        results["http"] = measure_http(profile, progress)
    if "long-chain" in selected:
        from .long_chain_bench import measure_long_chain

        progress("8. a 10,000-node time.delay chain over HTTP, and its history")
        results["long-chain"] = measure_long_chain(profile)
    if "memory" in selected:
        from .memory_bench import measure_memory

        progress("5. memory growth")
        results["memory"] = measure_memory(profile)
    if "retry-memory" in selected:
        from .retry_memory_bench import measure_retry_memory

        progress("7. memory of a 1000 x 1000 retry workflow")
        results["retry-memory"] = measure_retry_memory(profile)
    if "dashboard" in selected:
        from .dashboard_bench import measure_dashboard

        progress("10. dashboard in headless Chromium")
        results["dashboard"] = measure_dashboard(profile)
    if "postgres" in selected:
        from .postgres_bench import MissingPostgres, measure_postgres

        progress("9. PostgreSQL vs SQLite (a throwaway cluster with fsync on)")
        try:
            results["postgres"] = measure_postgres(profile, progress)
        except MissingPostgres as exc:
            if args.only:  # asked for by name: say it could not run
                raise
            progress(f"9. skipped: {exc}")
    if "instructions" in selected:
        from .instructions_bench import MissingValgrind, measure_instructions

        try:
            results["instructions"] = measure_instructions(profile, progress)
        except MissingValgrind as exc:
            if args.only:
                raise
            progress(f"11. skipped: {exc}")
    progress("done")
    print(report.render(profile, results, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
