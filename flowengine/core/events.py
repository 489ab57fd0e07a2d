"""Execution events (DESIGN.md section 7): the bus, its listeners, and per-execution emitters.

Publishing never awaits and never touches a socket: each event is serialised once, made into a
WebSocket text frame once, and batched; one flush per event-loop iteration writes each listener's
frames with a single ``transport.write``. A listener that falls ``FLOWENGINE_WS_QUEUE`` events
behind is marked lagging, stops receiving, and its owner (the WebSocket handler) is told at once
through ``on_lagging`` so it can close the socket with 1013. Events are built only when someone
(a listener, the history recorder, an internal observer such as the event triggers, or a
listener of another process sharing the database: ``forward``) wants them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .eventlog import compact_event, event_head, expand, full_event, pack
from .redaction import Redactor
from .timestamps import now_millis, utc_timestamp

__all__ = [
    "EVENT_TYPES",
    "EventBus",
    "ExecutionEvents",
    "Listener",
    "quote",
    "serialise",
    "text_frame",
    "utf8_safe",
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

log = logging.getLogger("flowengine.core.events")

# allow_nan=False: NaN and Infinity are not JSON and would break a browser's JSON.parse.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _make_dumps() -> Callable[[Any], str]:
    """``_encoder.encode``, minus its set-up. For a small document most of json.dumps's time
    goes into building the C encoder it then calls once; here the C encoder is built once and
    reused. It is the one json.dumps builds, but with no
    circular-reference check (``markers=None``), which is what makes it reusable: a circular
    structure then fails with RecursionError instead of ValueError, and cannot come from JSON or
    from typed values anyway. Without the C accelerator, the encoder's own ``encode``."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encoder.encode
    encode = make(None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def dumps(document: Any) -> str:
        if isinstance(document, str):
            return json.encoder.encode_basestring(document)
        return "".join(encode(document, 0))

    return dumps


_dumps = _make_dumps()


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


def serialise(event: Any) -> str:
    """The event as compact JSON text. Never raises for odd data: an event must not fail the
    node that emitted it, nor only when someone happens to be listening."""
    try:
        text = _dumps(event)
    except (TypeError, ValueError, RecursionError):
        text = _dumps(_plain(event))
    return text if text.isascii() else utf8_safe(text)


def utf8_safe(text: str) -> str:
    """JSON text with any lone surrogate written as its escape.

    A lone surrogate (a node can put one in a str, a JSON document can hold one as ``\\udXXX``)
    is not UTF-8, so no frame, file or SQLite text can hold it. In JSON text it can only sit
    inside a string, where backslashreplace writes exactly its JSON escape: the same string
    once parsed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# ``text`` as a JSON string, quotes included, for putting event text together: the C function
# json.dumps itself uses with ensure_ascii=False (a lone surrogate passes through: see utf8_safe).
quote: Callable[[str], str] = json.encoder.encode_basestring


_pack_len16 = struct.Struct("!BBH").pack
_pack_len64 = struct.Struct("!BBQ").pack


def text_frame(text: str) -> bytes:
    """``text`` as one complete WebSocket text frame (RFC 6455 section 5.2): FIN and opcode 1,
    the payload length in 7, 16 or 64 bits, then the UTF-8 payload.

    A server never masks its frames and /api/events turns compression off, so these bytes are
    the same for every listener: built once per event, written as they are to each socket.
    (``serialise`` never returns a lone surrogate; ``backslashreplace`` only keeps a stray one
    from raising here, where no error may reach the node that emitted the event.)"""
    payload = text.encode("utf-8", "backslashreplace")
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return _pack_len16(0x81, 126, size) + payload
    return _pack_len64(0x81, 127, size) + payload


class Listener:
    """One subscriber: its filters, and where its frames go.

    Until ``attach`` (the WebSocket upgrade and any replay are still under way) frames are held
    here, at most ``limit`` events. Once attached, each flush of the bus writes the listener's
    frames for that loop iteration with a single ``transport.write``: no queue and no task per
    listener. Every write is whole frames, so the control frames aiohttp writes to the same
    transport (pings, pongs, the close frame) can only fall between frames, never inside one.

    Bounded memory: the listener is *lagging* when the events it has written that the transport
    still buffers (``get_write_buffer_size()``), plus the events about to be written, would exceed
    ``limit``. Then nothing more is written, ``on_lagging`` is called once (the owner closes the
    socket with 1013) and the events not written are counted in ``missed``. Events in the buffer
    are counted through a mark per write, (bytes written so far, events written so far): the
    transport has sent ``bytes written - buffer size`` bytes, so every mark at or below that is
    delivered. A frame only partly sent counts as unsent, and the few bytes of aiohttp's own
    control frames in the buffer make the count err the same way (never too low); an empty buffer
    resets it exactly.
    """

    __slots__ = (
        "_bus",
        "_bytes",
        "_events",
        "_held",
        "_held_events",
        "_marks",
        "_sent_events",
        "batch",
        "closed",
        "execution_id",
        "filtered",
        "lagging",
        "limit",
        "missed",
        "on_lagging",
        "skip",
        "transport",
        "types",
        "workflow_id",
    )

    def __init__(
        self,
        limit: int,
        *,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        types: Iterable[str] | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.types = frozenset(types) if types else None
        # Unfiltered listeners share the bus's broadcast batch; filtered ones collect their own.
        self.filtered = execution_id is not None or workflow_id is not None or self.types is not None
        self.limit = limit
        self.lagging = False
        self.missed = 0
        # Called once, synchronously, when the listener starts lagging. Its socket may be stuck on
        # a client that stopped reading, so the owner must close it (with a bounded wait) itself.
        self.on_lagging: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False  # detached for good: the socket is closing
        self.batch: list[bytes] = []  # a filtered listener's frames of this loop iteration
        self.skip = 0  # frames of the broadcast batch published before this listener subscribed
        self._bus = bus
        self._held: list[bytes] = []
        self._held_events = 0
        self._bytes = 0
        self._events = 0
        self._sent_events = 0
        self._marks: deque[tuple[int, int]] = deque()

    def matches(self, event_type: str, execution_id: str, workflow_id: str) -> bool:
        return (
            (self.execution_id is None or execution_id == self.execution_id)
            and (self.workflow_id is None or workflow_id == self.workflow_id)
            and (self.types is None or event_type in self.types)
        )

    def backlog(self) -> int:
        """Events given to this listener that have not reached the socket yet: held before
        ``attach``, or written but still in the transport's buffer."""
        transport = self.transport
        if transport is None:
            return self._held_events
        return self._unsent(transport.get_write_buffer_size())

    def _unsent(self, buffered: int) -> int:
        if not buffered:
            self._marks.clear()
            self._sent_events = self._events
            return 0
        sent_bytes = self._bytes - buffered
        marks = self._marks
        while marks and marks[0][0] <= sent_bytes:
            self._sent_events = marks.popleft()[1]
        return self._events - self._sent_events

    def deliver(self, data: bytes, count: int) -> None:
        """Write ``count`` events' ready-made frames ``data``, or hold or refuse them."""
        if self.lagging:
            self.missed += count
            return
        transport = self.transport
        if transport is None:
            if self.closed:
                return
            if self._held_events + count > self.limit:
                self._lag(count + self._held_events)
                return
            self._held.append(data)
            self._held_events += count
            return
        if transport.is_closing():  # the client went away: writing would only log warnings
            self.detach()
            return
        if self._unsent(transport.get_write_buffer_size()) + count > self.limit:
            self._lag(count)
            return
        transport.write(data)
        self._bytes += len(data)
        self._events += count
        self._marks.append((self._bytes, self._events))

    def attach(self, transport: asyncio.Transport | None) -> None:
        """Write to ``transport`` from now on, starting with the frames held so far."""
        if self.closed or self.lagging:
            return
        if transport is None or transport.is_closing():
            self.detach()
            return
        self.transport = transport
        # Bytes already buffered (the replayed history, sent before) carry no live events.
        self._bytes = transport.get_write_buffer_size()
        held, count = self._held, self._held_events
        self._held, self._held_events = [], 0
        if held:
            self.deliver(b"".join(held), count)

    def detach(self) -> None:
        """Stop for good: the socket is closing and no data frame may follow its close frame."""
        self.closed = True
        self.transport = None
        self.batch = []
        self._held, self._held_events = [], 0
        self._marks.clear()

    def _lag(self, unsent: int) -> None:
        self.lagging = True
        self.missed += unsent
        self._held, self._held_events = [], 0  # keep memory bounded: it is being disconnected
        self.batch = []
        if self._bus is not None:
            self._bus.listeners_dropped += 1
        if self.on_lagging is not None:
            self.on_lagging()


Observer = Callable[[dict[str, Any]], None]
# Takes (text, event_type, execution_id, workflow_id) of an event to send to other processes.
Forward = Callable[[str, str, str, str], None]


class EventBus:
    """Fans events out to listeners and internal observers. Lives for the whole server.

    Publishing costs O(1) per unfiltered listener group, not per listener: each event's frame is
    built once and appended to one broadcast batch that all unfiltered listeners share; filtered
    listeners are matched one by one and collect their own batch. The first publish of a loop
    iteration schedules one flush (``loop.call_soon``), which writes each listener's batch as one
    joined ``bytes``. With no listener, nothing is built or scheduled at all.

    Across processes (runtime/pgevents.py): while ``forwarding`` is true (a listener of another
    process wants some events), every published event is also handed to ``forward``; events
    that arrive from another process go in through ``publish_received``, to the listeners only
    (never forwarded again, never to the observers: the process that ran the execution did
    that). ``on_listeners_changed`` callbacks run after every (un)subscribe.
    """

    def __init__(self, queue_size: int = 10_000) -> None:
        self.queue_size = queue_size
        self.listeners: set[Listener] = set()
        self.observers: dict[str, list[Observer]] = {}
        self.published = 0
        self.listeners_dropped = 0
        # Tuples, rebuilt on (un)subscribe: a flush iterates them while callbacks may subscribe.
        self._everyone: tuple[Listener, ...] = ()
        self._filtered: tuple[Listener, ...] = ()
        self._batch: list[bytes] = []  # the broadcast frames of this loop iteration
        self._dirty: list[Listener] = []  # filtered listeners with a batch of this iteration
        self._flush_scheduled = False
        self.forwarding = False
        self.forward: Forward | None = None
        self.on_listeners_changed: list[Callable[[], None]] = []

    def subscribe(self, **filters: Any) -> Listener:
        """A new listener for events published from now on (``attach`` it to write them)."""
        listener = Listener(self.queue_size, bus=self, **filters)
        self.listeners.add(listener)
        if listener.filtered:
            self._filtered += (listener,)
        else:
            # The batch may already hold events published earlier in this iteration; they are
            # not this listener's (a replay would otherwise see them twice).
            listener.skip = len(self._batch)
            self._everyone += (listener,)
        self._changed()
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        listener.detach()
        if listener in self.listeners:
            self.listeners.discard(listener)
            self._everyone = tuple(item for item in self._everyone if item is not listener)
            self._filtered = tuple(item for item in self._filtered if item is not listener)
            self._changed()

    def _changed(self) -> None:
        for callback in self.on_listeners_changed:
            try:
                callback()
            except Exception:  # telling other processes is best effort; the listener works here
                log.exception("a listeners-changed callback failed")

    def observe(self, event_type: str, observer: Observer) -> None:
        """Call ``observer(event)`` for every event of that type (on the event loop, at once)."""
        self.observers.setdefault(event_type, []).append(observer)

    def publish(self, text: str, event_type: str, execution_id: str, workflow_id: str) -> None:
        """Send one event, given as its JSON text, to the listeners and observers that want it
        (here and, when ``forwarding``, in other processes)."""
        self.published += 1
        if self.listeners:
            self._to_listeners(text, event_type, execution_id, workflow_id)
        if self.forwarding and self.forward is not None:
            self.forward(text, event_type, execution_id, workflow_id)
        observers = self.observers.get(event_type)
        if observers:
            self._notify(observers, json.loads(text))

    def publish_received(self, text: str, event_type: str, execution_id: str, workflow_id: str) -> None:
        """Send one event to this process's listeners only (an event another process ran)."""
        if self.listeners:
            self._to_listeners(text, event_type, execution_id, workflow_id)

    def _to_listeners(self, text: str, event_type: str, execution_id: str, workflow_id: str) -> None:
        frame = None
        if self._everyone:
            frame = text_frame(text)
            self._batch.append(frame)
            if not self._flush_scheduled:
                self._schedule()
        for listener in self._filtered:
            if listener.matches(event_type, execution_id, workflow_id):
                if frame is None:
                    frame = text_frame(text)
                batch = listener.batch
                if not batch:
                    self._dirty.append(listener)
                    if not self._flush_scheduled:
                        self._schedule()
                batch.append(frame)

    @staticmethod
    def _notify(observers: list[Observer], event: dict[str, Any]) -> None:
        # Observers are few (event triggers, the CLI's printer) and want a dict: it is parsed
        # from the text here rather than built for every event nobody observes.
        for observer in observers:
            try:
                observer(event)
            except Exception:  # an observer's bug must not break the execution that emitted
                log.exception("event observer %r failed on %s", observer, event.get("type"))

    def _schedule(self) -> None:
        self._flush_scheduled = True
        asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write this iteration's frames: one joined ``bytes`` per listener, in publish order."""
        self._flush_scheduled = False
        batch = self._batch
        if batch:
            self._batch = []
            count = len(batch)
            data = batch[0] if count == 1 else b"".join(batch)
            for listener in self._everyone:
                skip = listener.skip
                if skip:
                    listener.skip = 0
                    if skip < count:
                        self._deliver(listener, b"".join(batch[skip:]), count - skip)
                else:
                    self._deliver(listener, data, count)
        dirty = self._dirty
        if dirty:
            self._dirty = []
            for listener in dirty:
                frames = listener.batch
                if frames:  # empty if it was dropped or detached since
                    listener.batch = []
                    self._deliver(listener, frames[0] if len(frames) == 1 else b"".join(frames), len(frames))

    @staticmethod
    def _deliver(listener: Listener, data: bytes, count: int) -> None:
        try:
            listener.deliver(data, count)
        except Exception:  # one broken socket must not cost the other listeners their events
            log.exception("writing events to a WebSocket listener failed; it gets no more")
            listener.detach()


class ExecutionEvents:
    """Numbers, builds, records and routes the events of one execution.

    Events are made as JSON text, not as dicts: every WebSocket frame carries the text, the
    history keeps its compact form (``eventlog``: the event without what all events of the
    execution share), and only observers get a dict (parsed from it). ``emit`` takes the fields
    as a dict and encodes them; ``emit_text`` takes them already encoded, for the events every
    execution publishes (NodeStarted, NodeCompleted, ...), where a dict and a JSON encoder pass
    cost many times more than putting the text together (BENCHMARKS.md has the figures).
    Either way the text is the same: type, execution_id, workflow_id and seq first, then the
    fields, then the timestamp. The published text is built only when a listener or an
    observer wants it.

    ``wanted`` tells the engine whether building an event's fields is worth it at all;
    ``seq`` advances regardless so recorded and live events always agree on numbering.
    """

    __slots__ = (
        "_head",
        "_observed",
        "_redactor",
        "_tail",
        "bus",
        "dropped",
        "execution_id",
        "origin",
        "record_limit",
        "recorded",
        "seq",
        "workflow_id",
    )

    def __init__(
        self,
        bus: EventBus,
        execution_id: str,
        workflow_id: str,
        *,
        record: bool,
        record_limit: int = 10_000,
        redactor: Redactor | None = None,
    ) -> None:
        self._redactor = redactor
        self.bus = bus
        self.execution_id = execution_id
        self.workflow_id = workflow_id
        self.seq = 0
        # The record keeps at most record_limit events (compact texts): the first half in
        # ``recorded``, then, once that is full, the latest ones in ``_tail``; how many fell out
        # between is counted.
        self.recorded: list[str] | None = [] if record else None
        self.record_limit = max(2, record_limit)
        self._tail: deque[str] | None = None
        # Events left out of the record (they were still published live). A plain attribute,
        # not a property: every recorded execution's end reads it.
        self.dropped = 0
        self._observed = bus.observers
        self.origin: int | None = None  # Unix milliseconds of the first event built
        # What every published text repeats after its type: made when the first one is (an
        # execution that only records never needs it).
        self._head: str | None = None

    @property
    def wanted(self) -> bool:
        bus = self.bus
        return self.recorded is not None or bool(bus.listeners) or bus.forwarding or bool(self._observed)

    def skip(self) -> None:
        """Number an event that nobody wants, without building it."""
        self.seq += 1

    def emit(self, event_type: str, fields: dict[str, Any]) -> None:
        """Publish an event with these fields (any JSON-able values; odd ones become text)."""
        if self._unwanted(event_type):
            self.seq += 1
            return
        self.emit_text(event_type, serialise(fields)[1:-1] if fields else "")

    def emit_text(self, event_type: str, fields: str, millis: int | None = None) -> None:
        """Publish an event whose fields are given as JSON object members, already encoded
        (``'"node_id":"a","duration_ms":1'``, or ``""`` for none). ``millis`` is its moment in
        Unix milliseconds, now unless given."""
        self.seq = seq = self.seq + 1
        bus = self.bus
        recorded = self.recorded
        live = self._live(event_type)
        if recorded is None and not live:
            return
        if millis is None:
            millis = now_millis()
        origin = self.origin
        if origin is None:
            origin = self.origin = millis
        if fields:
            if not fields.isascii():
                fields = utf8_safe(fields)
            body = f"{seq},{fields}"
        else:
            body = str(seq)
        redactor = self._redactor
        text = None
        if redactor is not None and redactor.pattern is not None:
            # A node may have echoed a resolved secret into its outputs or messages: listeners,
            # history and observers all get the masked event, expanded from the masked record.
            compact = serialise(redactor.redact_json(json.loads(compact_event(event_type, body, millis - origin))))
            if live:
                text = expand((compact,), origin, self.execution_id, self.workflow_id)[0]
        else:
            if recorded is not None:
                compact = compact_event(event_type, body, millis - origin)
            if live:
                text = full_event(event_type, self._head or self._make_head(), body, millis)
        if recorded is not None:
            if self._tail is None and len(recorded) < self.record_limit:
                recorded.append(compact)
            else:
                self._record_beyond_limit(compact)
        if text is not None:
            bus.publish(text, event_type, self.execution_id, self.workflow_id)
        else:
            bus.published += 1

    def _make_head(self) -> str:
        head = event_head(self.execution_id, self.workflow_id)
        self._head = head = head if head.isascii() else utf8_safe(head)
        return head

    def _unwanted(self, event_type: str) -> bool:
        return self.recorded is None and not self._live(event_type)

    def _live(self, event_type: str) -> bool:
        """Whether a listener, another process or an observer wants this event now."""
        bus = self.bus
        return bool(bus.listeners or bus.forwarding or event_type in self._observed)

    def _record_beyond_limit(self, compact: str) -> None:
        """The record is full: keep its first half and, from here on, the latest events."""
        tail = self._tail
        if tail is None:
            recorded = self.recorded
            assert recorded is not None
            keep = self.record_limit // 2
            tail = self._tail = deque(recorded[keep:], maxlen=self.record_limit - keep)
            del recorded[keep:]
        if len(tail) == tail.maxlen:
            self.dropped += 1
        tail.append(compact)

    def _compact_record(self) -> list[str]:
        """The record's compact events: every event, or when more were emitted than
        ``record_limit``, the first and the latest ones around a marker saying how many were
        left out (a NodeEvent of type Warning with ``events_dropped``)."""
        recorded = list(self.recorded or ())
        tail = self._tail
        if tail is None:
            return recorded
        if self.dropped:
            first_dropped = self.seq - len(tail) - self.dropped + 1
            recorded.append(self._dropped_marker(first_dropped))
        recorded.extend(tail)
        return recorded

    def _dropped_marker(self, first_dropped: int) -> str:
        last_dropped = first_dropped + self.dropped - 1
        fields = (
            f'"node_id":null,"event":{{"event_type":"Warning",'
            f'"message":"{self.dropped} events (seq {first_dropped} to {last_dropped}) are not in the record:'
            f' it keeps {self.record_limit} events per execution (FLOWENGINE_MAX_RECORDED_EVENTS)",'
            f'"events_dropped":{self.dropped},"first_dropped_seq":{first_dropped},"last_dropped_seq":{last_dropped}}}'
        )
        return compact_event("NodeEvent", f"{first_dropped},{fields}", now_millis() - (self.origin or 0))

    def record(self) -> str:
        """The record as the history stores it (``eventlog``'s compact form)."""
        if self._tail is None:  # the usual case: every event is in ``recorded``, no copy needed
            return pack(self.recorded or (), self.origin or 0)
        return pack(self._compact_record(), self.origin or 0)

    def recorded_texts(self) -> list[str]:
        """The record as the texts that were published (see ``_compact_record``)."""
        return expand(self._compact_record(), self.origin or 0, self.execution_id, self.workflow_id)

    def recorded_json(self) -> str:
        """The record as one JSON array of the published texts."""
        return "[" + ",".join(self.recorded_texts()) + "]"
