"""The PostgreSQL store: what several flowengine processes share (SCALE-OUT.md).

Same interface as the SQLite ``Store`` (storage.py names it), plus what sharing needs:

- History goes through the writer both stores share (groupcommit.py), on the event loop:
  quiet, a batch is committed at once; busy, at most one commit per COMMIT_INTERVAL for writes
  nobody waits on; a caller about to answer a client awaits ``committed()``, which joins the
  next group commit (no statement of its own). In an outage the batch stays queued. Every connection commits with
  ``synchronous_commit=on``, so a committed record survives a crash of the database server too.
- Workflow changes are one transaction each, bump a generation counter and NOTIFY the other
  processes, which reload that workflow; a write returns once every live process acknowledged
  the new generation (bounded by the node timeout). Webhook paths are a unique table: two
  processes racing for one path, the loser gets WorkflowConflict (409).
- Liveness: one row per process in ``nodes`` (heartbeat from the database clock), the epoch of
  that registration stamped on every execution it starts; a completion is written only
  ``WHERE owner = me AND epoch = e AND status = 'running'`` (fencing), so a process that was
  declared dead while paused cannot overwrite ``interrupted``. liveness.py drives it.
- asyncpg is imported only here, and this module only for a ``postgresql://`` URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # the optional extra "postgres"; build.py imports this module only for a URL

from ..core.eventlog import expand_json
from ..core.records import durations_of
from ..core.triggerchecks import webhook_path
from ..errors import StoreError, StoreRefused, StoreUnavailable, WorkflowConflict
from .groupcommit import GroupCommit, RetryLater
from .pgliveness import CATALOG_CHANNEL, PgLiveness, node_name
from .pgschema import SCHEMA_VERSION, migrate
from .storage import FORGET_VERSIONS, SearchDialect, execution_filters

if TYPE_CHECKING:
    from ..core.engine import ExecutionResult

__all__ = ["PgStore", "SCHEMA_VERSION"]

log = logging.getLogger("flowengine.runtime.pgstore")

_STATEMENT_OVERHEAD = 200
_COPY_AT = 32  # finished rows in one batch from which binary COPY beats executemany
_PG_SEARCH = SearchDialect(placeholder=lambda number: f"${number}", trigger_type="(trigger::jsonb ->> 'type')")
_PRUNE_LOCK = 0x70727565  # one process prunes at a time; the others skip that pass

_EXECUTION_COLUMNS = (
    "position, id, workflow_id, workflow_version, trigger, inputs, status, started_at, finished_at,"
    " duration_ms, duration_us, error, attempts, retry_of"
)
_FULL_COLUMNS = (
    "id", "workflow_id", "workflow_version", "trigger", "inputs", "retry_of", "owner", "epoch", "status",
    "started_at", "finished_at", "duration_ms", "duration_us", "error", "attempts", "nodes", "events",
)  # fmt: skip
_INSERT_START = (
    "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, retry_of, owner, epoch, status,"
    " started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9)"
)
_INSERT_FULL = (
    f"INSERT INTO executions ({', '.join(_FULL_COLUMNS)}) VALUES"
    f" ({', '.join(f'${n}' for n in range(1, len(_FULL_COLUMNS) + 1))})"
)
# Fenced: only the registration that started it may finish it, and only while it runs.
_FINISH = (
    "UPDATE executions SET status = $1, started_at = $2, finished_at = $3, duration_ms = $4, duration_us = $5,"
    " error = $6, attempts = $7, nodes = $8, events = $9"
    " WHERE id = $10 AND owner = $11 AND epoch = $12 AND status = 'running'"
)

_FULL_TYPES = (
    "text", "text", "int4", "text", "text", "text", "text", "int8", "text",
    "text", "text", "float8", "int8", "text", "int4", "text", "text",
)  # fmt: skip
_FINISH_COLUMNS = (
    ("status", "text"), ("started_at", "text"), ("finished_at", "text"), ("duration_ms", "float8"),
    ("duration_us", "int8"), ("error", "text"), ("attempts", "int4"), ("nodes", "text"), ("events", "text"),
    ("id", "text"), ("owner", "text"), ("epoch", "int8"),
)  # fmt: skip
_FENCED = "e.id = u.id AND e.owner = u.owner AND e.epoch = u.epoch AND e.status = 'running'"
# New rows and fenced finishes in one statement (arrays, one per column).
_WRITE_BOTH = (
    f"WITH inserted AS (INSERT INTO executions ({', '.join(_FULL_COLUMNS)})"
    f" SELECT * FROM unnest({', '.join(f'${n + 1}::{kind}[]' for n, kind in enumerate(_FULL_TYPES))})),"
    " finished AS (UPDATE executions e SET"
    f" {', '.join(f'{name} = u.{name}' for name, _ in _FINISH_COLUMNS[:9])}"
    " FROM unnest("
    + ", ".join(f"${len(_FULL_TYPES) + n + 1}::{kind}[]" for n, (_, kind) in enumerate(_FINISH_COLUMNS))
    + f") AS u({', '.join(name for name, _ in _FINISH_COLUMNS)})"
    f" WHERE {_FENCED})"
    " SELECT 1"
)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (for unnest)."""
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


# A queued history write: (kind, parameters, bytes)
_Write = tuple[str, tuple[Any, ...], int]


def _text(value: str | None) -> str | None:
    """Text PostgreSQL can store: lone surrogates and NUL characters written as escapes."""
    if value is None:
        return None
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\x00", "\\u0000") if "\x00" in value else value


def _row(record: Any) -> dict[str, Any]:
    row = dict(record)
    if "duration_ms" in row:
        row["duration_ms"], row["duration_us"] = durations_of(row["duration_ms"], row["duration_us"])
    return row


def _webhook_paths(document: dict[str, Any]) -> list[str]:
    paths = []
    for trigger in document.get("triggers") or ():
        spec = trigger.get("trigger_type") or {}
        if spec.get("type") == "Webhook":
            paths.append(webhook_path(spec))
    return paths


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (rather than a statement failed)."""
    return isinstance(
        exc,
        (
            OSError,
            asyncio.TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
            asyncpg.AdminShutdownError,
            asyncpg.TooManyConnectionsError,
        ),
    ) or (isinstance(exc, asyncpg.PostgresError) and str(getattr(exc, "sqlstate", "")).startswith(("08", "57P")))


class PgStore(PgLiveness):
    """PostgreSQL through an asyncpg pool. ``open`` before use, ``close`` at shutdown."""

    kind = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        direct_url: str | None = None,
        queue_bytes: int = 64 * 1024 * 1024,
        node_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.direct_url = direct_url or url
        self.pool_size = pool_size
        self.node_timeout = node_timeout
        self.node_id = f"{node_name()}:{uuid.uuid4().hex[:8]}"
        self.epoch = 0
        self._last_beat = 0.0  # loop time of the last heartbeat or registration that succeeded
        self.path = _redacted(url)  # what messages name
        self._pool: asyncpg.Pool | None = None
        self._writer: asyncpg.Connection | None = None
        self._history: GroupCommit[_Write] = GroupCommit(self._commit_batch, queue_bytes)
        self._epoch_of: dict[str, int] = {}  # running execution -> the epoch that started it
        self.healthy = True  # False while the database cannot be reached
        self.problem: str | None = None
        # Catalog following: the generation this process has applied, and who applies a change.
        self.catalog_generation = 0
        self.on_catalog_change: Callable[[str, int], None] | None = None
        self.alive_nodes = 1
        self.reaped_total = 0
        self.oldest_transaction_seconds = 0.0
        self.listener_reconnects = 0
        self._listener: asyncpg.Connection | None = None
        self._channels: dict[str, Callable[[str], None]] = {}  # see PgLiveness.listen_to

    # -- connections -----------------------------------------------------------------------

    async def _connect_settings(self, connection: asyncpg.Connection) -> None:
        # Every commit is durable before it is acknowledged, whatever the server's default.
        await connection.execute("SET synchronous_commit = on")

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, init=self._connect_settings, timeout=10
            )
            self._writer = await asyncpg.connect(self.url, timeout=10)
            await self._connect_settings(self._writer)
            assert self._pool is not None
            async with self._pool.acquire() as connection:
                await migrate(connection, self.path)
            await self.register_node()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._close_connections()
            raise StoreRefused(f"cannot open the PostgreSQL database {self.path}: {exc}") from None
        except BaseException:
            await self._close_connections()
            raise

    async def close(self) -> None:
        try:
            await self.flush()
            if self._pool is not None:
                await self._pool.execute("DELETE FROM nodes WHERE node_id = $1", self.node_id)
        except Exception as exc:  # the database may be gone: the others will reap us
            log.warning("could not write the last history to %s: %s", self.path, exc)
        await self.stop_listening()
        await self._close_connections()

    async def _close_connections(self) -> None:
        if self._writer is not None:
            self._writer.terminate() if self._writer.is_closed() else await self._writer.close()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        self.healthy = False
        self.problem = f"the database cannot be reached: {exc}"
        return StoreUnavailable(f"the database is unavailable, try again shortly ({type(exc).__name__})")

    async def _run(self, work: Callable[[asyncpg.Connection], Any]) -> Any:
        """Run ``work(connection)`` on a pooled connection; StoreUnavailable (503) in an outage."""
        assert self._pool is not None
        try:
            async with self._pool.acquire(timeout=self.node_timeout) as connection:
                result = await work(connection)
        except Exception as exc:
            if _is_outage(exc):
                raise self._unavailable(exc) from None
            raise
        return result

    async def _query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        await self.flush()
        records = await self._run(lambda connection: connection.fetch(sql, *params))
        return [_row(record) for record in records]

    # -- history writer (the SQLite store's pacing, on the loop) ----------------------------

    def _queue(self, kind: str, params: tuple[Any, ...], size: int, *, start_of: str | None = None) -> None:
        self._history.queue((kind, params, size), size, start_of=start_of)

    def committed(self) -> asyncio.Future[StoreError | None]:
        """See ``GroupCommit.committed``; refused while this process may have been declared dead."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_beat > self.node_timeout:
            # No heartbeat for a whole timeout: the others may have declared this process dead
            # and recorded its executions interrupted, so it acknowledges nothing until its
            # next heartbeat (or registration) succeeds.
            waiter: asyncio.Future[StoreError | None] = loop.create_future()
            waiter.set_result(StoreError("this process lost contact with the database for longer than FLOWENGINE_NODE_TIMEOUT"))
            return waiter
        return self._history.committed()

    @property
    def uncommitted_bytes(self) -> int:
        return self._history.uncommitted_bytes

    def has_room(self) -> bool:
        return self._history.has_room()

    async def wait_for_room(self, timeout: float) -> bool:
        return await self._history.wait_for_room(timeout)

    def _resume(self) -> None:
        """Start the writer for history left queued by an outage."""
        self._history.resume()

    async def flush(self) -> None:
        """Commit everything queued so far, now (StoreUnavailable if the database is down)."""
        await self._history.flush()
        if self._history.pending and not self.healthy:
            raise StoreUnavailable("the database is unavailable, try again shortly")

    async def _commit_batch(self, batch: list[_Write]) -> StoreError | None:
        try:
            await self._commit(batch)
        except Exception as exc:
            if _is_outage(exc):
                # Keep the batch for when the database is back; who waits hears now.
                self._unavailable(exc)
                error = StoreError(f"the database {self.path} cannot be reached: {exc}")
                raise RetryLater(error, min(1.0, self.node_timeout / 4)) from None
            lost = await self._commit_each(batch)
            if lost:
                return StoreError(f"{lost} of {len(batch)} history writes to {self.path} failed (the server log says why)")
            return None
        self.healthy, self.problem = True, None
        return None

    async def _writer_connection(self) -> asyncpg.Connection:
        if self._writer is None or self._writer.is_closed():
            self._writer = await asyncpg.connect(self.url, timeout=self.node_timeout)
            await self._connect_settings(self._writer)
        return self._writer

    async def _commit(self, batch: Sequence[_Write]) -> None:
        starts = [params for kind, params, _ in batch if kind == "start"]
        full = [params for kind, params, _ in batch if kind == "full"]
        finishes = [params for kind, params, _ in batch if kind == "finish"]
        prune = [params[0] for kind, params, _ in batch if kind == "prune"]
        connection = await self._writer_connection()
        if not prune and sum(map(bool, (starts, full, finishes))) == 1:
            # One statement (executemany and COPY are atomic on their own): no BEGIN and
            # COMMIT round trips. The usual batch of a busy server is one run of full rows.
            await self._write_rows(connection, starts, full, finishes)
            return
        if not prune and not {row[9] for row in finishes} & {row[0] for row in starts}:
            # New rows and finishes of earlier ones: one statement too (the UPDATE cannot see
            # rows the same statement inserts, hence the check; a start re-queued after an
            # outage may share a batch with its finish).
            rows = full + [(*start[:8], "running", start[8], None, None, None, None, 0, None, None) for start in starts]
            await connection.execute(_WRITE_BOTH, *_columns(rows, len(_FULL_COLUMNS)), *_columns(finishes, len(_FINISH_COLUMNS)))
            return
        async with connection.transaction():
            await self._write_rows(connection, starts, full, finishes)
            if prune:
                await self._prune(connection, min(prune))

    @staticmethod
    async def _write_rows(
        connection: asyncpg.Connection,
        starts: list[tuple[Any, ...]],
        full: list[tuple[Any, ...]],
        finishes: list[tuple[Any, ...]],
    ) -> None:
        if starts:
            await connection.executemany(_INSERT_START, starts)
        if len(full) >= _COPY_AT:
            await connection.copy_records_to_table("executions", records=full, columns=_FULL_COLUMNS)
        elif full:
            await connection.executemany(_INSERT_FULL, full)
        if finishes:
            await connection.executemany(_FINISH, finishes)

    async def _commit_each(self, batch: Sequence[_Write]) -> int:
        lost = 0
        for write in batch:
            try:
                await self._commit([write])
            except Exception:
                lost += 1
                log.exception("could not write a queued change to %s; it is lost", self.path)
        return lost

    async def _prune(self, connection: asyncpg.Connection, keep: int) -> None:
        # One process at a time (the others skip this pass); the lock goes with the transaction.
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PRUNE_LOCK):
            return
        # The position of the newest finished row beyond ``keep``: an index walk of ``keep``
        # rows from the newest end, no count of the whole table.
        boundary = await connection.fetchval(
            "SELECT position FROM executions WHERE status NOT IN ('running', 'queued')"
            " ORDER BY position DESC OFFSET $1 LIMIT 1",
            keep,
        )
        if boundary is not None:
            await connection.execute(
                "DELETE FROM executions WHERE position <= $1 AND status NOT IN ('running', 'queued')", boundary
            )
            await connection.execute(FORGET_VERSIONS)  # versions only those executions needed

    # -- executions --------------------------------------------------------------------------

    def execution_started(
        self,
        execution_id: str,
        workflow_id: str,
        workflow_version: int,
        trigger_json: str,
        inputs_json: str,
        started_at: str,
        retry_of: str | None,
    ) -> None:
        self._epoch_of[execution_id] = self.epoch
        self._queue(
            "start",
            (execution_id, workflow_id, workflow_version, _text(trigger_json), _text(inputs_json), retry_of,
             self.node_id, self.epoch, started_at),
            len(inputs_json) + len(trigger_json) + _STATEMENT_OVERHEAD,
            start_of=execution_id,
        )  # fmt: skip

    def execution_finished(self, result: ExecutionResult, events_record: str, nodes_json: str | None) -> None:
        epoch = self._epoch_of.pop(result.execution_id, None)
        if epoch is None:
            return  # fenced: this process was declared dead while it ran (see fence)
        outcome = (
            result.status,
            result.started_at,
            result.finished_at,
            float(result.duration_ms),
            result.duration_us,
            _text(result.error),
            result.attempts,
            _text(nodes_json),
            _text(events_record),
        )
        size = len(events_record) + (len(nodes_json) if nodes_json is not None else 0)
        # Its start still queued: one complete row instead of an INSERT and an UPDATE.
        if self._history.replace_start(
            result.execution_id, lambda start: ("full", start[1][:8] + outcome, start[2] + size), size
        ):
            return
        self._queue("finish", (*outcome, result.execution_id, self.node_id, epoch), size + _STATEMENT_OVERHEAD)

    def fence(self) -> list[str]:
        """This process was declared dead: nothing it started may be written any more. The
        ids of those executions (the caller cancels them)."""
        fenced = list(self._epoch_of)
        self._epoch_of.clear()
        return fenced

    def adopt(self, execution_id: str, epoch: int) -> None:
        """An execution this registration claimed from the run queue: its completion is written."""
        self._epoch_of[execution_id] = epoch

    def disown(self, execution_id: str) -> None:
        """An execution handed to the run queue: this process writes nothing more of it."""
        self._epoch_of.pop(execution_id, None)

    def prune_interval(self, keep: int) -> int:
        """Finished executions (of this process) between two retention passes. No process
        knows how many finished rows the shared table holds, so a pass ranks the newest ``keep``
        of them, work in proportion to ``keep``: done every tenth of it, that is a few µs per
        execution instead of most of the database's own work for one (a pass every 100 cost it
        about 80 µs per execution at the default 10,000). The table may hold up to a tenth more
        than ``keep`` between two passes."""
        return max(1, keep // 10)

    def prune_executions(self, keep: int) -> None:
        self._queue("prune", (keep,), _STATEMENT_OVERHEAD)

    async def mark_interrupted(self, error: str, now: str) -> int:
        """At start-up: record the running executions of dead processes (not of live ones)."""
        return len(await self.reap(now))

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        before: int | None = None,
        limit: int = 50,
        since: str | None = None,
        until: str | None = None,
        trigger_type: str | None = None,
        error: str | None = None,
    ) -> list[dict[str, Any]]:
        conditions, params = execution_filters(_PG_SEARCH, workflow_id, status, since, until, trigger_type, error)
        if before is not None:
            params.append(before)
            conditions.append(f"position < ${len(params)}")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        params.append(limit)
        return await self._query(
            f"SELECT {_EXECUTION_COLUMNS} FROM executions {where} ORDER BY position DESC LIMIT ${len(params)}", *params
        )

    async def count_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        trigger_type: str | None = None,
        error: str | None = None,
    ) -> int:
        conditions, params = execution_filters(_PG_SEARCH, workflow_id, status, since, until, trigger_type, error)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._query(f"SELECT count(*) AS n FROM executions {where}", *params)
        return int(rows[0]["n"])

    async def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        rows = await self._query(
            f"SELECT {_EXECUTION_COLUMNS}, events, nodes FROM executions WHERE id = $1", execution_id
        )
        if not rows:
            return None
        row = rows[0]
        row["events"] = expand_json(row["events"], row["id"], row["workflow_id"])
        return row

    async def get_execution_events(self, execution_id: str) -> str | None:
        rows = await self._query("SELECT events, workflow_id FROM executions WHERE id = $1", execution_id)
        if not rows:
            return None
        return expand_json(rows[0]["events"], execution_id, rows[0]["workflow_id"]) or "[]"

    async def delete_execution(self, execution_id: str) -> None:
        async def work(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await connection.execute("DELETE FROM executions WHERE id = $1 AND status NOT IN ('running', 'queued')", execution_id)
                await connection.execute(FORGET_VERSIONS)

        await self._run(work)

    # -- workflows ---------------------------------------------------------------------------

    async def load_workflows(self) -> list[dict[str, Any]]:
        rows = await self._query("SELECT id, version, document, created_at, updated_at FROM workflows")
        self.catalog_generation = max(self.catalog_generation, await self.stored_generation())
        return rows

    async def load_workflow(self, workflow_id: str) -> dict[str, Any] | None:
        rows = await self._query(
            "SELECT id, version, document, created_at, updated_at FROM workflows WHERE id = $1", workflow_id
        )
        return rows[0] if rows else None

    async def workflow_heads(self) -> dict[str, int]:
        """Every stored workflow's id and current version (for the missed-notification check)."""
        rows = await self._query("SELECT id, version FROM workflows")
        return {row["id"]: row["version"] for row in rows}

    async def stored_generation(self) -> int:
        return int(await self._run(lambda c: c.fetchval("SELECT generation FROM catalog_state WHERE id = 1")))

    async def _catalog_write(self, workflow_id: str, body: Callable[[asyncpg.Connection], Any]) -> None:
        """Run ``body`` and the generation bump + NOTIFY in one transaction, then wait until the
        live processes applied it."""
        async def work(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                await body(connection)
                generation = await connection.fetchval(
                    "UPDATE catalog_state SET generation = generation + 1 WHERE id = 1 RETURNING generation"
                )
                await connection.execute(
                    "SELECT pg_notify($1, $2)", CATALOG_CHANNEL, f"{generation} {self.node_id} {workflow_id}"
                )
                await connection.execute(
                    "UPDATE nodes SET catalog_generation = greatest(catalog_generation, $2) WHERE node_id = $1",
                    self.node_id,
                    generation,
                )
            return int(generation)

        try:
            generation = await self._run(work)
        except asyncpg.UniqueViolationError as exc:
            raise await self._conflict(workflow_id, exc) from None
        if self.catalog_generation == generation - 1:
            self.catalog_generation = generation
        await self._wait_acknowledged(generation)

    async def _conflict(self, workflow_id: str, exc: Exception) -> WorkflowConflict:
        constraint = getattr(exc, "constraint_name", "") or ""
        if constraint.startswith("webhook_paths"):
            detail = getattr(exc, "detail", "") or ""
            path = detail.partition("(path)=(")[2].rpartition(")")[0]
            holder = await self._run(
                lambda c: c.fetchval("SELECT workflow_id FROM webhook_paths WHERE path = $1", path)
            )
            return WorkflowConflict(f"webhook path {path!r} is already used by workflow {holder}")
        return WorkflowConflict(
            f"workflow {workflow_id} was changed by another process at the same time: read it again and retry"
        )

    async def _wait_acknowledged(self, generation: int) -> None:
        """Wait (at most the node timeout) until every other live process has applied
        ``generation``, so a write that returned is what the next execute runs anywhere."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.node_timeout
        delay = 0.002
        while loop.time() < deadline:
            behind = await self._run(
                lambda c: c.fetchval(
                    "SELECT count(*) FROM nodes WHERE node_id <> $1 AND catalog_generation < $2"
                    " AND heartbeat_at > now() - make_interval(secs => $3)",
                    self.node_id,
                    generation,
                    self.node_timeout,
                )
            )
            if not behind:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        log.warning("catalog change %d: not every live process acknowledged it within %.1f s", generation, self.node_timeout)

    async def acknowledge_catalog(self, generation: int) -> None:
        await self._run(
            lambda c: c.execute(
                "UPDATE nodes SET catalog_generation = greatest(catalog_generation, $2) WHERE node_id = $1",
                self.node_id,
                generation,
            )
        )

    @staticmethod
    async def _set_paths(connection: asyncpg.Connection, workflow_id: str, document: dict[str, Any]) -> None:
        await connection.execute("DELETE FROM webhook_paths WHERE workflow_id = $1", workflow_id)
        paths = _webhook_paths(document)
        if paths:
            await connection.executemany(
                "INSERT INTO webhook_paths (path, workflow_id) VALUES ($1, $2)", [(path, workflow_id) for path in paths]
            )

    @classmethod
    async def _keep_version(
        cls, connection: asyncpg.Connection, workflow_id: str, version: int, text: str | None, now: str, document: dict[str, Any]
    ) -> None:
        """Keep the document as that version (replacing a kept one of the same number) and
        take its webhook paths."""
        await connection.execute(
            "INSERT INTO workflow_versions (workflow_id, version, document, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (workflow_id, version) DO UPDATE SET document = excluded.document,"
            " created_at = excluded.created_at",
            workflow_id, version, text, now,
        )  # fmt: skip
        await cls._set_paths(connection, workflow_id, document)

    async def insert_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None:
        text = _text(json.dumps(document))

        async def body(connection: asyncpg.Connection) -> None:
            await connection.execute(
                "INSERT INTO workflows (id, version, document, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
                workflow_id, version, text, now,
            )  # fmt: skip
            await self._keep_version(connection, workflow_id, version, text, now, document)

        await self._catalog_write(workflow_id, body)

    async def update_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None:
        text = _text(json.dumps(document))

        async def body(connection: asyncpg.Connection) -> None:
            # Only on top of the version this process knew: two processes replacing one
            # workflow at once, the second gets a 409 rather than a silent overwrite.
            updated = await connection.execute(
                "UPDATE workflows SET version = $2, document = $3, updated_at = $4 WHERE id = $1 AND version = $2 - 1",
                workflow_id, version, text, now,
            )  # fmt: skip
            if updated != "UPDATE 1":
                raise WorkflowConflict(
                    f"workflow {workflow_id} was changed by another process at the same time: read it again and retry"
                )
            await self._keep_version(connection, workflow_id, version, text, now, document)

        await self._catalog_write(workflow_id, body)

    async def latest_version(self, workflow_id: str) -> int:
        rows = await self._query("SELECT max(version) AS latest FROM workflow_versions WHERE workflow_id = $1", workflow_id)
        return rows[0]["latest"] or 0

    async def delete_workflow(self, workflow_id: str) -> None:
        async def body(connection: asyncpg.Connection) -> None:
            await connection.execute("DELETE FROM workflows WHERE id = $1", workflow_id)
            await connection.execute(f"{FORGET_VERSIONS} AND workflow_id = $1", workflow_id)
            await connection.execute("DELETE FROM webhook_paths WHERE workflow_id = $1", workflow_id)

        await self._catalog_write(workflow_id, body)

    async def revert_workflow(self, workflow_id: str, version: int, *, created: bool = False) -> None:
        if created or version == 1:
            # Gone again, with only the version this write made: versions an earlier workflow
            # of the id left for its executions stay.
            async def forget(connection: asyncpg.Connection) -> None:
                await connection.execute("DELETE FROM workflows WHERE id = $1", workflow_id)
                await connection.execute(
                    "DELETE FROM workflow_versions WHERE workflow_id = $1 AND version = $2", workflow_id, version
                )
                await connection.execute("DELETE FROM webhook_paths WHERE workflow_id = $1", workflow_id)

            await self._catalog_write(workflow_id, forget)
            return

        async def body(connection: asyncpg.Connection) -> None:
            await connection.execute(
                "DELETE FROM workflow_versions WHERE workflow_id = $1 AND version = $2", workflow_id, version
            )
            document = await connection.fetchval(
                "UPDATE workflows w SET version = v.version, document = v.document, updated_at = v.created_at"
                " FROM workflow_versions v WHERE w.id = $1 AND v.workflow_id = $1 AND v.version = $2"
                " RETURNING v.document",
                workflow_id,
                version - 1,
            )
            if document is not None:
                await self._set_paths(connection, workflow_id, json.loads(document))

        await self._catalog_write(workflow_id, body)

    async def workflow_versions(self, workflow_id: str) -> list[dict[str, Any]]:
        return await self._query(
            "SELECT version, created_at FROM workflow_versions WHERE workflow_id = $1 ORDER BY version", workflow_id
        )

    async def workflow_version(self, workflow_id: str, version: int) -> dict[str, Any] | None:
        rows = await self._query(
            "SELECT document, created_at FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
            workflow_id,
            version,
        )
        return rows[0] if rows else None


def _redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{host}"
