"""Who may call what: bearer authentication with scopes, and per-client rate limits.

Both are off unless configured (FLOWENGINE_API_KEYS / FLOWENGINE_JWT_SECRET,
FLOWENGINE_RATE_LIMIT), and then the middleware is not even installed. Which scope a route
needs, which routes are open or exempt from the rate limit, and where a signature or a
``?token=`` may stand in for the Authorization header, all come from the route table
(flowengine.server.routes).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from ..config import Config
from ..lib.auth import Authenticator, AuthError, Principal, bearer_token
from ..lib.ratelimit import RateLimiter, retry_after_seconds
from .http_json import ClientError
from .keys import TRIGGERS
from .routes import ROUTES, Scope, matched_route
from .session import PRINCIPAL

__all__ = ["required_scope", "make_access_middleware"]

# Open, rate-exempt and token routes are found by path whatever the method, so that a method
# such a path does not take is refused (405) as freely as the path is served.
OPEN_PATHS = frozenset(route.path for route in ROUTES if route.scope is None)
RATE_EXEMPT_PATHS = frozenset(route.path for route in ROUTES if not route.rate_limited)
TOKEN_IN_QUERY_PATHS = frozenset(route.path for route in ROUTES if route.token_in_query)


def required_scope(request: web.Request) -> Scope | None:
    """The scope a request needs, or None for open routes."""
    if request.path in OPEN_PATHS or request.method == "OPTIONS":
        return None
    route = matched_route(request)
    if route is not None:
        return route.scope
    # Nothing routes it (404, 405). Still guarded, so that without credentials a path that does
    # not exist answers 401 like one that does: the route map is not told to strangers.
    return "read" if request.method in ("GET", "HEAD") else "admin"


def _rate_limited(request: web.Request) -> bool:
    """Whether the request is charged to the rate budget: not on an exempt path, nor on an
    exempt route with a parameter (the dashboard's files, ``/ui/{name}``)."""
    if request.path in RATE_EXEMPT_PATHS:
        return False
    route = matched_route(request)
    return route is None or route.rate_limited


def _signed_webhook(request: web.Request) -> bool:
    route = matched_route(request)
    if route is None or not route.signed:
        return False
    found = request.app[TRIGGERS].webhook(request.match_info["path"])
    return found is not None and "secret" in found[1].trigger_type


def make_access_middleware(config: Config) -> web.middleware | None:  # type: ignore[valid-type]
    """The middleware for the configured checks, or None when nothing is configured."""
    authenticator = Authenticator(dict(config.api_keys), config.jwt_secret, audience=config.jwt_audience) if config.auth_enabled else None
    limiter = RateLimiter(config.rate_limit) if config.rate_limit is not None else None
    if authenticator is None and limiter is None:
        return None

    def enforce_rate_limit(client: str) -> None:
        wait = limiter.check(client)  # type: ignore[union-attr]
        if wait > 0:
            retry_after = retry_after_seconds(wait)
            raise ClientError(
                429,
                f"rate limit exceeded (FLOWENGINE_RATE_LIMIT): retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    @web.middleware
    async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = required_scope(request)
        limited = limiter is not None and _rate_limited(request)
        # Whom the request is charged to: the address until credentials name a subject.
        client = request.remote or "unknown"
        try:
            if authenticator is not None and scope is not None and not _signed_webhook(request):
                principal = _authenticate(authenticator, request)
                request[PRINCIPAL] = principal  # for GET /api/session
                client = principal.subject
                if not principal.allows(scope):
                    raise ClientError(
                        403, f"{request.method} {request.path} needs the '{scope}' scope; these credentials have '{principal.scope}'"
                    )
        except Exception:
            # Refused (401, 403) or broken requests count too, so that guessing keys or tokens,
            # or probing scopes, is throttled like everything else; a 429 then replaces the
            # refusal.
            if limited:
                enforce_rate_limit(client)
            raise
        if limited:
            enforce_rate_limit(client)
        return await handler(request)

    return access_middleware


def _authenticate(authenticator: Authenticator, request: web.Request) -> Principal:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None and request.path in TOKEN_IN_QUERY_PATHS:
        token = request.query.get("token")  # browsers cannot set headers on WebSockets
    try:
        return authenticator.authenticate(token)
    except AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        raise ClientError(exc.status, exc.message, headers=headers) from None
