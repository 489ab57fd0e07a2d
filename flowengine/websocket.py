"""The live event stream: ``GET /api/events``, a native aiohttp WebSocket.

Filters (``execution_id``, ``workflow_id``, ``types``) are checked before the upgrade. Each
connection has a sender task draining its listener's queue; a listener that falls behind by
FLOWENGINE_WS_QUEUE events is closed with 1013 and told how many events it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from .events import EVENT_TYPES, Listener
from .http_json import ClientError
from .state import BUS, CONFIG, SOCKETS

__all__ = ["events_handler", "close_all"]

log = logging.getLogger("flowengine.websocket")

TRY_AGAIN_LATER = 1013


def _filters(request: web.Request) -> dict[str, object]:
    query = request.query
    filters: dict[str, object] = {}
    for name in ("execution_id", "workflow_id"):
        if query.get(name):
            filters[name] = query[name]
    if query.get("types"):
        types = [part.strip() for part in query["types"].split(",") if part.strip()]
        unknown = [name for name in types if name not in EVENT_TYPES]
        if unknown:
            raise ClientError(
                400, f"types: unknown event type(s) {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})"
            )
        filters["types"] = types
    return filters


async def _send(ws: web.WebSocketResponse, listener: Listener) -> None:
    while True:
        await listener.wait()
        if listener.lagging:
            reason = (
                f"too slow: fell {listener.limit} events behind; {listener.missed} events missed,"
                " reconnect to resume"
            )
            await ws.close(code=TRY_AGAIN_LATER, message=reason.encode("utf-8")[:120])
            return
        pending = listener.pending
        while pending:
            await ws.send_str(pending.popleft())


async def events_handler(request: web.Request) -> web.WebSocketResponse:
    filters = _filters(request)
    config = request.app[CONFIG]
    ws = web.WebSocketResponse(heartbeat=config.ws_heartbeat)
    if not ws.can_prepare(request).ok:
        raise ClientError(
            400,
            "this endpoint is a WebSocket: connect with a WebSocket client,"
            f" e.g. wscat -c ws://localhost:{config.port}/api/events",
        )
    await ws.prepare(request)
    bus = request.app[BUS]
    listener = bus.subscribe(**filters)
    request.app[SOCKETS].add(ws)
    sender = asyncio.get_running_loop().create_task(_send(ws, listener))
    try:
        async for message in ws:  # pings are answered by aiohttp; client text is ignored
            if message.type == WSMsgType.ERROR:
                break
    finally:
        bus.unsubscribe(listener)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        request.app[SOCKETS].discard(ws)
    return ws


async def close_all(app: web.Application) -> None:
    """On shutdown: every listener gets 1001 (going away)."""
    for ws in list(app[SOCKETS]):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
