"""The live event stream: ``GET /api/events``, a native aiohttp WebSocket.

Filters (``execution_id``, ``workflow_id``, ``types``) are checked before the upgrade. With
``batch=true`` each text frame is a JSON array: the events of one flush of the bus (see
BatchingTransport), and the replay in arrays of at most REPLAY_BATCH events. Once the
socket is open (and any replay sent), its listener is attached to the connection's transport and
the event bus writes ready-made frames to it directly, once per event-loop iteration (see
events.py); there is no sender task per connection. A listener that falls behind by
FLOWENGINE_WS_QUEUE events is closed with 1013 and told how many events it missed.

On a shared PostgreSQL database, listeners also get the events of executions other processes
run (runtime/pgevents.py feeds them into this process's bus), and a replay of an execution
another process runs asks that process for the events so far (``RemoteEvents.replay``).

No close may hang: a client that stops reading at the TCP level shuts its window, and a close
frame (like any frame) then waits forever for the socket to drain. Every close here is bounded
by CLOSE_TIMEOUT, after which the connection is aborted, so neither such a client nor the
server's shutdown can be held up, and the memory held for it is released.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..core.events import EVENT_TYPES, Listener, text_frame
from .http_json import ClientError, query_bool
from .keys import BUS, CONFIG, LIVENESS, RUNS, SOCKETS, STORE

__all__ = [
    "events_handler",
    "close_all",
    "event_types",
    "EVENT_TYPES_PATTERN",
    "EventSocket",
    "BatchingTransport",
    "CLOSE_TIMEOUT",
    "TRY_AGAIN_LATER",
]

log = logging.getLogger("flowengine.server.websocket")

TRY_AGAIN_LATER = 1013
CLOSE_TIMEOUT = 5.0  # seconds a close may take before the connection is cut
_MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code
REPLAY_BATCH = 1000  # replayed events per frame with batch=true


class EventSocket(web.WebSocketResponse):
    """A listener's WebSocket. It keeps its transport so that a close the client never lets
    through can be cut short with ``abort()`` instead of waiting on the socket forever."""

    peer: asyncio.Transport | None = None  # set once the upgrade is done
    listener: Listener | None = None  # whose frames the bus writes to ``peer``

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        # Every close goes through here (ours, the reply to a client's close, shutdown): the bus
        # writes to the transport behind aiohttp's back, so stop it before the close frame is
        # written, or an event frame could follow the close frame.
        if self.listener is not None:
            self.listener.detach()
        return await super().close(code=code, message=message, drain=drain)

    async def close_or_abort(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason``; abort the connection if that takes too long."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.close(code=code, message=_reason_bytes(reason))
        except TimeoutError:
            log.info("WebSocket listener did not take its close frame in %g s: connection aborted", CLOSE_TIMEOUT)
            self.abort()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not our cancellation: aiohttp's writers share one drain future per connection, and
            # another task cancelled while waiting on it cancels it for everyone. The socket was
            # not draining anyway.
            self.abort()
        else:
            self.abort_if_stuck()

    def abort(self) -> None:
        if self.peer is not None:
            self.peer.abort()

    def abort_if_stuck(self) -> None:
        """A closed socket with bytes still buffered waits for a reader that may never come:
        give it CLOSE_TIMEOUT to drain, then cut it (a no-op if it is gone by then)."""
        peer = self.peer
        if peer is not None and peer.get_write_buffer_size():
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, peer.abort)


class BatchingTransport(asyncio.Transport):
    """What a ``batch=true`` listener writes to instead of its socket: each write of the bus,
    which is whole frames (the listener's events of one flush, events.py), goes to the socket
    as one text frame holding a JSON array of those frames' payloads, the events' JSON text.

    The listener bounds its backlog by the bytes it wrote (Listener's marks) and asks the
    transport how many it still buffers; the socket buffers the array frames, whose lengths
    differ. So the buffer is told in the listener's bytes: a write counts as sent once its
    whole array frame is, as a frame partly sent counts as unsent for an unbatched listener."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        # What the socket buffered before (the replay) counts the same for both, as it does for
        # an unbatched listener.
        self._written = self._given = transport.get_write_buffer_size()
        self._given_sent = 0
        # (bytes written to the socket, bytes the listener gave) after each write not yet sent.
        self._marks: deque[tuple[int, int]] = deque()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        payloads = _payloads(bytes(data))
        frame = text_frame("[" + ",".join(payload.decode("utf-8") for payload in payloads) + "]")
        self._transport.write(frame)
        self._written += len(frame)
        self._given += len(data)
        self._marks.append((self._written, self._given))

    def get_write_buffer_size(self) -> int:
        buffered = self._transport.get_write_buffer_size()
        if not buffered:
            self._marks.clear()
            self._given_sent = self._given
            return 0
        sent = self._written - buffered
        marks = self._marks
        while marks and marks[0][0] <= sent:
            self._given_sent = marks.popleft()[1]
        return self._given - self._given_sent

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def abort(self) -> None:
        self._transport.abort()


def _payloads(data: bytes) -> list[bytes]:
    """The payloads of consecutive unmasked WebSocket frames (as text_frame makes them)."""
    payloads = []
    at, end = 0, len(data)
    while at < end:
        size = data[at + 1] & 0x7F
        if size == 126:
            size, at = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
        elif size == 127:
            size, at = int.from_bytes(data[at + 2 : at + 10], "big"), at + 10
        else:
            at += 2
        payloads.append(data[at : at + size])
        at += size
    return payloads


def _reason_bytes(reason: str) -> bytes:
    # Cut to what a close frame holds, never inside a UTF-8 sequence.
    return reason.encode("utf-8")[:_MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


_EVENT_TYPE = "|".join(EVENT_TYPES)
EVENT_TYPES_PATTERN = f"^[ ,]*(?:(?:{_EVENT_TYPE}) *(?:,[ ,]*|$))*$"


def event_types(text: str) -> list[str]:
    """The ``types`` query parameter (comma-separated event types, spaces around them allowed)
    as a list, empty for none; 400 naming every unknown type. Only spaces are stripped, so that
    the pattern the OpenAPI document gives (EVENT_TYPES_PATTERN) says exactly what is taken;
    and as a regex's ``$`` matches before a final newline, one final newline is ignored."""
    parts = text.removesuffix("\n").split(",")
    types = [part.strip(" ") for part in parts if part.strip(" ")]
    unknown = [name for name in types if name not in EVENT_TYPES]
    if unknown:
        raise ClientError(400, f"types: unknown event type(s) {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})")
    return types


def _filters(request: web.Request) -> dict[str, object]:
    query = request.query
    filters: dict[str, object] = {}
    for name in ("execution_id", "workflow_id"):
        if query.get(name):
            filters[name] = query[name]
    types = event_types(query.get("types", ""))
    if types:
        filters["types"] = types
    return filters


async def _drop(ws: EventSocket, listener: Listener, remote: str | None) -> None:
    # Runs once the loop is free, so the count covers the whole burst that overflowed the queue.
    reason = f"too slow: fell {listener.limit} events behind; {listener.missed} events missed, reconnect to resume"
    log.warning("WebSocket listener %s dropped (1013): %s", remote or "(unknown address)", reason)
    await ws.close_or_abort(TRY_AGAIN_LATER, reason)


async def _replay(
    request: web.Request, execution_id: str, subscribe: Callable[[], Listener]
) -> tuple[list[str], Listener]:
    """The listener for a replay and the events to replay before its live ones. An execution
    another process runs is asked of that process, and the listener subscribed at the point of
    its answer (pgevents.py); otherwise the listener is subscribed first, then the events read."""
    liveness = request.app.get(LIVENESS)
    if liveness is not None and request.app[RUNS].get(execution_id) is None:
        answer = await liveness.events.replay(execution_id, subscribe)
        if answer is not None:
            texts, listener = answer
            return _of_types(texts, listener), listener
    listener = subscribe()
    return await _recorded_events(request, execution_id, listener), listener


def _of_types(texts: list[str], listener: Listener) -> list[str]:
    if listener.types is None:
        return texts
    return [text for text in texts if json.loads(text)["type"] in listener.types]


async def _recorded_events(request: web.Request, execution_id: str, listener: Listener) -> list[str]:
    """The events an execution has emitted so far, in seq order, as frames for this listener.

    For a running execution they are taken from memory in the same turn of the event loop as
    the listener's subscription (no await in between), so replayed and live events neither
    overlap nor leave a gap; a finished execution emits nothing more, so its recorded events
    are simply read from the store."""
    running = request.app[RUNS].get(execution_id)
    recorded = None if running is None else running.recorded_events()
    if recorded is not None:
        texts = recorded
    else:
        stored = await request.app[STORE].get_execution_events(execution_id)
        if stored is None:
            raise ClientError(404, f"Execution {execution_id} not found: nothing to replay")
        texts = [json.dumps(event, ensure_ascii=False, separators=(",", ":")) for event in json.loads(stored)]
    return _of_types(texts, listener)


def _replay_requested(request: web.Request, filters: dict[str, object]) -> bool:
    replay = query_bool(request, "replay", default=False)
    if replay and "execution_id" not in filters:
        raise ClientError(400, "replay: needs execution_id=... (replay sends one execution's recorded events)")
    return replay


def _replay_frames(history: list[str], batch: bool) -> list[str]:
    if not batch:
        return history
    return ["[" + ",".join(history[at : at + REPLAY_BATCH]) + "]" for at in range(0, len(history), REPLAY_BATCH)]


async def events_handler(request: web.Request) -> web.WebSocketResponse:
    filters = _filters(request)
    replay = _replay_requested(request, filters)
    batch = query_bool(request, "batch", default=False)
    config = request.app[CONFIG]
    # compress=False: permessage-deflate would re-encode every frame once per listener, the very
    # per-listener cost the bus avoids by serialising each event once for everyone.
    ws = EventSocket(heartbeat=config.ws_heartbeat, compress=False)
    if not ws.can_prepare(request).ok:
        raise ClientError(
            400,
            "this endpoint is a WebSocket: connect with a WebSocket client,"
            f" e.g. wscat -c ws://localhost:{config.port}/api/events",
        )
    bus = request.app[BUS]
    subscribed: list[Listener] = []

    def subscribe() -> Listener:
        subscribed.append(bus.subscribe(**filters))
        return subscribed[-1]

    sockets = request.app[SOCKETS]
    loop = asyncio.get_running_loop()
    dropping: list[asyncio.Task[None]] = []

    def on_lagging() -> None:
        # Called inside the bus's flush, the moment the listener falls too far behind. Its socket
        # may be stuck on a client that stopped reading, so the close runs in a task of its own.
        dropping.append(loop.create_task(_drop(ws, listener, request.remote)))

    try:
        history: list[str] = []
        if replay:
            # Subscribed before anything awaits (or, for another process's execution, at the
            # point of its answer), so that no live event can fall between the replayed ones
            # and the live ones held for the listener from then on.
            history, listener = await _replay(request, filters["execution_id"], subscribe)  # type: ignore[arg-type]
        else:
            listener = subscribe()
        await ws.prepare(request)
        ws.peer = request.transport
        ws.listener = listener
        sockets.add(ws)
        # Replayed events go through aiohttp, which waits for the socket to drain: a long history
        # is paced by the client. Live events meanwhile are held by the listener (bounded).
        try:
            for text in _replay_frames(history, batch):
                await ws.send_str(text)
        except ConnectionError:
            return ws  # the client left during the replay
        listener.attach(BatchingTransport(ws.peer) if batch and ws.peer is not None else ws.peer)
        listener.on_lagging = on_lagging
        if listener.lagging:  # it overflowed while the replay was being sent
            on_lagging()
        # Pings are answered inside receive(); text from the client is ignored. A close from the
        # server side (1013, 1001) wakes this loop with a CLOSING message, which ends it.
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        for made in subscribed:
            bus.unsubscribe(made)
        sockets.discard(ws)
        if dropping:
            # Awaited, not cancelled: it is bounded by CLOSE_TIMEOUT, and cutting it short could
            # leave the transport open.
            await dropping[0]
        ws.abort_if_stuck()
    return ws


async def close_all(app: web.Application) -> None:
    """On shutdown: every listener gets 1001 (going away), all at once, each within CLOSE_TIMEOUT."""
    open_sockets = app[SOCKETS]
    sockets = list(open_sockets)
    closes: list[Awaitable[Any]] = []
    for ws in sockets:
        if isinstance(ws, EventSocket):
            closes.append(ws.close_or_abort(WSCloseCode.GOING_AWAY, "server shutting down"))
        else:
            closes.append(
                asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"), CLOSE_TIMEOUT)
            )
    for outcome in await asyncio.gather(*closes, return_exceptions=True):
        if isinstance(outcome, Exception) and not isinstance(outcome, (ConnectionError, TimeoutError)):
            log.warning("closing a WebSocket listener on shutdown failed: %r", outcome)
