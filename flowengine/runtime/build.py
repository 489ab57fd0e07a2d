"""The engine as a process runs it: one factory for the server and ``flowengine run``, so both
honour the same settings (the private-network guard of http.request, above all)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from ..config import Config
from ..core.engine import Engine
from ..core.events import EventBus
from ..lib.netguard import GuardedConnector
from ..nodes.registry import NodeRegistry

__all__ = ["build_engine"]


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
