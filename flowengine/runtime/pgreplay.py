"""Webhook replay protection in the shared PostgreSQL database (replay.py): one row per
accepted timestamped signature and per accepted GitHub delivery, in ``webhook_replays``
(pgschema.py), so that a request replayed to any process of the cluster is refused.

- A row expires when the request could no longer be accepted anyway: a signature at its
  timestamp plus the tolerance (its timestamp is refused after that), a delivery id after
  DELIVERY_MEMORY_S. An expired row may be taken over by the same key; expiry is on the
  accepting process's clock, the one its timestamp check uses.
- Accepting is one statement (INSERT ... ON CONFLICT ... RETURNING): the row exists afterwards
  either way, and only the request whose statement wrote it is accepted, however many
  processes race. It commits with ``synchronous_commit=on`` (every store connection does).
- Expired rows are deleted by a statement that about one accept in PURGE_EVERY also runs,
  in whichever process: no timer, no coordination, and the table stays about as large as the
  requests of one tolerance window.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import asyncpg

from ..lib.signatures import DELIVERY_MEMORY_S, already_accepted, delivery_already_accepted

if TYPE_CHECKING:
    from .pgstore import PgStore

__all__ = ["PgReplayMemory", "PURGE_EVERY"]

PURGE_EVERY = 64
# Rows are deleted only this long after they expired, so that a process whose clock runs
# ahead of the others' does not delete what they would still refuse.
_PURGE_MARGIN_S = 300.0
_SIGNATURES = "signature"  # the scope of timestamped signatures; deliveries are per webhook path

_ACCEPT = (
    "INSERT INTO webhook_replays (scope, key, expires_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE webhook_replays.expires_at < $4"
    " RETURNING 1"
)


class PgReplayMemory:
    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def accept_signature(self, digest: str, timestamp: int, now: float, tolerance: float) -> None:
        if not await self._accept(_SIGNATURES, digest, timestamp + tolerance, now):
            raise already_accepted()

    async def forget_signature(self, digest: str) -> None:
        await self._forget(_SIGNATURES, digest)

    async def accept_delivery(self, hook: str, delivery: str, now: float) -> None:
        if not await self._accept(f"github:{hook}", delivery, now + DELIVERY_MEMORY_S, now):
            raise delivery_already_accepted(delivery)

    async def forget_delivery(self, hook: str, delivery: str) -> None:
        await self._forget(f"github:{hook}", delivery)

    async def _accept(self, scope: str, key: str, expires_at: float, now: float) -> bool:
        purge = random.randrange(PURGE_EVERY) == 0

        async def work(connection: asyncpg.Connection) -> bool:
            accepted = await connection.fetchval(_ACCEPT, scope, key, expires_at, now)
            if purge:
                await connection.execute("DELETE FROM webhook_replays WHERE expires_at < $1", now - _PURGE_MARGIN_S)
            return accepted is not None

        return bool(await self.store._run(work))

    async def _forget(self, scope: str, key: str) -> None:
        await self.store._run(
            lambda connection: connection.execute("DELETE FROM webhook_replays WHERE scope = $1 AND key = $2", scope, key)
        )
