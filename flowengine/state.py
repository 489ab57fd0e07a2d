"""Typed keys for what the application holds (never string keys)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .catalog import WorkflowCatalog
    from .config import Config
    from .engine import Engine
    from .events import EventBus
    from .nodes.registry import NodeRegistry
    from .runs import ExecutionService
    from .store import Store
    from .telemetry import Telemetry
    from .triggers import TriggerService

CONFIG = web.AppKey("config", "Config")
REGISTRY = web.AppKey("registry", "NodeRegistry")
BUS = web.AppKey("bus", "EventBus")
STORE = web.AppKey("store", "Store")
CATALOG = web.AppKey("catalog", "WorkflowCatalog")
ENGINE = web.AppKey("engine", "Engine")
RUNS = web.AppKey("runs", "ExecutionService")
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
SOCKETS = web.AppKey("sockets", weakref.WeakSet)
TRIGGERS = web.AppKey("triggers", "TriggerService")
TELEMETRY = web.AppKey("telemetry", "Telemetry")
