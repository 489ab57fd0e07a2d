"""The registered workflows: held in memory for fast reads, written through to the store."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal

from ..core.events import utc_timestamp
from ..core.model import Workflow, parse_workflow
from ..errors import ValidationError, WorkflowConflict, WorkflowExists, WorkflowNotFound
from ..nodes.registry import NodeRegistry
from .storage import HistoryStore

__all__ = ["Registered", "WorkflowCatalog", "WorkflowConflict", "WorkflowExists", "WorkflowNotFound"]

log = logging.getLogger("flowengine.runtime.catalog")

# What a registration did: a new id, a new version of a taken one, or nothing (same document).
Registered = Literal["created", "updated", "unchanged"]


class WorkflowCatalog:
    """Workflows by id. Every change is committed to SQLite before it becomes visible."""

    def __init__(
        self,
        store: HistoryStore,
        registry: NodeRegistry,
        *,
        max_nodes: int | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.max_nodes = max_nodes
        self.max_connections = max_connections
        self._workflows: dict[str, Workflow] = {}
        self.listeners: list[Any] = []  # callables(workflow_id, Workflow | None) on every change
        self.conflict_checks: list[Any] = []  # callables(Workflow) -> reason | None, before a write
        # Held from a write's checks to its publication, so versions of one id never interleave.
        self._writing = asyncio.Lock()
        # Stored workflows that no longer validate: id -> (version, created_at, why).
        self.unloadable: dict[str, tuple[int, str, str]] = {}

    async def load(self) -> None:
        # Oldest first, so the list keeps the order workflows were registered in across restarts.
        rows = sorted(await self.store.load_workflows(), key=lambda row: row["created_at"])
        for row in rows:
            try:
                workflow = parse_workflow(json.loads(row["document"]), self.registry, workflow_id=row["id"])
            except ValidationError as exc:
                # A plugin's node type or a secret may be gone: keep the row, say why it is hidden,
                # and let PUT replace it or DELETE remove it.
                self.set_unloadable(row["id"], row["version"], row["created_at"], str(exc))
                continue
            except Exception as exc:  # a damaged row must not keep the server from starting
                log.exception("workflow %s in the database could not be read", row["id"])
                self.set_unloadable(row["id"], row["version"], row["created_at"], f"the stored row is damaged: {exc!r}")
                continue
            workflow.version = row["version"]
            workflow.created_at = row["created_at"]
            workflow.updated_at = row["updated_at"]
            self._workflows[workflow.id] = workflow

    def set_unloadable(self, workflow_id: str, version: int, created_at: str, why: str) -> None:
        """Hide a stored workflow that cannot be used, saying why; PUT replaces it, DELETE removes it."""
        log.error("workflow %s in the database is not loadable and is skipped: %s", workflow_id, why)
        self._workflows.pop(workflow_id, None)
        self.unloadable[workflow_id] = (version, created_at, why)

    def parse(self, document: Any, workflow_id: str | None = None) -> Workflow:
        return parse_workflow(
            document,
            self.registry,
            workflow_id=workflow_id,
            max_nodes=self.max_nodes,
            max_connections=self.max_connections,
        )

    def get(self, workflow_id: str) -> Workflow | None:
        return self._workflows.get(workflow_id)

    def require(self, workflow_id: str) -> Workflow:
        """The workflow, or WorkflowNotFound (saying why when it is stored but cannot load)."""
        workflow = self._workflows.get(workflow_id)
        if workflow is None:
            unloadable = self.unloadable.get(workflow_id)
            raise WorkflowNotFound(workflow_id, None if unloadable is None else unloadable[2])
        return workflow

    async def lookup(self, workflow_id: str) -> Workflow:
        """``require``; but on a shared store an id this process does not hold yet (its
        notification may still be on the way) is first read from the database."""
        workflow = self._workflows.get(workflow_id)
        if workflow is not None:  # the usual case, once per execute request
            return workflow
        if self.store.kind != "sqlite":
            load = getattr(self.store, "load_workflow", None)
            if load is not None:
                await self.follow(workflow_id, functools.partial(load, workflow_id))
        return self.require(workflow_id)

    def exists(self, workflow_id: str) -> bool:
        """Whether the id is taken, by a loaded workflow or by one that can no longer load."""
        return workflow_id in self._workflows or workflow_id in self.unloadable

    def all(self) -> list[Workflow]:
        return list(self._workflows.values())

    async def register(
        self, workflow: Workflow, *, create_only: bool = False, unnamed_triggers: Collection[int] = ()
    ) -> tuple[Workflow, Registered]:
        """``POST /api/workflows``: store a new id as version 1, or a taken one as its next
        version (as ``replace`` does, an unloadable one included), or nothing when the document
        is the one already current. Clients re-post fixed-id documents on every run, and runs
        are pinned to their version, so replacing loses nothing. With ``create_only`` a taken
        id raises WorkflowExists instead. One lock covers the check and the write, so concurrent
        registrations of one id get consecutive versions. ``unnamed_triggers``: the positions of
        triggers the document gave no id (parsing made one up), which do not make it differ."""
        async with self._writing:
            if not self.exists(workflow.id):
                return await self._create(workflow), "created"
            if create_only:
                raise WorkflowExists(workflow.id)
            current = self._workflows.get(workflow.id)
            if current is not None and _same(current, workflow, unnamed_triggers):
                return current, "unchanged"
            return await self._replace(workflow), "updated"

    async def replace(self, workflow: Workflow) -> Workflow:
        async with self._writing:
            return await self._replace(workflow)

    async def delete(self, workflow_id: str) -> None:
        async with self._writing:
            await self._delete(workflow_id)

    async def _create(self, workflow: Workflow) -> Workflow:
        if self.exists(workflow.id):
            raise WorkflowExists(workflow.id)
        self._check_conflicts(workflow)
        now = utc_timestamp()
        # An id deleted before may still have versions its executions need (store.py): the new
        # workflow continues their numbering, so that no version number names two documents.
        version = await self.store.latest_version(workflow.id) + 1
        workflow.version, workflow.created_at, workflow.updated_at = version, now, now
        await self.store.insert_workflow(workflow.id, version, _stored(workflow), now)
        await self._publish(workflow, None, created=True)
        return workflow

    async def _replace(self, workflow: Workflow) -> Workflow:
        previous = self._workflows.get(workflow.id)
        if previous is not None:
            previous_version, created_at = previous.version, previous.created_at
        elif workflow.id in self.unloadable:
            previous_version, created_at, _ = self.unloadable[workflow.id]
        else:
            raise WorkflowNotFound(workflow.id)
        self._check_conflicts(workflow)
        now = utc_timestamp()
        workflow.version = previous_version + 1
        workflow.created_at, workflow.updated_at = created_at, now
        await self.store.update_workflow(workflow.id, workflow.version, _stored(workflow), now)
        await self._publish(workflow, previous)
        self.unloadable.pop(workflow.id, None)
        return workflow

    async def _publish(self, workflow: Workflow, previous: Workflow | None, *, created: bool = False) -> None:
        """Make a stored version visible. If that fails (a listener's bug), the write is
        undone, so a registration is all or nothing (a ``created`` workflow is removed again,
        but not the versions an earlier workflow of that id left)."""
        self._workflows[workflow.id] = workflow
        try:
            self._changed(workflow.id, workflow)
        except BaseException:
            if previous is None:
                self._workflows.pop(workflow.id, None)
            else:
                self._workflows[workflow.id] = previous
            try:
                self._changed(workflow.id, previous)
            finally:
                await self.store.revert_workflow(workflow.id, workflow.version, created=created)
            raise

    async def _delete(self, workflow_id: str) -> None:
        if not self.exists(workflow_id):
            raise WorkflowNotFound(workflow_id)
        await self.store.delete_workflow(workflow_id)
        self._workflows.pop(workflow_id, None)
        self.unloadable.pop(workflow_id, None)
        self._changed(workflow_id, None)

    async def follow(self, workflow_id: str, read: Callable[[], Awaitable[dict[str, Any] | None]]) -> bool:
        """Apply a change another process made to one workflow (a shared store): ``read`` gives
        its stored row now, or None if it is gone. Under the write lock, so it never interleaves
        with a local write; an older version than the one held is ignored. Whether anything
        changed here."""
        async with self._writing:
            row = await read()
            current = self._workflows.get(workflow_id)
            if row is None:
                if not self.exists(workflow_id):
                    return False
                self._workflows.pop(workflow_id, None)
                self.unloadable.pop(workflow_id, None)
                self._changed(workflow_id, None)
                return True
            held = current.version if current is not None else self.unloadable.get(workflow_id, (0, "", ""))[0]
            if held >= row["version"]:
                return False
            try:
                workflow = parse_workflow(json.loads(row["document"]), self.registry, workflow_id=workflow_id)
                workflow.version, workflow.created_at, workflow.updated_at = row["version"], row["created_at"], row["updated_at"]
                self._workflows[workflow_id] = workflow
                self.unloadable.pop(workflow_id, None)
                self._changed(workflow_id, workflow)
            except Exception as exc:  # a plugin this process lacks, say: hidden here, not fatal
                self.set_unloadable(workflow_id, row["version"], row["created_at"], str(exc))
                self._changed(workflow_id, None)
            return True

    def known_versions(self) -> dict[str, int]:
        """Every id this process holds (loadable or not) and its version."""
        versions = {workflow_id: version for workflow_id, (version, _, _) in self.unloadable.items()}
        versions.update((workflow_id, workflow.version) for workflow_id, workflow in self._workflows.items())
        return versions

    def _check_conflicts(self, workflow: Workflow) -> None:
        for check in self.conflict_checks:
            reason = check(workflow)
            if reason is not None:
                raise WorkflowConflict(reason)

    def _changed(self, workflow_id: str, workflow: Workflow | None) -> None:
        for listener in self.listeners:
            listener(workflow_id, workflow)


def _stored(workflow: Workflow) -> dict[str, Any]:
    document = workflow.to_json()
    for key in ("version", "created_at", "updated_at"):
        document.pop(key, None)
    return document


def _same(current: Workflow, workflow: Workflow, unnamed_triggers: Collection[int]) -> bool:
    """Whether ``workflow`` is the ``current`` document again. A trigger the new document left
    without an id got a random one, so it is compared as if it had the current one's."""
    document = _stored(workflow)
    triggers = document["triggers"]
    if len(triggers) == len(current.triggers):
        for index in unnamed_triggers:
            triggers[index]["id"] = current.triggers[index].id
    return document == _stored(current)
