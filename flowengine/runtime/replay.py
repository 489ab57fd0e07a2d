"""Which signed webhook requests were accepted already, so that none is accepted twice: the
memory a webhook handler consults, in this process (SQLite: one process serves) or in the
shared PostgreSQL database (pgreplay.py: a request replayed to another process is refused
just the same).

Each ``accept_*`` raises SignatureError (409) for a request accepted before; ``forget_*`` undoes
an accept whose execution did not start, so that the sender may try the same request again.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..lib.signatures import SeenDeliveries, SeenSignatures

__all__ = ["LocalReplayMemory", "ReplayMemory", "replay_memory"]


class ReplayMemory(Protocol):
    async def accept_signature(self, digest: str, timestamp: int, now: float, tolerance: float) -> None: ...

    async def forget_signature(self, digest: str) -> None: ...

    async def accept_delivery(self, hook: str, delivery: str, now: float) -> None: ...

    async def forget_delivery(self, hook: str, delivery: str) -> None: ...


class LocalReplayMemory:
    """This process's memory (lib/signatures.py), behind the same interface."""

    def __init__(self, signatures: SeenSignatures, deliveries: SeenDeliveries) -> None:
        self.signatures = signatures
        self.deliveries = deliveries

    async def accept_signature(self, digest: str, timestamp: int, now: float, tolerance: float) -> None:
        self.signatures.accept(digest, timestamp, now, tolerance)

    async def forget_signature(self, digest: str) -> None:
        self.signatures.forget(digest)

    async def accept_delivery(self, hook: str, delivery: str, now: float) -> None:
        self.deliveries.accept(hook, delivery)

    async def forget_delivery(self, hook: str, delivery: str) -> None:
        self.deliveries.forget(hook, delivery)


def replay_memory(store: Any, signatures: SeenSignatures, deliveries: SeenDeliveries) -> ReplayMemory:
    """The memory for a server on ``store``: the database's when it is shared (PostgreSQL),
    else this process's (``signatures`` and ``deliveries``). Cheap: made per request."""
    if getattr(store, "kind", None) == "postgresql":
        from .pgreplay import PgReplayMemory  # asyncpg only with a PostgreSQL store

        return PgReplayMemory(store)
    return LocalReplayMemory(signatures, deliveries)
