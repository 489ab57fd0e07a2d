"""The liveness half of the PostgreSQL store: this process's row in ``nodes`` (registration
under a new epoch, heartbeats on the database clock), the reaper, catalog acknowledgements, and
the LISTEN connection (never pooled; self-pinged because asyncpg does not notice a half-open
connection). ``PgStore`` inherits it; liveness.py drives it.

The LISTEN connection is the one such connection of a process: the catalog channel, plus every
channel registered with ``listen_to(channel, callback)``, all subscribed again whenever the
connection is reopened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import asyncpg

__all__ = ["CATALOG_CHANNEL", "LISTENER_APPLICATION", "PgLiveness", "node_name"]

log = logging.getLogger("flowengine.runtime.pgliveness")

CATALOG_CHANNEL = "flowengine_catalog"
# The LISTEN connection's application_name (with the process id), as pg_stat_activity shows it.
LISTENER_APPLICATION = "flowengine listener"


def node_name() -> str:
    """How this process is named in the ``nodes`` table and in error messages."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PgLiveness:
    # Set by PgStore.__init__.
    node_id: str
    epoch: int
    node_timeout: float
    direct_url: str
    catalog_generation: int
    on_catalog_change: Callable[[str, int], None] | None
    alive_nodes: int
    reaped_total: int
    oldest_transaction_seconds: float
    listener_reconnects: int
    healthy: bool
    problem: str | None
    _last_beat: float
    _listener: asyncpg.Connection | None
    _channels: dict[str, Callable[[str], None]]  # channel -> callback(payload), besides the catalog

    async def _run(self, work: Callable[[asyncpg.Connection], Any]) -> Any:
        raise NotImplementedError

    def _resume(self) -> None:
        raise NotImplementedError

    async def register_node(self) -> None:
        """(Re-)register this process under a new epoch."""

        async def work(connection: asyncpg.Connection) -> int:
            return int(
                await connection.fetchval(
                    "INSERT INTO nodes (node_id, epoch, name, catalog_generation)"
                    " VALUES ($1, nextval('node_epochs'), $2, $3)"
                    " ON CONFLICT (node_id) DO UPDATE SET epoch = excluded.epoch, heartbeat_at = now()"
                    " RETURNING epoch",
                    self.node_id,
                    node_name(),
                    self.catalog_generation,
                )
            )

        began = asyncio.get_running_loop().time()
        self.epoch = await self._run(work)
        self._last_beat = began

    async def beat(self) -> bool:
        """Renew this process's heartbeat; False if its registration is gone (declared dead)."""

        async def work(connection: asyncpg.Connection) -> tuple[str, int]:
            status = await connection.execute(
                "UPDATE nodes SET heartbeat_at = now() WHERE node_id = $1 AND epoch = $2", self.node_id, self.epoch
            )
            alive = await connection.fetchval(
                "SELECT count(*) FROM nodes WHERE heartbeat_at > now() - make_interval(secs => $1)", self.node_timeout
            )
            return status, int(alive)

        began = asyncio.get_running_loop().time()
        status, self.alive_nodes = await self._run(work)
        self.healthy, self.problem = True, None
        self._resume()  # the database answers again: write what an outage held back
        if status == "UPDATE 1":
            self._last_beat = began
            return True
        return False

    async def reap(self, now: str) -> list[dict[str, Any]]:
        """Remove processes whose heartbeat is older than the node timeout and record every
        running execution no live registration owns as ``interrupted`` (the error names the
        process). The rows this call recorded (another process's reaper may take others)."""

        async def work(connection: asyncpg.Connection) -> list[Any]:
            async with connection.transaction():
                await connection.execute(
                    "DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1)", self.node_timeout
                )
                return await connection.fetch(
                    "UPDATE executions e SET status = 'interrupted', finished_at = $1,"
                    " error = 'the server stopped while the execution ran (process ' ||"
                    " coalesce(e.owner, '?') || ' stopped answering)'"
                    " WHERE e.status = 'running' AND NOT EXISTS"
                    " (SELECT 1 FROM nodes n WHERE n.node_id = e.owner AND n.epoch = e.epoch)"
                    " RETURNING e.id, e.workflow_id, e.started_at, e.owner",
                    now,
                )

        rows = [dict(record) for record in await self._run(work)]
        self.reaped_total += len(rows)
        return rows

    async def oldest_transaction(self) -> float:
        value = await self._run(
            lambda c: c.fetchval(
                "SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0) FROM pg_stat_activity"
                " WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
            )
        )
        self.oldest_transaction_seconds = float(value)
        return self.oldest_transaction_seconds

    # -- the listener connection (never pooled) ----------------------------------------------

    async def listen(self) -> None:
        """(Re)open the LISTEN connection (FLOWENGINE_DB_DIRECT_URL behind a transaction pooler)
        and subscribe every channel: the catalog's and those given to ``listen_to``."""
        lost, self._listener = self._listener, None
        if lost is not None:
            lost.terminate()  # no goodbye: on a half-open connection it would wait for nothing
        connection = await asyncpg.connect(
            self.direct_url,
            timeout=self.node_timeout,
            server_settings={"application_name": f"{LISTENER_APPLICATION} {os.getpid()}"},
        )
        try:
            await connection.add_listener(CATALOG_CHANNEL, self._notified)
            for channel in list(self._channels):
                await connection.add_listener(channel, self._dispatch)
        except BaseException:
            connection.terminate()
            raise
        self._listener = connection

    @property
    def listener_open(self) -> bool:
        """Whether the LISTEN connection is open (it may still be half-open: see ping_listener)."""
        return self._listener is not None and not self._listener.is_closed()

    async def listen_to(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(payload)`` (on the event loop) for every notification on ``channel``,
        from now on and again after every reconnection of the LISTEN connection."""
        self._channels[channel] = callback
        connection = self._listener
        if connection is not None and not connection.is_closed():
            await connection.add_listener(channel, self._dispatch)

    async def unlisten(self, channel: str) -> None:
        if self._channels.pop(channel, None) is None:
            return
        connection = self._listener
        if connection is not None and not connection.is_closed():
            await connection.remove_listener(channel, self._dispatch)

    def _dispatch(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        callback = self._channels.get(channel)
        if callback is None:
            return
        try:
            callback(payload)
        except Exception:  # one channel's bug must not cost the others their notifications
            log.exception("handling a notification on %s failed", channel)

    async def ping_listener(self, timeout: float | None = None) -> bool:
        """A self-ping (asyncpg does not notice a half-open connection); False if it failed or
        took longer than ``timeout`` seconds (the node timeout unless given)."""
        connection = self._listener
        if connection is None or connection.is_closed():
            return False
        try:
            await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout or self.node_timeout)
        except Exception:
            return False
        return True

    async def stop_listening(self) -> None:
        connection, self._listener = self._listener, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 2)
            except Exception:
                connection.terminate()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        generation, _, rest = payload.partition(" ")
        writer, _, workflow_id = rest.partition(" ")
        if writer == self.node_id or self.on_catalog_change is None:
            return
        self.on_catalog_change(workflow_id, int(generation))

