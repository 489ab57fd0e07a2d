"""Measurement 11: instructions per execute request, counted by valgrind's callgrind.

Timing on a shared two-core machine moves by a third between runs seconds apart, which hides a
change of a few percent; an instruction count barely moves. Each server (the bare handler, and
flowengine with SQLite history answering after the commit) runs under callgrind twice, serving
``SMALL`` and then ``LARGE`` execute requests of the one-node workflow from the profile's
connections (32); the difference of the two totals over ``LARGE - SMALL`` is its instructions
per request, with start-up and shutdown cancelled out. flowengine starts on a history already
past its retention cap (filled by a server not under callgrind), as in measurement 3: each
execution then also deletes the oldest one.

The count covers every thread of the process (the history writer's too), in user space only:
the kernel's work (socket and WAL writes, thread wake-ups) and cache misses are not in it, so
it reads higher than the time ratio of measurement 3, which stays the target's measure. Skipped
without valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import workflows
from .common import Profile, Server, bare_server, flowengine_server, register
from .http_bench import BODY, HISTORY_FILL, WORKFLOW_ID
from .loadgen import run_requests

__all__ = ["InstructionsResult", "MissingValgrind", "measure_instructions", "render", "summary_rows"]

SMALL, LARGE = 200, 1_000
_COLLECTED = re.compile(r"Collected : (\d+)")


class MissingValgrind(RuntimeError):
    pass


@dataclass
class InstructionsResult:
    bare: float  # instructions per execute request
    flowengine: float

    @property
    def ratio(self) -> float:
        """The throughput ratio both would reach if time were instructions (bare ÷ flowengine)."""
        return self.bare / self.flowengine


def _fill_history(database: str, connections: int) -> None:
    """Register the bench workflow and run HISTORY_FILL executions on a plain server, leaving a
    history past its retention cap in ``database``."""
    with flowengine_server("callgrind-history-fill", database) as server:
        register(server, workflows.one_node_set(WORKFLOW_ID))
        result = run_requests(
            f"{server.url}/api/workflows/{WORKFLOW_ID}/execute", BODY, requests=HISTORY_FILL, connections=connections
        )
        if result.errors or result.requests != HISTORY_FILL:
            raise RuntimeError(f"filling the history: {result.errors} failed of {result.requests} requests")


def _total(make_server: Callable[[str], Server], requests: int, connections: int, *, fill: bool) -> int:
    """Instructions the server (``make_server(database path)``) ran from start to exit, having
    served ``requests`` execute requests of the bench workflow (with ``fill``, on a history
    ``_fill_history`` made)."""
    with tempfile.TemporaryDirectory(prefix="flowengine-bench-") as tmp:
        log = Path(tmp) / "callgrind.log"
        database = str(Path(tmp) / "history.db")
        if fill:
            _fill_history(database, connections)
        server = make_server(database)
        server.name = f"callgrind-{server.name}-{requests}"
        server.argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={log}", *server.argv]
        # Under callgrind the interpreter runs some 50 times slower: start-up and the graceful
        # stop (which must finish for callgrind to write its total) get minutes, not seconds.
        server.start_timeout = server.stop_timeout = 300
        with server:
            result = run_requests(
                f"{server.url}/api/workflows/{WORKFLOW_ID}/execute", BODY, requests=requests, connections=connections
            )
            if result.errors or result.requests != requests:
                raise RuntimeError(f"{server.name}: {result.errors} failed of {result.requests} requests")
        found = _COLLECTED.search(log.read_text(errors="replace"))
        if found is None:
            raise RuntimeError(f"{server.name}: callgrind reported no total:\n{log.read_text(errors='replace')[-2000:]}")
        return int(found.group(1))


def _per_request(make_server: Callable[[str], Server], connections: int, *, fill: bool) -> float:
    small = _total(make_server, SMALL, connections, fill=fill)
    return (_total(make_server, LARGE, connections, fill=fill) - small) / (LARGE - SMALL)


def measure_instructions(profile: Profile, progress: Callable[[str], None]) -> InstructionsResult:
    if shutil.which("valgrind") is None:
        raise MissingValgrind("valgrind is not installed (apt-get install valgrind)")
    progress("11. instructions per request: the bare handler under callgrind")
    bare = _per_request(lambda _database: bare_server(), profile.connections, fill=False)
    progress("11. instructions per request: flowengine under callgrind")
    flowengine = _per_request(lambda database: flowengine_server("flowengine", database), profile.connections, fill=True)
    return InstructionsResult(bare, flowengine)


def summary_rows(result: InstructionsResult) -> list[list[str]]:
    return [
        [
            "11. instructions per execute request (callgrind, SQLite history, answer after commit)",
            f"{result.ratio:.2f}x bare ({result.flowengine:,.0f} against {result.bare:,.0f})",
            "(no target)",
            "-",
        ]
    ]


def render(result: InstructionsResult, connections: int, table: Callable[[Sequence[str], Sequence[Sequence[Any]]], str]) -> str:
    return (
        f"### 11. Instructions per execute request (callgrind, one-node workflow, {connections} connections)\n\n"
        + table(
            ["server", "instructions per request", "bare ÷ this"],
            [
                ["bare aiohttp handler", f"{result.bare:,.0f}", "1.00x"],
                [
                    "flowengine, SQLite history (answer after commit), at its retention cap",
                    f"{result.flowengine:,.0f}",
                    f"{result.ratio:.2f}x",
                ],
            ],
        )
        + f"\n\nEach figure is (total at {LARGE:,} requests - total at {SMALL:,}) / {LARGE - SMALL:,}: the whole process,"
        " every thread, user space only; flowengine's history starts past its retention cap, as in measurement 3."
        " Kernel time and cache misses are not in it, so it reads higher than measurement 3's time ratio; it is the"
        " figure that does not move between runs, for telling a change of a few percent from noise."
    )
