"""Typed keys for what the application holds (never string keys)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Literal

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from ..config import Config
    from ..core.engine import Engine
    from ..core.events import EventBus
    from ..nodes.registry import NodeRegistry
    from ..runtime.catalog import WorkflowCatalog
    from ..runtime.executions import ExecutionService
    from ..runtime.liveness import NodeLiveness
    from ..runtime.storage import HistoryStore
    from ..runtime.triggers import TriggerService
    from .telemetry import Telemetry

CONFIG: web.AppKey[Config] = web.AppKey("config")
REGISTRY: web.AppKey[NodeRegistry] = web.AppKey("registry")
BUS: web.AppKey[EventBus] = web.AppKey("bus")
STORE: web.AppKey[HistoryStore] = web.AppKey("store")
CATALOG: web.AppKey[WorkflowCatalog] = web.AppKey("catalog")
ENGINE: web.AppKey[Engine] = web.AppKey("engine")
RUNS: web.AppKey[ExecutionService] = web.AppKey("runs")
HTTP_CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("http_client")
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse[Literal[True]]]] = web.AppKey("sockets")
TRIGGERS: web.AppKey[TriggerService] = web.AppKey("triggers")
TELEMETRY: web.AppKey[Telemetry] = web.AppKey("telemetry")
LIVENESS: web.AppKey[NodeLiveness | None] = web.AppKey("liveness")  # None with SQLite
