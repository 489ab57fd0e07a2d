"""The route table (flowengine.server.routes): the router serves exactly its routes, and access
control gives each route the scope and the rate-limit treatment the table says, as a client
sees it through HTTP."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from flowengine.lib.auth import SCOPES
from flowengine.lib.ratelimit import parse_rate_limit
from flowengine.server.app import make_app
from flowengine.server.routes import ROUTES, Route, Scope

KEYS = {"route-reader-1": "read", "route-runner-1": "execute", "route-admin-1": "admin"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _url(route: Route) -> str:
    """A URL the route matches, naming nothing that exists (so nothing is changed)."""
    return re.sub(r"\{\w+\}", "no-such-thing", route.template)


def _allows(scope: str, needed: str | None) -> bool:
    return needed is None or SCOPES.index(scope) >= SCOPES.index(needed)


# Every route, and the HEAD aiohttp answers on each GET route with the GET's handler and scope.
REQUESTS = [(route.method, route) for route in ROUTES] + [("HEAD", route) for route in ROUTES if route.method == "GET"]


def _label(request: tuple[str, Route]) -> str:
    method, route = request
    return f"{method} {route.template}"


def test_router_serves_exactly_the_table(config):
    app = make_app(config)
    served = {(route.method, route.resource.canonical): route.handler for route in app.router.routes()}
    assert served == {(method, route.template): route.handler for method, route in REQUESTS}


def test_table_is_consistent():
    assert get_args(Scope) == SCOPES
    assert {route.scope for route in ROUTES} <= {*SCOPES, None}
    assert len({(route.method, route.template) for route in ROUTES}) == len(ROUTES)
    assert len({route.operation_id for route in ROUTES}) == len(ROUTES)
    # Access control finds these by the request's path whatever the method, so their paths
    # must be the literal paths requests carry; except an open GET with a parameter (the
    # dashboard's files), which it finds through the route the router matched.
    for route in ROUTES:
        if route.token_in_query:
            assert "{" not in route.path, route.path
        if route.scope is None or not route.rate_limited:
            assert "{" not in route.path or (route.method == "GET" and route.scope is None), route.path


@pytest.mark.parametrize("request_", REQUESTS, ids=[_label(request) for request in REQUESTS])
async def test_each_scope_is_let_through_or_refused_as_the_table_says(make_client, request_):
    method, route = request_
    client = await make_client(api_keys=KEYS)
    url = _url(route)
    anonymous = await client.request(method, url)
    assert (anonymous.status == 401) == (route.scope is not None), anonymous.status
    for key, scope in KEYS.items():
        response = await client.request(method, url, headers=_bearer(key))
        if _allows(scope, route.scope):
            # Let through: whatever the handler answers (200, or 400/404 for the made-up names).
            assert response.status not in (401, 403), (scope, response.status)
        else:
            assert response.status == 403, (scope, response.status)
            if method != "HEAD":  # a HEAD answer has no body
                error = (await response.json())["error"]
                assert error == f"{method} {url} needs the '{route.scope}' scope; these credentials have '{scope}'"


async def test_each_scope_gets_real_answers_where_allowed(make_client):
    client = await make_client(api_keys=KEYS)
    reader, runner, admin = (_bearer(key) for key in KEYS)
    document = {"id": "scoped", "name": "scoped", "nodes": [{"id": "log", "node_type": "debug.log"}]}
    assert (await client.post("/api/workflows", json=document, headers=runner)).status == 403
    assert (await client.post("/api/workflows", json=document, headers=admin)).status == 201
    assert (await client.get("/api/workflows/scoped", headers=reader)).status == 200
    assert (await client.post("/api/workflows/scoped/execute", headers=reader)).status == 403
    executed = await client.post("/api/workflows/scoped/execute", headers=runner)
    assert executed.status == 200
    execution = (await executed.json())["execution_id"]
    assert (await client.get(f"/api/executions/{execution}", headers=reader)).status == 200
    assert (await client.delete(f"/api/executions/{execution}", headers=runner)).status == 403
    assert (await client.delete(f"/api/executions/{execution}", headers=admin)).status == 200


async def test_requests_no_route_takes_are_guarded_too(make_client):
    """Unknown paths and methods a path does not take need credentials (read to read, admin
    otherwise) before they are answered 404 or 405; an open path's other methods stay open."""
    client = await make_client(api_keys=KEYS)
    reader, runner, admin = (_bearer(key) for key in KEYS)
    assert (await client.get("/api/no-such-route")).status == 401
    assert (await client.get("/api/no-such-route", headers=reader)).status == 404
    refused = await client.post("/api/no-such-route", headers=runner)
    assert refused.status == 403 and "needs the 'admin' scope" in (await refused.json())["error"]
    assert (await client.post("/api/no-such-route", headers=admin)).status == 404
    assert (await client.patch("/api/workflows/x", headers=runner)).status == 403
    assert (await client.patch("/api/workflows/x", headers=admin)).status == 405
    assert (await client.put("/api/hooks/x", headers=runner)).status == 403
    assert (await client.post("/health")).status == 405
    assert (await client.options("/api/workflows")).status == 204


async def test_the_rate_limit_applies_where_the_table_says(make_client):
    client = await make_client(rate_limit=parse_rate_limit("1/minute"))
    assert (await client.get("/api/workflows")).status == 200  # the one request of the minute
    for method, route in REQUESTS:
        response = await client.request(method, _url(route))
        assert (response.status == 429) == route.rate_limited, (_label((method, route)), response.status)


async def test_each_path_is_one_resource_named_for_links(config):
    """Handlers link to a path by its resource's name, the operation id of its first route."""
    app = make_app(config)
    resources = app.router.resources()
    assert len(resources) == len({route.template for route in ROUTES})  # 405 needs one resource per path
    assert app.router["getWorkflow"].canonical == "/api/workflows/{id}"
    assert app.router["getExecution"].canonical == "/api/executions/{id}"
    assert str(app.router["getWebhook"].url_for(path="deep/hook")) == "/api/hooks/deep/hook"
