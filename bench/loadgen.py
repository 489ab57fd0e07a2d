"""Load generation: ``wrk`` when installed, else an aiohttp client in its own process.

Whichever is used, the same generator drives flowengine and the baseline in a run. The
generator is pinned to CPU 1 (the servers run on CPU 0) and its own CPU time is reported.
Run as ``python -m bench.loadgen URL --body JSON (--seconds S | --requests N)`` for the
fallback generator; it prints one JSON line. BENCH_NO_WRK=1 makes the runner use it even when
wrk is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from .common import LOOPBACK, REPO, cpu_seconds, pin

__all__ = ["LoadResult", "GENERATOR", "run_load", "run_requests"]

# BENCH_NO_WRK=1 forces the fallback generator (to check it, or to compare the two).
WRK = None if os.environ.get("BENCH_NO_WRK") else shutil.which("wrk")
GENERATOR = "wrk" if WRK else "aiohttp (bench.loadgen)"
_MARK = "BENCH_JSON "

# Reports the figures as one JSON line so nothing depends on wrk's human-readable layout.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"errors":%%d,"non_2xx":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx answers
    client_cpu_s: float
    server_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6

    @property
    def server_busy(self) -> float:
        """Share of one CPU the server used: near 1.0 when the load saturates it."""
        return self.server_cpu_s / self.seconds

    @property
    def client_cpu_share(self) -> float:
        return self.client_cpu_s / self.seconds


def _check_url(url: str) -> None:
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"benchmarks only load {LOOPBACK}: {url}")


def _run_child(argv: list[str], timeout: float) -> tuple[str, float]:
    """Run a generator pinned to CPU 1; its stdout and its own CPU seconds (from wait4)."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen([*pin(1), *argv], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                raise RuntimeError(f"load generator did not finish within {timeout:.0f} s")
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode}): {text[-2000:]}")
    return text, usage.ru_utime + usage.ru_stime


def _parse(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    raise RuntimeError(f"no result line in the load generator's output: {text[-2000:]}")


def run_load(url: str, body: Any, *, seconds: int, connections: int, server_pid: int | None = None) -> LoadResult:
    """``connections`` clients POST ``body`` to ``url`` as fast as answered for ``seconds``."""
    _check_url(url)
    text_body = json.dumps(body)
    before = cpu_seconds(server_pid) if server_pid else 0.0
    if WRK:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(_WRK_SCRIPT % (text_body, _MARK))
        try:
            argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script.name, url]
            text, client_cpu = _run_child(argv, timeout=seconds + 30)
        finally:
            os.unlink(script.name)
    else:
        argv = [sys.executable, "-m", "bench.loadgen", url, "--body", text_body,
                "--connections", str(connections), "--seconds", str(seconds)]
        text, client_cpu = _run_child(argv, timeout=seconds + 30)
    server_cpu = cpu_seconds(server_pid) - before if server_pid else 0.0
    data = _parse(text)
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["non_2xx"],
        client_cpu_s=client_cpu,
        server_cpu_s=server_cpu,
    )


def run_requests(url: str, body: Any, *, requests: int, connections: int) -> LoadResult:
    """Exactly ``requests`` requests (the memory measurement counts executions)."""
    _check_url(url)
    argv = [sys.executable, "-m", "bench.loadgen", url, "--body", json.dumps(body),
            "--connections", str(connections), "--requests", str(requests)]
    text, client_cpu = _run_child(argv, timeout=600)
    data = _parse(text)
    return LoadResult(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                      data["p99_us"] / 1000, data["errors"] + data["non_2xx"], client_cpu)


# -- the fallback generator ---------------------------------------------------------------------


async def _generate(url: str, body: bytes, connections: int, seconds: float | None, requests: int | None) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = non_2xx = 0
    budget = [requests if requests is not None else sys.maxsize]
    deadline = time.perf_counter() + (seconds if seconds is not None else 3600.0)
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors, non_2xx
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if not 200 <= response.status < 300:
                        non_2xx += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*[client(session) for _ in range(connections)])
        elapsed = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)

    def percentile(fraction: float) -> int:
        return int(latencies[min(count - 1, int(count * fraction))] * 1e6) if count else 0

    return {"requests": count, "duration_us": int(elapsed * 1e6), "p50_us": percentile(0.5),
            "p99_us": percentile(0.99), "errors": errors, "non_2xx": non_2xx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--body", default="{}")
    parser.add_argument("--connections", type=int, default=32)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--seconds", type=float)
    group.add_argument("--requests", type=int)
    args = parser.parse_args()
    _check_url(args.url)
    result = asyncio.run(_generate(args.url, args.body.encode(), args.connections, args.seconds, args.requests))
    print(_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
