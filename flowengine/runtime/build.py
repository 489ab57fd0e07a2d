"""The engine and the store as a process runs them: one factory for the server and
``flowengine run``, so both honour the same settings (the private-network guard of
http.request, above all); and the store FLOWENGINE_DB selects."""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp

from ..config import Config
from ..core.engine import Engine
from ..core.events import EventBus
from ..errors import StoreRefused
from ..lib.netguard import GuardedConnector
from ..nodes.registry import NodeRegistry
from .store import Store

if TYPE_CHECKING:
    from .pgstore import PgStore

__all__ = ["build_engine", "open_store"]


@asynccontextmanager
async def build_engine(config: Config, registry: NodeRegistry, bus: EventBus) -> AsyncIterator[Engine]:
    """An Engine with the pooled HTTP client every http.request node shares (refusing private
    networks when ``config.http_block_private``); the client is closed on the way out."""
    connector = GuardedConnector() if config.http_block_private else aiohttp.TCPConnector()
    async with aiohttp.ClientSession(connector=connector) as http:
        engine = Engine(registry, bus, http=http)
        try:
            yield engine
        finally:
            engine.redactor.forget()  # the engine's secrets go with it


@asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[Store | PgStore]:
    """The store FLOWENGINE_DB names, opened; closed on the way out. StoreRefused when this
    process cannot use it (start-up then exits 2 with the message)."""
    if config.uses_postgres:
        try:
            from .pgstore import PgStore
        except ImportError:
            raise StoreRefused(
                "FLOWENGINE_DB is a PostgreSQL URL but the driver is not installed:"
                " pip install 'flowengine-server[postgres]' (the extra 'postgres' adds asyncpg)"
            ) from None
        shared = PgStore(
            config.db,
            pool_size=config.db_pool_size,
            direct_url=config.db_direct_url,
            queue_bytes=config.history_queue_bytes,
            node_timeout=config.node_timeout,
        )
        await shared.open()
        try:
            yield shared
        finally:
            await shared.close()
        return
    lock = _lock_sqlite(config.db)
    try:
        store = Store(config.db, synchronous=config.db_synchronous, queue_bytes=config.history_queue_bytes)
        await store.open()
        try:
            yield store
        finally:
            await store.close()
    finally:
        if lock is not None:
            os.close(lock)


def _lock_sqlite(path: str) -> int | None:
    """Hold an OS lock beside the SQLite file for as long as this process uses it: a second
    process on the same file would interrupt the first one's executions at start-up and
    split the history writer. The lock goes with the process, however it ends."""
    if path == ":memory:" or path.startswith("file:"):
        return None
    lock_path = f"{path}.lock"
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreRefused(f"cannot open {lock_path} to lock the database {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise StoreRefused(
            f"the SQLite database {path} is in use by another flowengine process ({lock_path} is locked):"
            " a SQLite file serves one process; to run several processes, share a PostgreSQL database"
            " (FLOWENGINE_DB=postgresql://..., see the README, 'Running several processes')"
        ) from None
    return descriptor
