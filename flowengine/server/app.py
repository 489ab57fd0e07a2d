"""The application factory: one aiohttp Application with its routes, middlewares and resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

from aiohttp import web

from ..config import Config
from ..core.events import EventBus, utc_timestamp
from ..core.redaction import install_log_redaction
from ..lib import cron
from ..nodes import builtin_registry
from ..runtime.build import build_engine, open_store
from ..runtime.catalog import WorkflowCatalog
from ..runtime.executions import ExecutionService
from ..runtime.liveness import follow_cluster
from ..runtime.pgqueue import serve_queue
from ..runtime.triggers import TriggerService
from . import websocket
from .access import make_access_middleware
from .keys import BUS, CATALOG, CONFIG, ENGINE, HTTP_CLIENT, LIVENESS, REGISTRY, RUNS, SOCKETS, STORE, TELEMETRY, TRIGGERS
from .middleware import make_middleware
from .routes import add_routes
from .telemetry import Telemetry

__all__ = ["make_app"]

log = logging.getLogger("flowengine")


def make_app(config: Config | None = None) -> web.Application:
    """Build the whole server. The CLI and the tests both start here."""
    config = config or Config()
    install_log_redaction()
    telemetry = Telemetry()
    # CORS, JSON errors and request metrics in one middleware, then (only when configured)
    # authentication and rate limits.
    middlewares = [make_middleware(telemetry.http_requests)]
    access = make_access_middleware(config)
    if access is not None:
        middlewares.append(access)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=config.max_body_bytes,
        handler_args={"max_field_size": 65536},
    )
    app[CONFIG] = config
    app[TELEMETRY] = telemetry
    app[REGISTRY] = builtin_registry(enable_shell=config.enable_shell, plugins=config.plugins)
    app[BUS] = EventBus(queue_size=config.ws_queue)
    telemetry.watch_bus(app[BUS])
    app[SOCKETS] = weakref.WeakSet()
    add_routes(app)  # the table in routes.py, which access control and the OpenAPI document read too
    app.cleanup_ctx.append(_store_and_engine)
    app.cleanup_ctx.append(_triggers)
    app.on_shutdown.append(_interrupt_executions)
    app.on_shutdown.append(websocket.close_all)
    return app


async def _interrupt_executions(app: web.Application) -> None:
    """Stop running executions while their callers are still connected: they are recorded as
    ``interrupted`` and synchronous callers get their answer before the server goes away."""
    if RUNS in app:
        await app[RUNS].shutdown()


async def _store_and_engine(app: web.Application) -> AsyncIterator[None]:
    """Open the store, load workflows, start the HTTP client (and, on a shared database, the
    heartbeat); undo it all on the way out."""
    config = app[CONFIG]
    async with open_store(config) as store:
        # SQLite: whatever ran when this process last stopped. PostgreSQL: only what dead
        # processes left running, never another live process's work.
        interrupted = await store.mark_interrupted("the server stopped while the execution ran", utc_timestamp())
        if interrupted:
            log.warning("%d execution(s) were running when their server stopped: marked interrupted", interrupted)
        catalog = WorkflowCatalog(
            store, app[REGISTRY], max_nodes=config.max_nodes, max_connections=config.max_workflow_connections
        )
        await catalog.load()
        async with build_engine(config, app[REGISTRY], app[BUS]) as engine:
            catalog.listeners.append(lambda workflow_id, _workflow: engine.forget(workflow_id))
            catalog.listeners.append(app[TELEMETRY].workflow_changed)  # a deleted workflow's series go
            app[STORE], app[CATALOG], app[HTTP_CLIENT], app[ENGINE] = store, catalog, engine.http, engine
            app[RUNS] = ExecutionService(
                engine,
                store,
                max_executions=config.max_executions,
                max_concurrent=config.max_concurrent_executions,
                max_queued=config.max_queued_executions,
                durable=config.history_ack == "commit",
                record_limit=config.max_recorded_events,
                room_wait=config.history_queue_wait,
            )
            app[TELEMETRY].attach(app[RUNS])
            log.info("database %s: %d workflow(s) loaded", config.db_shown, len(catalog.all()))
            async with follow_cluster(
                store, app[RUNS], catalog, app[BUS], heartbeat=config.node_heartbeat, registry=app[TELEMETRY].registry
            ) as liveness, serve_queue(
                store,
                app[RUNS],
                catalog,
                limit=config.max_cluster_queued_executions,
                heartbeat=config.node_heartbeat,
                registry=app[TELEMETRY].registry,
            ) as queue:
                if liveness is not None and queue is not None:
                    liveness.on_listening.append(queue.resync)
                app[LIVENESS] = liveness
                try:
                    yield
                finally:
                    await app[RUNS].shutdown()


async def _triggers(app: web.Application) -> AsyncIterator[None]:
    """Index every workflow's triggers, follow catalog changes, and run the cron scheduler."""
    catalog = app[CATALOG]
    triggers = app[TRIGGERS] = TriggerService(app[RUNS], app[BUS])
    for workflow in catalog.all():
        for trigger in workflow.triggers:
            if trigger.type == "Cron":
                note = cron.changed_meaning(trigger.trigger_type["expression"])
                if note is not None:  # stored under the old reading: say so once, at start-up
                    log.warning("workflow %s, cron trigger %s: %s", workflow.id, trigger.id, note)
        try:
            triggers.update(workflow.id, workflow)
        except Exception as exc:  # a stored workflow must never keep the server from starting
            log.exception("the triggers of workflow %s could not be set up", workflow.id)
            triggers.update(workflow.id, None)
            catalog.set_unloadable(workflow.id, workflow.version, workflow.created_at or "", f"its triggers cannot be set up: {exc}")
    catalog.listeners.append(triggers.update)
    catalog.conflict_checks.append(triggers.conflict)
    scheduler = asyncio.get_running_loop().create_task(triggers.run_scheduler())
    try:
        yield
    finally:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
