"""Execution events (DESIGN.md section 7): the bus, its listeners, and per-execution emitters.

Publishing never awaits: each listener has a bounded queue; one that falls behind is marked
lagging, stops receiving, and its owner (the WebSocket handler) is told at once through
``on_lagging`` so it can close the socket with 1013. Events are built and serialised once, and
only when someone (a listener, the history recorder or an internal observer such as the event
triggers) wants them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from .redaction import active as secrets_active
from .redaction import redact_json

__all__ = [
    "EVENT_TYPES",
    "EventBus",
    "ExecutionEvents",
    "Listener",
    "serialise",
    "utc_timestamp",
]

EVENT_TYPES = (
    "WorkflowStarted",
    "NodeStarted",
    "NodeCompleted",
    "NodeFailed",
    "NodeSkipped",
    "NodeEvent",
    "WorkflowCompleted",
)

log = logging.getLogger("flowengine.events")

# allow_nan=False: NaN and Infinity are not JSON and would break a browser's JSON.parse.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _plain(item: Any) -> Any:
    """``item`` with what JSON cannot hold made into text: non-finite numbers, and objects a
    node body passed as event data (``ctx.info("saved", path=Path(...))``)."""
    if item is None or isinstance(item, (str, bool, int)):
        return item
    if isinstance(item, float):
        return item if math.isfinite(item) else str(item)
    if isinstance(item, dict):
        return {key if isinstance(key, str) else str(key): _plain(value) for key, value in item.items()}
    if isinstance(item, (list, tuple)):
        return [_plain(value) for value in item]
    return str(item)


def serialise(event: dict[str, Any]) -> str:
    """The event as compact JSON text. Never raises for odd data: an event must not fail the
    node that emitted it, nor only when someone happens to be listening."""
    try:
        return _dumps(event)
    except (TypeError, ValueError):
        return _dumps(_plain(event))


_second_prefix: tuple[int, str] = (-1, "")  # the formatted whole second last asked for


def utc_timestamp(moment: datetime | float | None = None) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, e.g. ``2026-11-28T10:13:13.123Z``.

    ``moment`` is a datetime, a ``time.time()`` float, or None for now. Floats are the fast
    path (every event has a timestamp): the text of the current second is formatted once."""
    global _second_prefix
    if isinstance(moment, datetime):
        if moment.utcoffset():
            moment = moment.astimezone(timezone.utc)
        return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    if moment is None:
        moment = time.time()
    second = int(moment)
    millis = int((moment - second) * 1000 + 1e-6)
    if _second_prefix[0] != second:
        _second_prefix = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_second_prefix[1]}{millis:03d}Z"


class Listener:
    """One subscriber: its filters and its bounded queue of serialised events."""

    __slots__ = (
        "execution_id",
        "workflow_id",
        "types",
        "limit",
        "pending",
        "lagging",
        "missed",
        "on_lagging",
        "_waiter",
    )

    def __init__(
        self,
        limit: int,
        *,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        types: Iterable[str] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.types = frozenset(types) if types else None
        self.limit = limit
        self.pending: deque[str] = deque()
        self.lagging = False
        self.missed = 0
        # Called once, synchronously, when the queue overflows. The owner's sender may be parked
        # on a socket the client stopped reading and would never notice the flag by itself.
        self.on_lagging: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        return (
            (self.execution_id is None or event["execution_id"] == self.execution_id)
            and (self.workflow_id is None or event["workflow_id"] == self.workflow_id)
            and (self.types is None or event["type"] in self.types)
        )

    def offer(self, text: str) -> None:
        """Queue an event without waiting; past the limit the listener is lagging for good."""
        if self.lagging:
            self.missed += 1
            return
        if len(self.pending) >= self.limit:
            self.lagging = True
            self.missed += 1 + len(self.pending)
            self.pending.clear()  # keep memory bounded: the listener is being disconnected
            self._wake()
            if self.on_lagging is not None:
                self.on_lagging()
            return
        self.pending.append(text)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Return once there is something to send or the listener is lagging."""
        if self.pending or self.lagging:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


Observer = Callable[[dict[str, Any]], None]


class EventBus:
    """Fans events out to listeners and internal observers. Lives for the whole server."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self.queue_size = queue_size
        self.listeners: set[Listener] = set()
        self.observers: dict[str, list[Observer]] = {}
        self.published = 0
        self.listeners_dropped = 0

    def subscribe(self, **filters: Any) -> Listener:
        listener = Listener(self.queue_size, **filters)
        self.listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def observe(self, event_type: str, observer: Observer) -> None:
        """Call ``observer(event)`` for every event of that type (on the event loop, at once)."""
        self.observers.setdefault(event_type, []).append(observer)

    def publish(self, event: dict[str, Any], text: str) -> None:
        self.published += 1
        for listener in self.listeners:
            if listener.matches(event):
                was_lagging = listener.lagging
                listener.offer(text)
                if listener.lagging and not was_lagging:
                    self.listeners_dropped += 1
        for observer in self.observers.get(event["type"], ()):
            try:
                observer(event)
            except Exception:  # an observer's bug must not break the execution that emitted
                log.exception("event observer %r failed on %s", observer, event["type"])


class ExecutionEvents:
    """Numbers, builds and routes the events of one execution.

    ``wanted`` tells the engine whether building an event's fields is worth it at all;
    ``seq`` advances regardless so recorded and live events always agree on numbering.
    """

    __slots__ = ("bus", "execution_id", "workflow_id", "seq", "recorded", "_observed")

    def __init__(self, bus: EventBus, execution_id: str, workflow_id: str, *, record: bool) -> None:
        self.bus = bus
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.seq = 0
        self.recorded: list[str] | None = [] if record else None
        self._observed = bus.observers

    @property
    def wanted(self) -> bool:
        return self.recorded is not None or bool(self.bus.listeners) or bool(self._observed)

    def emit(self, event_type: str, fields: dict[str, Any]) -> None:
        self.seq += 1
        bus = self.bus
        if self.recorded is None and not bus.listeners and event_type not in self._observed:
            return
        event = {
            "type": event_type,
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "seq": self.seq,
            **fields,
            "timestamp": utc_timestamp(),
        }
        if secrets_active():
            # A node may have echoed a resolved secret into its outputs or messages. _plain first,
            # so text made from odd objects is masked too; listeners, history and observers all
            # get the masked event.
            event = redact_json(_plain(event))
        text = serialise(event)
        if self.recorded is not None:
            self.recorded.append(text)
        bus.publish(event, text)
