"""Every HTTP route in one table: method, path, handler, the scope it needs and its OpenAPI
operation.

The router (:func:`add_routes`), access control (flowengine.server.access) and ``GET
/openapi.json`` (flowengine.server.openapi) all read :data:`ROUTES`, so a route is written here
and nowhere else: adding one here routes it, guards it with its scope and documents it (the
OpenAPI module then asks for its responses by operation id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from . import dashboard, executions, openapi, session, webhooks, websocket, workflows
from .keys import TELEMETRY

__all__ = ["Scope", "Route", "ROUTES", "add_routes", "matched_route"]

# The scopes a route may need, least powerful first (flowengine.lib.auth.SCOPES).
Scope = Literal["read", "execute", "admin"]

_PARAMETER_REGEX = re.compile(r"\{(\w+):[^}]*\}")


@dataclass(frozen=True)
class Route:
    """One route. ``path`` is aiohttp's: a parameter may carry a regex (``{path:.+}``);
    ``template`` is the same path as OpenAPI and the router's ``canonical`` spell it."""

    method: str
    path: str
    handler: Handler
    # None: open to anyone, even with authentication on. Open routes are matched by their path
    # whatever the method (a POST /health is answered 405, not 401), so their paths are static.
    scope: Scope | None
    operation_id: str
    summary: str
    tag: str
    # False: never charged to the client's FLOWENGINE_RATE_LIMIT budget (probes and scrapers).
    # Matched by path like open routes, so static too.
    rate_limited: bool = True
    # A valid signature stands in for credentials when the webhook the path names has a secret.
    signed: bool = False
    # Credentials may come as ?token=, for browsers, which cannot set headers on a WebSocket.
    token_in_query: bool = False

    @property
    def template(self) -> str:
        return _PARAMETER_REGEX.sub(r"{\1}", self.path)

    def definition(self, name: str) -> web.RouteDef:
        """The aiohttp route, its resource called ``name``; a GET also answers HEAD, as
        ``web.get`` does."""
        return web.route(self.method, self.path, self.handler, name=name)


async def _metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: the exposition of this application's own registry."""
    return await request.app[TELEMETRY].handler(request)


async def _openapi_json(request: web.Request) -> web.StreamResponse:
    """``GET /openapi.json`` (and ``/api-docs/openapi.json``): the document describing this table. It lives here rather than in
    flowengine.server.openapi because that module would otherwise import this one, which
    imports it for the handlers: a cycle."""
    return openapi.document_response(ROUTES)


_WORKFLOW = "/api/workflows/{id}"
_EXECUTION = "/api/executions/{id}"
_WEBHOOK = "/api/hooks/{path:.+}"  # a webhook path may contain /

ROUTES: tuple[Route, ...] = (
    # The dashboard's files hold code, never data: open, and not charged to any rate budget.
    Route("GET", "/", dashboard.index, None, "dashboard", "The built-in dashboard (HTML)", "dashboard", rate_limited=False),
    Route("GET", "/ui/{name}", dashboard.asset, None, "dashboardFile", "One of the dashboard's files (a fixed list)", "dashboard", rate_limited=False),
    Route("GET", "/health", workflows.health, None, "health", "Liveness: always open, never rate limited", "service", rate_limited=False),
    Route("GET", "/metrics", _metrics, "read", "metrics", "Prometheus metrics (text exposition format 0.0.4)", "service", rate_limited=False),
    Route("GET", "/openapi.json", _openapi_json, "read", "openapi", "This document", "service"),
    # Where the upstream server serves its document, for the clients and tools written for it.
    Route("GET", "/api-docs/openapi.json", _openapi_json, "read", "openapiUpstreamPath", "This document (the upstream path)", "service"),
    Route("GET", "/api/session", session.get_session, "read", "getSession", "Who the credentials stand for, and the scopes they allow", "service"),
    Route("GET", "/api/workflows", workflows.list_workflows, "read", "listWorkflows", "List workflows", "workflows"),
    Route("POST", "/api/workflows", workflows.create_workflow, "admin", "createWorkflow", "Register a workflow", "workflows"),
    Route("GET", _WORKFLOW, workflows.get_workflow, "read", "getWorkflow", "Get a workflow (its current version, or ?version=N)", "workflows"),
    Route("PUT", _WORKFLOW, workflows.replace_workflow, "admin", "replaceWorkflow", "Replace a workflow (a new version)", "workflows"),
    Route("DELETE", _WORKFLOW, workflows.delete_workflow, "admin", "deleteWorkflow", "Delete a workflow", "workflows"),
    Route("POST", f"{_WORKFLOW}/execute", workflows.execute_workflow, "execute", "executeWorkflow", "Run a workflow", "executions"),
    Route("GET", f"{_WORKFLOW}/versions", executions.list_versions, "read", "listWorkflowVersions", "The versions kept for a workflow", "workflows"),
    Route("GET", "/api/executions", executions.list_executions, "read", "listExecutions", "Execution history, newest first", "executions"),
    Route("GET", _EXECUTION, executions.get_execution, "read", "getExecution", "One execution with its inputs and node records", "executions"),
    Route("DELETE", _EXECUTION, executions.delete_execution, "admin", "deleteExecution", "Delete a finished execution from the history", "executions"),
    Route("GET", f"{_EXECUTION}/events", executions.get_execution_events, "read", "getExecutionEvents", "The events an execution published, in order", "executions"),
    Route("POST", f"{_EXECUTION}/cancel", executions.cancel_execution, "execute", "cancelExecution", "Cancel a running execution", "executions"),
    Route("POST", f"{_EXECUTION}/retry", executions.retry_execution, "execute", "retryExecution", "Run a finished execution again with the same inputs", "executions"),
    Route("GET", "/api/nodes", workflows.list_nodes, "read", "listNodeTypes", "The node types this server offers", "nodes"),
    Route("GET", "/api/triggers", webhooks.list_triggers, "read", "listTriggers", "Every trigger of every workflow", "triggers"),
    # A webhook runs a workflow, so even its GET needs the execute scope.
    Route(
        "GET", _WEBHOOK, webhooks.receive_webhook, "execute", "getWebhook",
        "Fire a webhook (query parameters become inputs; a signed webhook takes none)", "triggers", signed=True,
    ),
    Route(
        "POST", _WEBHOOK, webhooks.receive_webhook, "execute", "postWebhook",
        "Fire a webhook (the JSON body's fields and the query parameters become inputs; a signed"
        " webhook takes only the signed body's fields)", "triggers", signed=True,
    ),
    Route("GET", "/api/events", websocket.events_handler, "read", "events", "The live event stream (WebSocket)", "events", token_in_query=True),
)


# Paths whose requests come by the thousand per second: routed before the others (add_routes).
_BUSIEST_PATHS = frozenset({f"{_WORKFLOW}/execute", "/api/hooks/{path}"})


def add_routes(app: web.Application) -> None:
    """Route every entry of the table in ``app``.

    Each path's resource is named after the operation id of its first route, so that a handler
    can write a link without spelling a path: ``request.app.router["getWorkflow"].canonical``
    is ``/api/workflows/{id}``. aiohttp keeps the routes of one path in one resource only when
    they come one after another with the same name (and refuses a name used again later), so
    the table keeps them together."""
    names: dict[str, str] = {}
    for route in ROUTES:
        names.setdefault(route.template, route.operation_id)
    # The router tries the paths that share a static prefix in the order they were added, each
    # a coroutine and a regex: the busiest paths go first (executing a workflow was tried third
    # of four under /api/workflows, a few µs of every execute request).
    ordered = sorted(ROUTES, key=lambda route: route.template not in _BUSIEST_PATHS)
    app.router.add_routes([route.definition(names[route.template]) for route in ordered])


def _index(routes: tuple[Route, ...]) -> dict[tuple[str, str], Route]:
    index = {(route.method, route.template): route for route in routes}
    for route in routes:
        if route.method == "GET":  # aiohttp answers HEAD on every GET route with the same handler
            index.setdefault(("HEAD", route.template), route)
    return index


_BY_METHOD_AND_TEMPLATE = _index(ROUTES)


def matched_route(request: web.Request) -> Route | None:
    """The table's entry for the route the router matched, or None (no route matched, the
    method is not one the path takes, or a route added outside the table)."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return _BY_METHOD_AND_TEMPLATE.get((request.method, resource.canonical))
