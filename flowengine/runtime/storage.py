"""The store interface the rest of the code talks to, whichever database is behind it: the
embedded SQLite ``Store`` (store.py) or the shared ``PgStore`` (pgstore.py).

Semantics both keep:

- Execution history is queued without waiting (``execution_started``, ``execution_finished``,
  ``prune_executions``) and committed by one writer in batches (group commit); ``committed()``
  is a future done once everything queued before it is committed (result None, or the
  StoreError that kept some of it from being written): the durable acknowledgement waits on it
  and issues no statement of its own. ``wait_for_room`` bounds the uncommitted bytes
  (``has_room`` says without a coroutine whether a wait would end at once).
- Every read (``list_executions``, ``get_execution``, ...) flushes the queue first, so a caller
  reads its own writes. Workflow writes are one transaction each and return once committed.
- Timestamps are RFC 3339 text as the code makes them; ids are text; durations come back as
  integers; ``get_execution`` includes ``inputs``, ``events`` and ``nodes`` (JSON text).
- Events are stored as ``ExecutionEvents.record()`` gives them (core/eventlog.py's compact form)
  and come back from ``get_execution`` and ``get_execution_events`` as the JSON array of the
  texts that were published (``eventlog.expand_json``).
- Versions of a deleted workflow stay while its executions need them (``FORGET_VERSIONS``), and
  ``latest_version`` counts them, so a re-created id continues its numbering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import StoreError

if TYPE_CHECKING:
    from ..core.engine import ExecutionResult

__all__ = ["FORGET_VERSIONS", "HistoryStore", "SearchDialect", "execution_filters", "like_pattern"]


@dataclass(frozen=True)
class SearchDialect:
    """What an execution search's SQL differs in between the stores."""

    placeholder: Callable[[int], str]  # the n-th parameter's placeholder (1-based)
    trigger_type: str  # the expression for the trigger's "type" in the trigger column (JSON text)


def like_pattern(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching ``text`` anywhere, lower-cased."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def execution_filters(
    dialect: SearchDialect,
    workflow_id: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    trigger_type: str | None,
    error: str | None,
) -> tuple[list[str], list[Any]]:
    """The WHERE conditions and parameters of an execution search (see ``list_executions``),
    in the dialect's placeholders."""
    conditions: list[str] = []
    params: list[Any] = []

    def mark() -> str:  # the placeholder of the parameter about to be appended
        return dialect.placeholder(len(params) + 1)

    if workflow_id is not None:
        conditions.append(f"workflow_id = {mark()}")
        params.append(workflow_id)
    if status is not None:
        conditions.append(f"status = {mark()}")
        params.append(status)
    # started_at is always utc_timestamp text (fixed width, UTC, "Z"), so text order is time order.
    if since is not None:
        conditions.append(f"started_at >= {mark()}")
        params.append(since)
    if until is not None:
        conditions.append(f"started_at < {mark()}")
        params.append(until)
    if trigger_type is not None:
        conditions.append(f"{dialect.trigger_type} = {mark()}")
        params.append(trigger_type)
    if error is not None:
        conditions.append(f"lower(error) LIKE {mark()} ESCAPE '\\'")
        params.append(like_pattern(error))
    return conditions, params


# Versions of a deleted workflow are kept while executions need them: a version an execution
# ran, and the latest version while any execution of the id remains, so that a re-created id
# continues the numbering (catalog.py) and no number ever names two documents in the history.
FORGET_VERSIONS = (
    "DELETE FROM workflow_versions WHERE workflow_id NOT IN (SELECT id FROM workflows)"
    " AND NOT EXISTS (SELECT 1 FROM executions WHERE executions.workflow_id = workflow_versions.workflow_id"
    " AND executions.workflow_version = workflow_versions.version)"
    " AND (version < (SELECT MAX(latest.version) FROM workflow_versions AS latest"
    " WHERE latest.workflow_id = workflow_versions.workflow_id)"
    " OR NOT EXISTS (SELECT 1 FROM executions WHERE executions.workflow_id = workflow_versions.workflow_id))"
)


class HistoryStore(Protocol):
    kind: str  # "sqlite" or "postgresql"
    path: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # history writer
    def committed(self) -> asyncio.Future[StoreError | None]: ...
    @property
    def uncommitted_bytes(self) -> int: ...
    def has_room(self) -> bool: ...
    async def wait_for_room(self, timeout: float) -> bool: ...
    async def flush(self) -> None: ...

    # workflows
    async def load_workflows(self) -> list[dict[str, Any]]: ...
    async def insert_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None: ...
    async def update_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None: ...
    async def delete_workflow(self, workflow_id: str) -> None: ...
    async def revert_workflow(self, workflow_id: str, version: int, *, created: bool = False) -> None: ...
    async def latest_version(self, workflow_id: str) -> int: ...
    async def workflow_versions(self, workflow_id: str) -> list[dict[str, Any]]: ...
    async def workflow_version(self, workflow_id: str, version: int) -> dict[str, Any] | None: ...

    # executions
    def execution_started(
        self,
        execution_id: str,
        workflow_id: str,
        workflow_version: int,
        trigger_json: str,
        inputs_json: str,
        started_at: str,
        retry_of: str | None,
    ) -> None: ...
    def execution_finished(self, result: ExecutionResult, events_record: str, nodes_json: str | None) -> None: ...
    def prune_executions(self, keep: int) -> None: ...
    def prune_interval(self, keep: int) -> int: ...
    async def mark_interrupted(self, error: str, now: str) -> int: ...
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
    ) -> list[dict[str, Any]]: ...
    async def count_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        trigger_type: str | None = None,
        error: str | None = None,
    ) -> int: ...
    async def get_execution(self, execution_id: str) -> dict[str, Any] | None: ...
    async def get_execution_events(self, execution_id: str) -> str | None: ...
    async def delete_execution(self, execution_id: str) -> None: ...
