"""The store interface the rest of the code talks to, whichever database is behind it: the
embedded SQLite ``Store`` (store.py) or the shared ``PgStore`` (pgstore.py).

Semantics both keep:

- Execution history is queued without waiting (``execution_started``, ``execution_finished``,
  ``prune_executions``) and committed by one writer in batches (group commit); ``committed()``
  is a future done once everything queued before it is committed (result None, or the
  StoreError that kept some of it from being written): the durable acknowledgement waits on it
  and issues no statement of its own. ``wait_for_room`` bounds the uncommitted bytes.
- Every read (``list_executions``, ``get_execution``, ...) flushes the queue first, so a caller
  reads its own writes. Workflow writes are one transaction each and return once committed.
- Timestamps are RFC 3339 text as the code makes them; ids are text; durations come back as
  integers; ``get_execution`` includes ``inputs``, ``events`` and ``nodes`` (JSON text).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import StoreError

if TYPE_CHECKING:
    from ..core.engine import ExecutionResult

__all__ = ["HistoryStore"]


class HistoryStore(Protocol):
    kind: str  # "sqlite" or "postgresql"
    path: str
    queue_bytes: int

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # history writer
    def committed(self) -> asyncio.Future[StoreError | None]: ...
    @property
    def uncommitted_bytes(self) -> int: ...
    async def wait_for_room(self, timeout: float) -> bool: ...
    async def flush(self) -> None: ...

    # workflows
    async def load_workflows(self) -> list[dict[str, Any]]: ...
    async def insert_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None: ...
    async def update_workflow(self, workflow_id: str, version: int, document: dict[str, Any], now: str) -> None: ...
    async def delete_workflow(self, workflow_id: str) -> None: ...
    async def revert_workflow(self, workflow_id: str, version: int) -> None: ...
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
    def execution_finished(self, result: ExecutionResult, events_json: str, nodes_json: str | None) -> None: ...
    def prune_executions(self, keep: int) -> None: ...
    async def mark_interrupted(self, error: str, now: str) -> int: ...
    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]: ...
    async def get_execution(self, execution_id: str) -> dict[str, Any] | None: ...
    async def get_execution_events(self, execution_id: str) -> str | None: ...
    async def delete_execution(self, execution_id: str) -> None: ...
