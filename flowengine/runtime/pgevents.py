"""Events across processes that share a PostgreSQL database (SCALE-OUT.md section 1).

Every process keeps its own EventBus and WebSockets; what crosses between processes is only
what a listener of another process wants:

- **Interest.** Each process publishes the filters of its listeners (one ``event_interest`` row,
  gone with its registration) and NOTIFYs ``flowengine_event_interest``; the others read the
  rows again on that notification and on every heartbeat (a missed notification costs at most
  one heartbeat). With no remote interest the bus's ``forwarding`` is off and nothing is sent.
- **Sending.** An event a remote filter matches is queued for that process's channel
  (``flowengine_events_<hash of its node id>``); once per event-loop turn the queued texts are
  joined with ``\\n`` into notifications under NOTIFY_LIMIT bytes, and one statement
  (``pg_notify`` over ``unnest``) sends them all. An event too large for a notification goes to
  an ``event_spill`` row, the notification carries ``#<id>`` instead (rows older than a minute
  are deleted). One task sends, in order, on one connection of its own (opened when first
  needed, ``synchronous_commit=off``: a notification is a hint, not a record), so one
  execution's events arrive in ``seq`` order.
- **Receiving.** A process feeds what arrives on its channel into its own bus
  (``publish_received``): the same text, so the same frames as a local listener; filters,
  1013, heartbeats and 1001 work as for local events. Notifications are handled in arrival
  order, including while a spill row is being read. An event whose ``seq`` is not above the last
  one this process published for that execution is a duplicate and is dropped.
- **Asking the owner.** The live state of an execution exists only in the process running it.
  A replay (``/api/events?execution_id=X&replay=true``) or a ``GET /api/executions/X`` on
  another process sends a request to the owner's channel; the owner answers on the asker's
  channel through the same ordered queue as the events. For a replay the owner first forwards
  every later event of X to the asker (a pin, until X ends), then in the same turn takes the
  events so far: the asker subscribes its listener when the answer arrives, so what follows the
  answer is exactly the live events after it (and ``seq`` deduplicates anything that crossed).
  The processes need not know each other's address (no port to open between them, no
  credentials for an internal call): the database they share carries it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.events import EventBus, Listener
from ..errors import Unavailable
from ..lib.logthrottle import ThrottledLog
from ..lib.metrics import Registry
from .executions import ExecutionService

if TYPE_CHECKING:
    import asyncpg

__all__ = ["INTEREST_CHANNEL", "NOTIFY_LIMIT", "RemoteEvents", "events_channel"]

log = logging.getLogger("flowengine.runtime.pgevents")
_throttled = ThrottledLog(log)  # an outage loses events by the thousand: one line a minute

INTEREST_CHANNEL = "flowengine_event_interest"
NOTIFY_LIMIT = 7_900  # bytes of one notification's payload: PostgreSQL refuses 8,000
SPILL_MAX_AGE = 60  # seconds a spill row is kept: long enough for any receiver to read it
OUTBOX_BYTES = 16 * 1024 * 1024  # unsent events beyond this are dropped (and counted)
STATEMENT_BYTES = 1024 * 1024  # payload bytes one send statement carries at most
MAX_FILTERS = 1000  # beyond this many distinct filters a process asks for everything
MAX_TRACKED = 100_000  # executions whose last received seq is remembered

# (execution_id, workflow_id, types): None matches anything, as Listener's filters.
Filter = tuple[str | None, str | None, frozenset[str] | None]
T = TypeVar("T")

# The head every event text starts with (core/eventlog.py builds it), read without parsing the
# whole event; anything else is parsed as JSON.
_HEAD = re.compile(r'\{"type":"(\w+)","execution_id":("(?:[^"\\]|\\.)*"),"workflow_id":("(?:[^"\\]|\\.)*"),"seq":(\d+)')


def events_channel(node_id: str) -> str:
    """The notification channel of the process registered as ``node_id`` (an identifier of
    fixed length, whatever the host name)."""
    return "flowengine_events_" + hashlib.sha256(node_id.encode()).hexdigest()[:20]


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _matches(filters: tuple[Filter, ...], event_type: str, execution_id: str, workflow_id: str) -> bool:
    for wanted_execution, wanted_workflow, types in filters:
        if (
            (wanted_execution is None or wanted_execution == execution_id)
            and (wanted_workflow is None or wanted_workflow == workflow_id)
            and (types is None or event_type in types)
        ):
            return True
    return False


def _filter_of(item: Any) -> Filter:
    execution_id, workflow_id, types = item
    return (execution_id, workflow_id, frozenset(types) if types else None)


def _listener_filters(listeners: set[Listener]) -> list[list[Any]]:
    """The distinct filters of these listeners, as JSON-able lists in a stable order; one
    filter matching everything when any listener (or too many filters) asks for that."""
    filters = set()
    for listener in listeners:
        if not listener.filtered:
            return [[None, None, None]]
        filters.add((listener.execution_id, listener.workflow_id, tuple(sorted(listener.types or ())) or None))
    if len(filters) > MAX_FILTERS:
        return [[None, None, None]]
    return sorted(([*item[:2], list(item[2]) if item[2] else None] for item in filters), key=json.dumps)


@dataclass
class _Message:
    """Notifications to send in one statement, and the spill rows they refer to."""

    channels: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    spill_ids: list[str] = field(default_factory=list)
    spills: list[str] = field(default_factory=list)
    events: int = 0
    spilled: int = 0  # events (not answers) among the spill rows
    size: int = 0

    def add(self, channel: str, texts: list[str], events: int) -> None:
        """``texts`` for ``channel``, packed under NOTIFY_LIMIT per notification."""
        lines: list[str] = []
        size = 0
        for text in texts:
            length = _size(text)
            if length > NOTIFY_LIMIT - 2:
                spill_id = uuid.uuid4().hex
                self.spill_ids.append(spill_id)
                self.spills.append(text)
                self.size += length
                self.spilled += 1 if events else 0
                text, length = f"#{spill_id}", 33
            if lines and size + 1 + length > NOTIFY_LIMIT:
                self._notify(channel, "\n".join(lines), size)
                lines, size = [], 0
            size += length + (1 if lines else 0)
            lines.append(text)
        if lines:
            self._notify(channel, "\n".join(lines), size)
        self.events += events

    def _notify(self, channel: str, payload: str, size: int) -> None:
        self.channels.append(channel)
        self.payloads.append(payload)
        self.size += size

    def extend(self, other: _Message) -> None:
        for name in ("channels", "payloads", "spill_ids", "spills"):
            getattr(self, name).extend(getattr(other, name))
        self.events += other.events
        self.spilled += other.spilled
        self.size += other.size


@dataclass
class _Request:
    """A question this process asked another one: done with ``answer(body)``'s value."""

    answer: Callable[[str], Any]
    done: asyncio.Future[Any]


class RemoteEvents:
    """The cross-process half of one process's event bus (see the module's docstring).

    ``store`` is the PgStore (its pool, LISTEN registration and node id), ``runs`` the
    execution service whose running executions this process answers for."""

    def __init__(self, store: Any, bus: EventBus, runs: ExecutionService, *, answer_timeout: float) -> None:
        self.store = store
        self.bus = bus
        self.runs = runs
        self.answer_timeout = answer_timeout
        self.channel = events_channel(store.node_id)
        # What the other processes' listeners want: their channel -> their filters.
        self._wanted: dict[str, tuple[Filter, ...]] = {}
        # Executions another process asked about (a replay): execution id -> its channels.
        self._pins: dict[str, set[str]] = {}
        self._pending: dict[str, list[str]] = {}  # texts of this loop turn, per channel
        self._flush_scheduled = False
        self._outbox: deque[_Message] = deque()
        self._outbox_bytes = 0
        self._sender: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._inbox: deque[str] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._asked: dict[str, _Request] = {}
        self._last_seq: dict[str, int] = {}
        self._announced: str | None = None  # the filters last written, as JSON text
        self._announce_lock = asyncio.Lock()  # one write at a time, so the last one is the latest
        self._reload_lock = asyncio.Lock()
        self._announcing: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.published = 0  # events sent to other processes (once per receiving process)
        self.received = 0  # events received from other processes and published here
        self.dropped = 0  # events that could not be sent or read (a database outage, a full outbox)
        self.spilled = 0  # events that went through a spill row
        bus.forward = self.forward
        bus.on_listeners_changed.append(self._listeners_changed)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Register this process's channels on the LISTEN connection; learn what the others want."""
        await self.store.listen_to(self.channel, self._received)
        await self.store.listen_to(INTEREST_CHANNEL, self._interest_changed)
        try:
            await self.resync()
        except Exception as exc:  # every heartbeat tries again
            log.warning("could not exchange listener filters with the other processes yet: %s", exc)

    async def resync(self) -> None:
        """After the LISTEN connection was (re)opened: notifications may have been missed, so
        write this process's filters again and read everyone else's."""
        self._announced = None
        await self._announce()
        await self.reload()

    async def tick(self) -> None:
        """Every heartbeat: catch up with missed interest changes, write this process's filters
        if the last write failed, forget pins of executions that ended, delete old spill rows."""
        await self.reload()
        if self._announced is None:
            await self._announce()
        for execution_id in [key for key in self._pins if self.runs.get(key) is None]:
            del self._pins[execution_id]
        self._set_forwarding()
        await self.store._run(
            lambda c: c.execute(
                "DELETE FROM event_spill WHERE created_at < now() - make_interval(secs => $1)", float(SPILL_MAX_AGE)
            )
        )

    def forget_announcement(self) -> None:
        """This process registered again (its interest row went with the old registration)."""
        self._announced = None

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                self._flush()
                while self._sender is not None and not self._sender.done():
                    await asyncio.shield(self._sender)
        for task in [self._sender, self._draining, self._announcing, self._reloading, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for request in self._asked.values():
            if not request.done.done():
                request.done.set_exception(Unavailable("the server is shutting down"))
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    def register_metrics(self, registry: Registry) -> None:
        registry.counter(
            "flowengine_cluster_events_published_total",
            "Events this process sent through PostgreSQL to listeners of other processes (once per receiving process).",
            callback=lambda: self.published,
        )
        registry.counter(
            "flowengine_cluster_events_received_total",
            "Events of executions run by other processes that this process published to its listeners.",
            callback=lambda: self.received,
        )
        registry.counter(
            "flowengine_cluster_events_spilled_total",
            "Events sent to other processes through a spill row (too large for one notification).",
            callback=lambda: self.spilled,
        )
        registry.counter(
            "flowengine_cluster_events_dropped_total",
            "Events for other processes that could not be sent or read (database outage, full outbox).",
            callback=lambda: self.dropped,
        )
        registry.gauge(
            "flowengine_cluster_remote_listener_filters",
            "Listener filters of other processes this process sends events for.",
            callback=lambda: sum(len(filters) for filters in self._wanted.values()) + len(self._pins),
        )

    # -- sending ---------------------------------------------------------------------------

    def forward(self, text: str, event_type: str, execution_id: str, workflow_id: str) -> None:
        """The bus's ``forward``: queue the event for every process whose listeners want it."""
        pinned = self._pins.get(execution_id)
        sent = 0
        for channel, filters in self._wanted.items():
            if (pinned is not None and channel in pinned) or _matches(filters, event_type, execution_id, workflow_id):
                self._queue(channel, text)
                sent += 1
        if pinned is not None:
            for channel in pinned:
                if channel not in self._wanted:
                    self._queue(channel, text)
                    sent += 1
            if event_type == "WorkflowCompleted":  # nothing follows it
                del self._pins[execution_id]
                self._set_forwarding()
        self.published += sent

    def _queue(self, channel: str, text: str) -> None:
        texts = self._pending.get(channel)
        if texts is None:
            texts = self._pending[channel] = []
        texts.append(text)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """This loop turn's events, packed into notifications, onto the ordered outbox."""
        self._flush_scheduled = False
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        message = _Message()
        for channel, texts in pending.items():
            message.add(channel, texts, len(texts))
        self._send(message)

    def _send(self, message: _Message) -> None:
        if self._outbox_bytes + message.size > OUTBOX_BYTES:
            self._lost(message.events, "the outbox to PostgreSQL is full")
            return
        self.spilled += message.spilled
        self._outbox.append(message)
        self._outbox_bytes += message.size
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        outbox = self._outbox
        while outbox:
            message = outbox.popleft()
            # Whatever queued up while the last statement ran goes in one statement.
            while outbox and message.size + outbox[0].size <= STATEMENT_BYTES:
                message.extend(outbox.popleft())
            self._outbox_bytes -= message.size
            try:
                await self._execute(message)
            except Exception as exc:
                self._lost(message.events, f"sending to PostgreSQL failed: {exc}")
                connection, self._connection = self._connection, None
                if connection is not None:
                    connection.terminate()

    async def _execute(self, message: _Message) -> None:
        connection = self._connection
        if connection is None or connection.is_closed():
            import asyncpg  # the store that made this object imported it already

            connection = self._connection = await asyncpg.connect(
                self.store.direct_url,
                timeout=self.answer_timeout,
                server_settings={"synchronous_commit": "off", "application_name": "flowengine events"},
            )
        # Bounded: a half-open connection would answer nothing, and hold every later event.
        timeout = self.answer_timeout
        notify = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)"
        if not message.spills:
            await connection.execute(notify, message.channels, message.payloads, timeout=timeout)
            return
        async with connection.transaction():  # the rows are there when the notifications arrive
            await connection.execute(
                "INSERT INTO event_spill (id, payload) SELECT * FROM unnest($1::text[], $2::text[])",
                message.spill_ids,
                message.spills,
                timeout=timeout,
            )
            await connection.execute(notify, message.channels, message.payloads, timeout=timeout)

    def _lost(self, events: int, why: str) -> None:
        if events:
            _throttled.warning("lost", "%d event(s) for listeners of other processes were lost: %s", events, why)
            self.dropped += events

    # -- receiving -------------------------------------------------------------------------

    def _received(self, payload: str) -> None:
        """A notification on this process's channel: events, a request, or an answer."""
        if payload.startswith("?"):
            self._answer(payload[1:])
        elif self._inbox or payload.startswith(("!", "#")) or "\n#" in payload:
            # Needs a read (a spill row) or waits behind one: handled in order by one task.
            self._inbox.append(payload)
            if self._draining is None or self._draining.done():
                self._draining = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._publish_lines(payload.split("\n"))

    async def _drain(self) -> None:
        inbox = self._inbox
        while inbox:
            payload = inbox[0]
            try:
                if payload.startswith("!"):
                    request_id, _, body = payload[1:].partition(" ")
                    if body.startswith("#"):
                        spilled = (await self._read_spills([body[1:]], answer=True)).get(body[1:])
                        if spilled is None:
                            self._failed(request_id, "its answer could not be read from the database")
                            continue
                        body = spilled
                    self._answered(request_id, body)
                else:
                    lines = payload.split("\n")
                    spills = await self._read_spills([line[1:] for line in lines if line.startswith("#")])
                    self._publish_lines([spills.get(line[1:], "") if line.startswith("#") else line for line in lines])
            except Exception:
                log.exception("a notification from another process could not be handled")
            finally:
                inbox.popleft()

    async def _read_spills(self, ids: list[str], *, answer: bool = False) -> dict[str, str]:
        """The spill rows' payloads by id; a row that cannot be read is missing (and counted
        as a lost event unless it holds an ``answer``)."""
        if not ids:
            return {}
        try:
            rows = await self.store._run(lambda c: c.fetch("SELECT id, payload FROM event_spill WHERE id = ANY($1::text[])", ids))
        except Exception as exc:
            rows = []
            log.warning("reading a spill row failed: %s", exc)
        found = {row["id"]: row["payload"] for row in rows}
        if not answer:
            self._lost(len(ids) - len(found), "a spill row could not be read")
        return found

    def _publish_lines(self, lines: list[str]) -> None:
        publish = self.bus.publish_received
        last_seq = self._last_seq
        for text in lines:
            if not text:
                continue
            head = _HEAD.match(text)
            if head is not None:
                event_type, execution_id, workflow_id, seq = (
                    head.group(1), _unquote(head.group(2)), _unquote(head.group(3)), int(head.group(4)),
                )  # fmt: skip
            else:
                event = json.loads(text)
                event_type, execution_id, workflow_id, seq = (
                    event["type"], event["execution_id"], event["workflow_id"], int(event.get("seq") or 0),
                )  # fmt: skip
            if seq:  # 0: an event no execution numbered (interrupted by the reaper)
                if seq <= last_seq.get(execution_id, 0):
                    continue  # already published here
                if event_type == "WorkflowCompleted":
                    last_seq.pop(execution_id, None)
                else:
                    self._saw(execution_id, seq)
            self.received += 1
            publish(text, event_type, execution_id, workflow_id)

    def _saw(self, execution_id: str, seq: int) -> None:
        last_seq = self._last_seq
        if execution_id not in last_seq and len(last_seq) >= MAX_TRACKED:
            del last_seq[next(iter(last_seq))]  # the oldest: an execution whose end was filtered out
        last_seq[execution_id] = max(seq, last_seq.get(execution_id, 0))

    # -- asking the process that runs an execution -----------------------------------------

    async def _owner(self, execution_id: str) -> str | None:
        """The node id of the other process running ``execution_id``, or None."""
        rows = await self.store._query(
            "SELECT owner FROM executions WHERE id = $1 AND status = 'running' AND owner <> $2",
            execution_id,
            self.store.node_id,
        )
        return rows[0]["owner"] if rows else None

    async def _ask(self, owner: str, kind: str, execution_id: str, answer: Callable[[str], T]) -> T:
        """Ask ``owner`` about ``execution_id``; ``answer(body)`` is called in the turn the
        answer is handled, in order with the events that came before and after it."""
        if not self.store.listener_open:  # the answer could not reach this process
            raise Unavailable("this process's notification connection to the database is down: try again shortly")
        request_id = uuid.uuid4().hex
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._asked[request_id] = _Request(answer, done)
        message = _Message()
        message.add(events_channel(owner), [f"?{request_id} {self.channel} {kind} {execution_id}"], 0)
        self._send(message)
        try:
            await asyncio.wait((done,), timeout=self.answer_timeout)
        finally:
            self._asked.pop(request_id, None)
        if not done.done():
            raise Unavailable(
                f"the process running execution {execution_id} did not answer within {self.answer_timeout:g} s: try again"
            )
        return done.result()

    def _failed(self, request_id: str, why: str) -> None:
        request = self._asked.pop(request_id, None)
        if request is not None and not request.done.done():
            request.done.set_exception(Unavailable(f"the process running the execution answered, but {why}: try again"))

    def _answered(self, request_id: str, body: str) -> None:
        request = self._asked.pop(request_id, None)
        if request is None or request.done.done():
            return  # asked too long ago
        try:
            request.done.set_result(request.answer(body))
        except Exception as exc:
            request.done.set_exception(exc)

    async def replay(self, execution_id: str, subscribe: Callable[[], Listener]) -> tuple[list[str], Listener] | None:
        """For a replay of an execution another process runs: its events so far (JSON texts in
        seq order) and the listener ``subscribe()`` made for the live ones, subscribed at the
        point of the answer in the stream. None when no other process runs it (any more):
        the store has it all then."""
        owner = await self._owner(execution_id)
        if owner is None:
            return None

        def answer(body: str) -> tuple[list[str], Listener] | None:
            head, _, rest = body.partition("\n")
            if head == "gone":
                return None
            seq = int(head.split(" ")[1])
            if seq:
                self._saw(execution_id, seq)  # anything at or below it is in ``rest``
            return (rest.split("\n") if rest else []), subscribe()

        return await self._ask(owner, "events", execution_id, answer)

    async def recorded_json(self, execution_id: str) -> str | None:
        """The events so far (a JSON array) of an execution another process runs; None when it
        runs nowhere else or has ended there (the store has its record then)."""
        if self.runs.get(execution_id) is not None:
            return None
        owner = await self._owner(execution_id)
        if owner is None:
            return None

        def answer(body: str) -> str | None:
            head, _, rest = body.partition("\n")
            if head == "gone":
                return None
            return "[" + rest.replace("\n", ",") + "]"

        return await self._ask(owner, "recorded", execution_id, answer)

    async def node_records(self, row: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Live node statuses of an execution another process runs; None when it runs nowhere
        else, has ended, or its process did not answer (the store's record then stands)."""
        if row["status"] != "running" or self.runs.get(row["id"]) is not None:
            return None
        owner = await self._owner(row["id"])
        if owner is None:
            return None

        def answer(body: str) -> list[dict[str, Any]] | None:
            head, _, rest = body.partition("\n")
            if head == "gone":
                return None
            return [
                {"node_id": node_id, "node_type": node_type, "status": status} for node_id, node_type, status in json.loads(rest)
            ]

        try:
            return await self._ask(owner, "nodes", row["id"], answer)
        except Unavailable:
            return None

    def _answer(self, request: str) -> None:
        """Another process asks about an execution: answer on its channel, after every event
        queued for it so far."""
        try:
            request_id, reply, kind, execution_id = request.split(" ", 3)
        except ValueError:
            log.warning("ignoring a malformed request from another process: %r", request[:100])
            return
        execution = self.runs.get(execution_id)
        if execution is None:
            # Ended here (or never ran here): the asker reads the store, once its record is in.
            self._spawn(self._answer_gone(reply, request_id))
            return
        if kind == "events":
            pins = self._pins.get(execution_id)
            if pins is None:
                pins = self._pins[execution_id] = set()
            pins.add(reply)
            self._set_forwarding()
            texts = execution.recorded_events() or []
            body = "\n".join([f"events {execution.events.seq}", *texts])
        elif kind == "recorded":  # what was recorded so far, nothing live
            body = "\n".join(["recorded", *(execution.recorded_events() or [])])
        else:
            body = "nodes\n" + json.dumps(execution.node_statuses())
        self._reply(reply, request_id, body)

    async def _answer_gone(self, reply: str, request_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.committed()
        self._reply(reply, request_id, "gone")

    def _reply(self, channel: str, request_id: str, body: str) -> None:
        self._flush()  # events of this turn go first: the answer follows them in the stream
        message = _Message()
        message.add(channel, [f"!{request_id} {body}"], 0)
        if message.spills:
            # The whole answer went to a spill row: say which request it answers.
            message.payloads[-1] = f"!{request_id} #{message.spill_ids[0]}"
            message.spills[0] = body
        self._send(message)

    # -- interest ----------------------------------------------------------------------------

    def _set_forwarding(self) -> None:
        self.bus.forwarding = bool(self._wanted) or bool(self._pins)

    def _listeners_changed(self) -> None:
        if self._announcing is None or self._announcing.done():
            self._announcing = asyncio.get_running_loop().create_task(self._announce_soon())

    async def _announce_soon(self) -> None:
        await asyncio.sleep(0)  # one write for all the (un)subscribes of this turn
        await self._announce()

    async def _announce(self) -> None:
        """Write this process's listener filters (and notify the others) if they changed."""
        async with self._announce_lock:
            await self._announce_locked()

    async def _announce_locked(self) -> None:
        while True:
            filters = _listener_filters(self.bus.listeners)
            text = json.dumps(filters, separators=(",", ":"))
            if text == self._announced:
                return
            try:
                await self.store._run(lambda c, text=text, filters=filters: self._write_interest(c, text, bool(filters)))
            except Exception as exc:  # the next heartbeat tries again
                self._announced = None
                log.warning("could not tell the other processes what this process's listeners want: %s", exc)
                return
            self._announced = text

    async def _write_interest(self, connection: asyncpg.Connection, text: str, wanted: bool) -> None:
        async with connection.transaction():
            if wanted:
                await connection.execute(
                    "INSERT INTO event_interest (node_id, channel, filters) VALUES ($1, $2, $3)"
                    " ON CONFLICT (node_id) DO UPDATE SET channel = excluded.channel, filters = excluded.filters",
                    self.store.node_id,
                    self.channel,
                    text,
                )
            else:
                await connection.execute("DELETE FROM event_interest WHERE node_id = $1", self.store.node_id)
            await connection.execute("SELECT pg_notify($1, $2)", INTEREST_CHANNEL, self.store.node_id)

    def _interest_changed(self, node_id: str) -> None:
        if node_id == self.store.node_id:
            return
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload_logged())

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception as exc:  # the next heartbeat reads them again
            log.warning("could not read what other processes' listeners want: %s", exc)

    async def reload(self) -> None:
        """Read every other process's listener filters."""
        async with self._reload_lock:
            await self._reload_locked()

    async def _reload_locked(self) -> None:
        while True:
            self._reload_again = False
            rows = await self.store._run(
                lambda c: c.fetch("SELECT channel, filters FROM event_interest WHERE node_id <> $1", self.store.node_id)
            )
            wanted = {}
            for row in rows:
                try:
                    wanted[row["channel"]] = tuple(_filter_of(item) for item in json.loads(row["filters"]))
                except (ValueError, TypeError):
                    log.warning("ignoring unreadable listener filters of channel %s", row["channel"])
            if not self._reload_again:
                self._wanted = wanted
                self._set_forwarding()
                return

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _unquote(quoted: str) -> str:
    return quoted[1:-1] if "\\" not in quoted else str(json.loads(quoted))
