"""The exceptions of the domain, in one place: what a client did wrong, what is missing or in
the way, what the server cannot take right now, and why a node failed. The server's middleware
maps each kind to its HTTP status (server/middleware.py); nothing below the server knows HTTP."""

from __future__ import annotations

__all__ = [
    "ValidationError",
    "NodeError",
    "NotFound",
    "Conflict",
    "Unavailable",
    "WorkflowNotFound",
    "WorkflowExists",
    "WorkflowConflict",
    "StoreUnavailable",
    "StoreRefused",
    "Overloaded",
    "HistoryUnavailable",
    "StoreError",
]


class ValidationError(ValueError):
    """Bad client input. The message starts with the JSON path it concerns, e.g.
    ``nodes[2].config.method: ...``, and is sent to the client as a 400."""


class NodeError(Exception):
    """An expected failure inside a node body (bad response, missing input, ...).

    The engine reports its message as the node's error without logging a traceback, unlike
    any other exception a node raises, which is treated as a bug and logged in full.
    """


class NotFound(LookupError):
    """What was asked for does not exist (404)."""


class Conflict(Exception):
    """The request clashes with the current state: an id taken, a path claimed, a run still
    going (409)."""


class Unavailable(Exception):
    """The server cannot take this now; trying again later may work (503 with Retry-After)."""


class WorkflowNotFound(NotFound):
    def __init__(self, workflow_id: str, unloadable_because: str | None = None) -> None:
        if unloadable_because is None:
            message = f"Workflow {workflow_id} not found"
        else:
            message = (
                f"Workflow {workflow_id} is stored but cannot be loaded: {unloadable_because};"
                " PUT a corrected document or DELETE it"
            )
        super().__init__(message)
        self.workflow_id = workflow_id


class WorkflowExists(Conflict):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"Workflow {workflow_id} already exists: PUT /api/workflows/{workflow_id} replaces it")
        self.workflow_id = workflow_id


class WorkflowConflict(Conflict):
    """The workflow clashes with another one (a webhook path both claim, say)."""


class Overloaded(Unavailable):
    """Every execution slot and queue place is taken, or the history writer is too far behind."""


class HistoryUnavailable(Unavailable):
    """The history could not be written, so the execution cannot be acknowledged."""


class StoreError(Exception):
    """Queued history could not be written; the message says why."""


class StoreUnavailable(Unavailable):
    """The database cannot be reached right now (a PostgreSQL outage): try again shortly."""


class StoreRefused(StoreError):
    """This process cannot use the configured store at all (a missing driver, a SQLite file
    another process holds, a newer schema): start-up stops with exit code 2."""
