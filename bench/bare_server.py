"""The baseline server: a bare aiohttp handler that does what an execute request must at least do.

``POST /api/workflows/{id}/execute`` reads and parses the JSON body and answers a JSON body of
the same shape as flowengine's: the runner passes one real flowengine response in
BENCH_RESPONSE_TEMPLATE, and the handler fills in a fresh execution id and duration. With ``?chain=N``
it first awaits a chain of N no-op asyncio tasks, each awaiting the one before (the least an
orchestrator running N sequential tasks can do). ``GET /health`` tells the runner it is up.

Run as ``python -m bench.bare_server`` with BIND_ADDRESS=127.0.0.1:PORT (and BENCH_LOOP=uvloop to
run on uvloop, as flowengine then does in the same benchmark run).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

from aiohttp import web

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_OUTPUT = {"type": "Number", "value": 1}
_DEFAULT_TEMPLATE = {
    "execution_id": "",
    "completed_nodes": 1,
    "total_nodes": 1,
    "status": "succeeded",
    "duration_ms": 0,
    "duration_us": 0,
    "attempts": 1,
    "outputs": {"n0": {"x": _OUTPUT}},
    "failed_nodes": [],
    "skipped_nodes": [],
}
_TEMPLATE: dict[str, Any] = json.loads(os.environ.get("BENCH_RESPONSE_TEMPLATE") or "null") or _DEFAULT_TEMPLATE


async def _link(previous: "asyncio.Task[None] | None") -> None:
    if previous is not None:
        await previous


async def _chain(count: int) -> None:
    loop = asyncio.get_running_loop()
    previous = None
    for _ in range(count):
        previous = loop.create_task(_link(previous))
    if previous is not None:
        await previous


async def health(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"healthy"}', content_type="application/json")


async def execute(request: web.Request) -> web.Response:
    raw = await request.read()
    document: Any = json.loads(raw) if raw.strip() else {}
    if not isinstance(document, dict) or not isinstance(document.get("inputs", {}), dict):
        return web.Response(status=400, body=b'{"error":"bad body"}', content_type="application/json")
    started = time.perf_counter()
    count = int(request.query.get("chain", "0"))
    await _chain(count)
    body = dict(_TEMPLATE)
    body["execution_id"] = str(uuid.uuid4())
    body["duration_us"] = int((time.perf_counter() - started) * 1_000_000)
    body["duration_ms"] = body["duration_us"] // 1000
    if count:
        body["completed_nodes"] = body["total_nodes"] = count
        body["outputs"] = {f"n{count - 1}": {"out": _OUTPUT}}
    return web.Response(body=_dumps(body).encode(), content_type="application/json")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_routes(
        [web.get("/health", health), web.post("/api/workflows/{id}/execute", execute)]
    )
    return app


def main() -> None:
    host, _, port = os.environ.get("BIND_ADDRESS", "127.0.0.1:3001").rpartition(":")
    if host != "127.0.0.1":
        raise SystemExit("the baseline server only binds 127.0.0.1")
    loop = None
    if os.environ.get("BENCH_LOOP") == "uvloop":  # the loop flowengine runs on in the same run
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(make_app(), host=host, port=int(port), print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
