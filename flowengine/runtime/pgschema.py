"""The PostgreSQL store's schema, created and migrated at start-up.

Every process runs ``migrate`` when it opens the store: under a transaction-level advisory lock
(released at commit, never held by an idle session: session locks break behind transaction
poolers and outlive a partitioned client), it creates what is missing and records the schema
version; a database whose version is newer than this code knows is refused, so an old process
never writes into a layout it does not understand. A later version adds its steps to
``_MIGRATIONS`` (version -> statements); the statements of version 1 are idempotent.
"""

from __future__ import annotations

import asyncpg

from ..errors import StoreRefused

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 2
_SCHEMA_LOCK = 0x666C6F77  # the advisory lock key ("flow")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS flowengine_schema (
        id integer PRIMARY KEY CHECK (id = 1),
        version integer NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS workflows (
        id text PRIMARY KEY,
        version integer NOT NULL,
        document text NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS workflow_versions (
        workflow_id text NOT NULL,
        version integer NOT NULL,
        document text NOT NULL,
        created_at text NOT NULL,
        PRIMARY KEY (workflow_id, version))""",
    """CREATE TABLE IF NOT EXISTS webhook_paths (
        path text PRIMARY KEY,
        workflow_id text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS webhook_paths_by_workflow ON webhook_paths (workflow_id)",
    """CREATE TABLE IF NOT EXISTS catalog_state (
        id integer PRIMARY KEY CHECK (id = 1),
        generation bigint NOT NULL)""",
    "INSERT INTO catalog_state (id, generation) VALUES (1, 0) ON CONFLICT DO NOTHING",
    # Events as text, not jsonb: jsonb doubles PostgreSQL's CPU per row and nothing queries
    # inside them.
    """CREATE TABLE IF NOT EXISTS executions (
        position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        workflow_id text NOT NULL,
        workflow_version integer NOT NULL,
        trigger text NOT NULL,
        inputs text NOT NULL,
        status text NOT NULL,
        started_at text NOT NULL,
        finished_at text,
        duration_ms double precision,
        duration_us bigint,
        error text,
        attempts integer NOT NULL DEFAULT 0,
        nodes text,
        events text,
        retry_of text,
        owner text,
        epoch bigint)""",
    "CREATE INDEX IF NOT EXISTS executions_by_workflow ON executions (workflow_id, position)",
    # The reaper looks only at running rows: a partial index keeps finished ones out of it.
    "CREATE INDEX IF NOT EXISTS executions_running ON executions (owner, epoch) WHERE status = 'running'",
    """CREATE TABLE IF NOT EXISTS nodes (
        node_id text PRIMARY KEY,
        epoch bigint NOT NULL,
        name text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        catalog_generation bigint NOT NULL DEFAULT 0)""",
    "CREATE SEQUENCE IF NOT EXISTS node_epochs",
]

# The run queue (pgqueue.py): queued executions are rows of ``executions`` with status
# 'queued' and a row here, which leaves when a process claims it. Tick and event-start claims
# make cron and event triggers fire once whatever the number of processes.
_QUEUE_SCHEMA = [
    "ALTER TABLE executions ADD COLUMN IF NOT EXISTS trigger_key text",
    "ALTER TABLE executions ADD COLUMN IF NOT EXISTS cancel_requested boolean NOT NULL DEFAULT false",
    # "Skip while the previous run goes" asks for a trigger's unfinished executions.
    "CREATE INDEX IF NOT EXISTS executions_unfinished_by_trigger ON executions (trigger_key)"
    " WHERE status IN ('queued', 'running') AND trigger_key IS NOT NULL",
    # Rows leave at the claim, so the table stays small; a low fillfactor and eager autovacuum
    # keep its dead rows from piling up under a steady flow.
    """CREATE TABLE IF NOT EXISTS run_queue (
        execution_id text PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
        queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        cached_outputs text)
        WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0)""",
    "CREATE INDEX IF NOT EXISTS run_queue_by_age ON run_queue (queued_at)",
    """CREATE TABLE IF NOT EXISTS trigger_fires (
        trigger_key text NOT NULL,
        scheduled_at text NOT NULL,
        execution_id text,
        fired_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (trigger_key, scheduled_at))""",
    """CREATE TABLE IF NOT EXISTS event_starts (
        source_execution_id text NOT NULL,
        trigger_key text NOT NULL,
        execution_id text,
        root_execution_id text NOT NULL,
        depth integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source_execution_id, trigger_key))""",
    "CREATE INDEX IF NOT EXISTS event_starts_by_execution ON event_starts (execution_id)",
    """CREATE TABLE IF NOT EXISTS event_chains (
        root_execution_id text PRIMARY KEY,
        started integer NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now())""",
]

# Webhook replay protection shared by every process (pgreplay.py): accepted timestamped
# signatures and GitHub delivery ids, each until it expires (Unix seconds).
_WORKERS_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS webhook_replays (
        scope text NOT NULL,
        key text NOT NULL,
        expires_at double precision NOT NULL,
        PRIMARY KEY (scope, key))""",
    "CREATE INDEX IF NOT EXISTS webhook_replays_expiry ON webhook_replays (expires_at)",
]

# Events across processes (pgevents.py): which events each process's listeners want (one row
# per process, gone with its registration), and the short-lived rows that carry what does not
# fit in a notification.
_EVENTS_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS event_interest (
        node_id text PRIMARY KEY REFERENCES nodes (node_id) ON DELETE CASCADE,
        channel text NOT NULL,
        filters text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS event_spill (
        id text PRIMARY KEY,
        payload text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
]

# Version 2: the cluster (run queue, cron once, shared webhook replay memory, events across
# processes).
_MIGRATIONS: dict[int, list[str]] = {1: _SCHEMA, 2: _QUEUE_SCHEMA + _WORKERS_SCHEMA + _EVENTS_SCHEMA}


async def migrate(connection: asyncpg.Connection, shown: str) -> None:
    """Bring the database's schema to SCHEMA_VERSION (StoreRefused if it is newer);
    ``shown`` names the database in the message."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        exists = await connection.fetchval("SELECT to_regclass('flowengine_schema') IS NOT NULL")
        version = await connection.fetchval("SELECT version FROM flowengine_schema") if exists else 0
        if version > SCHEMA_VERSION:
            raise StoreRefused(
                f"the database {shown} has schema version {version}, newer than this flowengine"
                f" knows ({SCHEMA_VERSION}): upgrade flowengine on this machine"
            )
        if version == SCHEMA_VERSION:
            return
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                await connection.execute(statement)
        await connection.execute(
            "INSERT INTO flowengine_schema (id, version) VALUES (1, $1)"
            " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            SCHEMA_VERSION,
        )
