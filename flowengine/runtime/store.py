"""The embedded SQLite store: workflows, their versions, and execution history.

All SQLite work runs on one dedicated thread, so the event loop never waits on the disk.
Writes of execution history are queued and committed in batches by the writer both stores
share (groupcommit.py): one transaction for everything queued while the previous commit ran. A
caller that must not answer before its rows are on disk awaits ``committed()``; workflow writes,
and every read, commit what is queued first; the queue is bounded in bytes
(``wait_for_room``). The database is in WAL mode. An execution's row holds its events;
its per-node records are folded from them when read (records.py), or stored too when they
cannot be.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from itertools import chain, groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.eventlog import expand_json
from ..core.records import durations_of
from ..errors import StoreError
from ..lib.worker_thread import WorkerThread
from .groupcommit import GroupCommit
from .storage import FORGET_VERSIONS, SearchDialect, execution_filters

if TYPE_CHECKING:
    from ..core.engine import ExecutionResult

__all__ = ["Store"]

log = logging.getLogger("flowengine.runtime.store")

T = TypeVar("T")

# A queued statement: SQL, parameters, and how each row it touches changes the finished count.
_Statement = tuple[str, tuple[Any, ...], int]
_PRUNE = "-- prune --"  # marker statement: delete the surplus of finished executions

_CHECKPOINT_PAGES = 4000  # WAL pages between two automatic checkpoints (see _open)

# What a queued statement costs beyond its text parameters, for the byte bound of the queue.
_STATEMENT_OVERHEAD = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workflow_versions (
    workflow_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
CREATE TABLE IF NOT EXISTS executions (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workflow_id TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms REAL,  -- whole milliseconds since durations are integers; older rows hold fractions
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    nodes TEXT,  -- per-node records, only when the events cannot give them (records.py)
    events TEXT,
    retry_of TEXT,
    duration_us INTEGER
);
CREATE INDEX IF NOT EXISTS executions_by_workflow ON executions (workflow_id, position);
-- No index on status: each index costs the writer time on every execution (insert and
-- prune), and a status filter walks the newest rows first anyway.
DROP INDEX IF EXISTS executions_by_status;
"""

_EXECUTION_COLUMNS = (
    "position, id, workflow_id, workflow_version, trigger, inputs, status, started_at, finished_at,"
    " duration_ms, duration_us, error, attempts, retry_of"
)


_sql_of = itemgetter(0)

# The history's statements. Those most executions use spell their NULL columns out instead of
# taking None parameters: sqlite3 binds None only after looking for an adapter (two failed
# attribute lookups, each formatting an AttributeError message), a measurable share of the
# writer thread's time per row.
_INSERT_START = (
    "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, started_at, status)"
    " VALUES (?, ?, ?, ?, ?, ?, 'running')"
)
_INSERT_RETRY_START = (
    "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, started_at, retry_of, status)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 'running')"
)
_INSERT_COMPLETE = (
    "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, status, started_at, finished_at,"
    " duration_ms, duration_us, attempts, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_COMPLETE_ALL = (
    "INSERT INTO executions (id, workflow_id, workflow_version, trigger, inputs, retry_of, status, started_at,"
    " finished_at, duration_ms, duration_us, error, attempts, nodes, events)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_FINISHED = (
    "UPDATE executions SET status = ?, started_at = ?, finished_at = ?, duration_ms = ?, duration_us = ?,"
    " error = NULL, attempts = ?, nodes = NULL, events = ? WHERE id = ?"
)
_UPDATE_FINISHED_ALL = (
    "UPDATE executions SET status = ?, started_at = ?, finished_at = ?, duration_ms = ?, duration_us = ?, error = ?,"
    " attempts = ?, nodes = ?, events = ? WHERE id = ?"
)

# Consecutive rows of one of these go in as multi-row INSERTs: one statement run (and
# AUTOINCREMENT's counter read and written once) for many rows instead of one per row, which
# costs the writer thread less per row than executemany does.
_MULTI_ROW_INSERTS = frozenset((_INSERT_START, _INSERT_RETRY_START, _INSERT_COMPLETE, _INSERT_COMPLETE_ALL))
# Rows per multi-row statement: at most this many, in power-of-two groups, so a handful of
# statement texts per INSERT serve every batch and stay in sqlite3's statement cache; the
# largest binds at most 960 parameters (older SQLite builds allow 999).
_MOST_ROWS = 64
_rows_sql: dict[tuple[str, int], str] = {}


def _insert_sql(sql: str, rows: int) -> str:
    """The INSERT ``sql`` (one row of VALUES) made to take ``rows`` rows."""
    text = _rows_sql.get((sql, rows))
    if text is None:
        head, _, values = sql.rpartition(" VALUES ")
        text = _rows_sql[sql, rows] = f"{head} VALUES {', '.join([values] * rows)}"
    return text


def _insert_rows(db: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Insert the rows with multi-row statements of ``sql``; how many were inserted."""
    inserted = 0
    start, left = 0, len(rows)
    while left:
        size = min(_MOST_ROWS, 1 << (left.bit_length() - 1))  # the largest power of two <= left
        group = rows[start : start + size]
        inserted += db.execute(_insert_sql(sql, size), group[0] if size == 1 else tuple(chain.from_iterable(group))).rowcount
        start += size
        left -= size
    return inserted


def _storable(text: str | None) -> str | None:
    """Text SQLite can store: a lone surrogate (from a node's output) becomes its escape."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _lower(text: Any) -> Any:
    return text.lower() if isinstance(text, str) else text


_SQLITE_SEARCH = SearchDialect(placeholder=lambda _: "?", trigger_type="json_extract(trigger, '$.type')")


def _integer_durations(row: dict[str, Any]) -> dict[str, Any]:
    """A row's ``duration_ms`` and ``duration_us`` as integers: the REAL column gives floats
    back, and rows written before durations were integers hold fractional milliseconds."""
    row["duration_ms"], row["duration_us"] = durations_of(row["duration_ms"], row["duration_us"])
    return row


class Store:
    """SQLite on its own thread. ``open`` before use, ``close`` at shutdown."""

    kind = "sqlite"  # what /health reports

    def __init__(self, path: str, *, synchronous: str = "normal", queue_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.synchronous = synchronous
        self._thread: WorkerThread | None = None  # started by open()
        self._db: sqlite3.Connection | None = None
        self._history: GroupCommit[_Statement] = GroupCommit(self._commit_batch, queue_bytes)
        # Called for every execution: the writer's own methods, without a call in between.
        # committed(): see GroupCommit.committed; has_room(): see GroupCommit.has_room.
        self.committed: Callable[[], asyncio.Future[StoreError | None]] = self._history.committed
        self.has_room: Callable[[], bool] = self._history.has_room
        self._finished_rows = 0  # finished executions in the table; only the writer thread uses it
        # Versions of deleted workflows may be kept (see FORGET_VERSIONS): retention passes
        # then also forget those no execution needs any more.
        self._kept_versions = False

    # -- plumbing ------------------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            self._thread = WorkerThread("flowengine-db")
        return await self._thread.call(function, *args)

    async def open(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a crash of the process loses nothing committed; FULL: nor a power loss.
        db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        # Checkpoint every 4,000 WAL pages (16 MiB at 4 KiB pages) instead of SQLite's 1,000:
        # the history's last pages are written again by nearly every commit, and a checkpoint
        # copies each page once however often the WAL holds it, so rarer checkpoints copy (and
        # sync) less per execution. The WAL file stays that large after a checkpoint.
        db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        db.execute("PRAGMA foreign_keys=ON")
        # SQLite's own lower() folds ASCII only; the error search is case-insensitive for every
        # script, as PostgreSQL's lower() is.
        db.create_function("lower", 1, _lower, deterministic=True)
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(executions)")}
        if "duration_us" not in columns:  # a database made before durations were integers
            db.execute("ALTER TABLE executions ADD COLUMN duration_us INTEGER")
        self._db = db
        self._count_finished()

    def _count_finished(self) -> None:
        assert self._db is not None
        (self._finished_rows,) = self._db.execute(
            "SELECT COUNT(*) FROM executions WHERE status != 'running'"
        ).fetchone()

    async def close(self) -> None:
        await self.flush()
        await self._call(self._close)
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    def write(self, sql: str, params: tuple[Any, ...], finished_delta: int = 0, size: int = 0, *, start_of: str | None = None) -> None:
        """Queue a write; it is committed with the next batch without the caller waiting
        (``committed()`` waits). ``finished_delta`` is how each row it touches changes the count
        of finished executions; ``size`` is roughly how many bytes its parameters hold;
        ``start_of`` names the execution whose start row it is."""
        self._history.queue((sql, params, finished_delta), size + _STATEMENT_OVERHEAD, start_of=start_of)

    @property
    def uncommitted_bytes(self) -> int:
        return self._history.uncommitted_bytes

    async def wait_for_room(self, timeout: float) -> bool:
        return await self._history.wait_for_room(timeout)

    async def flush(self) -> None:
        """Commit everything queued so far, now."""
        await self._history.flush()

    async def _commit_batch(self, batch: list[_Statement]) -> StoreError | None:
        try:
            await self._call(self._commit, batch)
        except (sqlite3.Error, UnicodeError):
            # One bad statement must not cost the whole batch: write them one by one.
            lost = await self._call(self._commit_each, batch)
            if lost:
                return StoreError(f"{lost} of {len(batch)} history writes to {self.path} failed (the server log says why)")
        return None

    def _commit(self, batch: list[_Statement]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            # Runs of the same statement (a busy server's batch is mostly one INSERT after
            # another) go through executemany: one cursor for the whole run.
            for sql, run in groupby(batch, key=_sql_of):
                statements = list(run)
                if sql is _PRUNE:
                    for _, params, _ in statements:
                        self._prune(db, *params)
                    continue
                if len(statements) == 1:
                    rowcount = db.execute(sql, statements[0][1]).rowcount
                elif sql in _MULTI_ROW_INSERTS:
                    rowcount = _insert_rows(db, sql, [params for _, params, _ in statements])
                else:
                    rowcount = db.executemany(sql, [params for _, params, _ in statements]).rowcount
                finished_delta = statements[0][2]  # the same for every use of one statement
                if finished_delta:
                    self._finished_rows += finished_delta * rowcount
        except BaseException:
            db.execute("ROLLBACK")
            self._count_finished()
            raise
        db.execute("COMMIT")

    def _commit_each(self, batch: list[_Statement]) -> int:
        """Commit the statements one by one; how many could not be written."""
        lost = 0
        for statement in batch:
            try:
                self._commit([statement])
            except (sqlite3.Error, UnicodeError):
                lost += 1
                log.exception("could not write a queued change to %s; it is lost", self.path)
        return lost

    def _prune(self, db: sqlite3.Connection, keep: int) -> None:
        # The count is kept up to date, so pruning deletes just the surplus, oldest first,
        # walking the primary key: no scan of the rows that are kept.
        surplus = self._finished_rows - keep
        if surplus > 0:
            cursor = db.execute(
                "DELETE FROM executions WHERE position IN (SELECT position FROM executions"
                " WHERE status != 'running' ORDER BY position LIMIT ?)",
                (surplus,),
            )
            self._finished_rows -= cursor.rowcount

    async def _transaction(self, statements: list[_Statement]) -> None:
        """Commit queued writes, then these statements as one transaction, and wait for it."""
        await self.flush()
        await self._call(self._commit, statements)

    async def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        await self.flush()
        return await self._call(self._fetch, sql, params)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        db = self._db
        assert db is not None
        cursor = db.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- workflows -----------------------------------------------------------------------

    async def load_workflows(self) -> list[dict[str, Any]]:
        kept = await self._query(
            "SELECT 1 AS kept FROM workflow_versions WHERE workflow_id NOT IN (SELECT id FROM workflows) LIMIT 1"
        )
        self._kept_versions = bool(kept)
        return await self._query("SELECT id, version, document, created_at, updated_at FROM workflows")

    async def latest_version(self, workflow_id: str) -> int:
        """The highest version number kept for the id (of a deleted workflow too), 0 if none."""
        rows = await self._query(
            "SELECT MAX(version) AS latest FROM workflow_versions WHERE workflow_id = ?", (workflow_id,)
        )
        return rows[0]["latest"] or 0

    async def insert_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None:
        text = json.dumps(document)
        await self._transaction(
            [
                (
                    "INSERT INTO workflows (id, version, document, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (workflow_id, version, text, now, now),
                    0,
                ),
                (
                    "INSERT OR REPLACE INTO workflow_versions (workflow_id, version, document, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (workflow_id, version, text, now),
                    0,
                ),
            ]
        )

    async def update_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None:
        text = json.dumps(document)
        await self._transaction(
            [
                (
                    "UPDATE workflows SET version = ?, document = ?, updated_at = ? WHERE id = ?",
                    (version, text, now, workflow_id),
                    0,
                ),
                (
                    "INSERT OR REPLACE INTO workflow_versions (workflow_id, version, document, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (workflow_id, version, text, now),
                    0,
                ),
            ]
        )

    async def delete_workflow(self, workflow_id: str) -> None:
        """Delete the workflow and the versions its executions do not need (FORGET_VERSIONS):
        those stay until the executions are pruned or deleted."""
        await self._transaction(
            [
                ("DELETE FROM workflows WHERE id = ?", (workflow_id,), 0),
                (f"{FORGET_VERSIONS} AND workflow_id = ?", (workflow_id,), 0),
            ]
        )
        if not self._kept_versions:
            kept = await self._query("SELECT 1 AS kept FROM workflow_versions WHERE workflow_id = ? LIMIT 1", (workflow_id,))
            self._kept_versions = bool(kept)

    async def revert_workflow(self, workflow_id: str, version: int, *, created: bool = False) -> None:
        """Undo the write of ``version`` (the latest): the workflow is back at the version
        before it, or gone if that write ``created`` it (version 1 always did); versions an
        earlier workflow of the id left stay."""
        if created or version == 1:
            await self._transaction(
                [
                    ("DELETE FROM workflows WHERE id = ?", (workflow_id,), 0),
                    ("DELETE FROM workflow_versions WHERE workflow_id = ? AND version = ?", (workflow_id, version), 0),
                ]
            )
            return
        previous = (workflow_id, version - 1)
        await self._transaction(
            [
                ("DELETE FROM workflow_versions WHERE workflow_id = ? AND version = ?", (workflow_id, version), 0),
                (
                    "UPDATE workflows SET version = ?,"
                    " document = (SELECT document FROM workflow_versions WHERE workflow_id = ? AND version = ?),"
                    " updated_at = (SELECT created_at FROM workflow_versions WHERE workflow_id = ? AND version = ?)"
                    " WHERE id = ?",
                    (version - 1, *previous, *previous, workflow_id),
                    0,
                ),
            ]
        )

    async def workflow_versions(self, workflow_id: str) -> list[dict[str, Any]]:
        return await self._query(
            "SELECT version, created_at FROM workflow_versions WHERE workflow_id = ? ORDER BY version",
            (workflow_id,),
        )

    async def workflow_version(self, workflow_id: str, version: int) -> dict[str, Any] | None:
        rows = await self._query(
            "SELECT document, created_at FROM workflow_versions WHERE workflow_id = ? AND version = ?",
            (workflow_id, version),
        )
        return rows[0] if rows else None

    # -- executions ----------------------------------------------------------------------

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
        """Record a new execution as running. Trigger and inputs come as JSON text."""
        # Marked as a start: an execution that finishes before the batch is committed (most do)
        # then writes one complete row instead of an INSERT and an UPDATE.
        params: tuple[Any, ...] = (execution_id, workflow_id, workflow_version, trigger_json, inputs_json, started_at)
        if retry_of is None:
            sql = _INSERT_START
        else:
            sql, params = _INSERT_RETRY_START, (*params, retry_of)
        self.write(sql, params, size=len(inputs_json) + len(trigger_json), start_of=execution_id)

    def execution_finished(self, result: ExecutionResult, events_record: str, nodes_json: str | None) -> None:
        """Record how an execution ended, with its events (``ExecutionEvents.record()``, the
        compact form of core/eventlog.py) and, when they cannot be folded back from the events
        (see records.py), its per-node records (JSON text)."""
        error = _storable(result.error)
        size = len(events_record) + (len(nodes_json) if nodes_json is not None else 0)

        def complete(start: _Statement) -> _Statement:
            params = start[1]
            if start[0] is _INSERT_START and error is None and nodes_json is None:
                return (
                    _INSERT_COMPLETE,
                    (*params[:5], result.status, result.started_at, result.finished_at, result.duration_ms,
                     result.duration_us, result.attempts, events_record),
                    1,
                )  # fmt: skip
            retry_of = params[6] if len(params) > 6 else None
            return (
                _INSERT_COMPLETE_ALL,
                (*params[:5], retry_of, result.status, result.started_at, result.finished_at, result.duration_ms,
                 result.duration_us, error, result.attempts, nodes_json, events_record),
                1,
            )  # fmt: skip

        if self._history.replace_start(result.execution_id, complete, size):
            return
        if error is None and nodes_json is None:
            sql = _UPDATE_FINISHED
            params: tuple[Any, ...] = (
                result.status, result.started_at, result.finished_at, result.duration_ms, result.duration_us,
                result.attempts, events_record, result.execution_id,
            )  # fmt: skip
        else:
            sql = _UPDATE_FINISHED_ALL
            params = (
                result.status, result.started_at, result.finished_at, result.duration_ms, result.duration_us, error,
                result.attempts, nodes_json, events_record, result.execution_id,
            )  # fmt: skip
        self.write(sql, params, finished_delta=1, size=size)

    def prune_interval(self, keep: int) -> int:
        """Finished executions between two retention passes: a pass deletes just the surplus
        (the writer keeps the count), so it may come often and a small limit is never far
        exceeded."""
        return min(100, max(1, keep // 10))

    def prune_executions(self, keep: int) -> None:
        """Delete the oldest finished executions beyond ``keep`` (with the next batch), and the
        versions of deleted workflows that only they needed."""
        self.write(_PRUNE, (keep,))
        if self._kept_versions:
            self.write(FORGET_VERSIONS, ())

    async def mark_interrupted(self, error: str, now: str) -> int:
        rows = await self._query("SELECT COUNT(*) AS n FROM executions WHERE status = 'running'")
        count = rows[0]["n"]
        if count:
            await self._transaction(
                [
                    (
                        "UPDATE executions SET status = 'interrupted', error = ?, finished_at = ?"
                        " WHERE status = 'running'",
                        (error, now),
                        1,
                    )
                ]
            )
        return count

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
        """Executions newest first (by position), at most ``limit``, matching every filter given:
        ``position < before``; ``started_at >= since`` and ``started_at < until`` (utc_timestamp
        text); the trigger's ``type`` equal to ``trigger_type``; ``error`` a case-insensitive
        substring of the error text."""
        conditions, params = execution_filters(_SQLITE_SEARCH, workflow_id, status, since, until, trigger_type, error)
        if before is not None:
            conditions.append("position < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._query(
            f"SELECT {_EXECUTION_COLUMNS} FROM executions {where} ORDER BY position DESC LIMIT ?",
            (*params, limit),
        )
        return [_integer_durations(row) for row in rows]

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
        """How many executions ``list_executions`` would give with these filters and no page."""
        conditions, params = execution_filters(_SQLITE_SEARCH, workflow_id, status, since, until, trigger_type, error)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._query(f"SELECT COUNT(*) AS n FROM executions {where}", tuple(params))
        return int(rows[0]["n"])

    async def get_execution(self, execution_id: str) -> dict[str, Any] | None:
        """The execution's row, with its inputs, events and stored node records (JSON text)."""
        rows = await self._query(
            f"SELECT {_EXECUTION_COLUMNS}, inputs, events, nodes FROM executions WHERE id = ?", (execution_id,)
        )
        if not rows:
            return None
        row = rows[0]
        row["events"] = expand_json(row["events"], row["id"], row["workflow_id"])
        return _integer_durations(row)

    async def get_execution_events(self, execution_id: str) -> str | None:
        """The recorded events as JSON array text (as they were published), or None for an
        unknown execution."""
        rows = await self._query("SELECT events, workflow_id FROM executions WHERE id = ?", (execution_id,))
        if not rows:
            return None
        return expand_json(rows[0]["events"], execution_id, rows[0]["workflow_id"]) or "[]"

    async def delete_execution(self, execution_id: str) -> None:
        # Only finished executions are deleted (the API refuses running ones).
        statements: list[_Statement] = [("DELETE FROM executions WHERE id = ? AND status != 'running'", (execution_id,), -1)]
        if self._kept_versions:
            statements.append((FORGET_VERSIONS, (), 0))
        await self._transaction(statements)

