"""Middlewares: JSON errors for everything, and CORS for browsers."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from .http_json import ClientError, error_response
from .state import CONFIG

__all__ = ["cors_middleware", "error_middleware"]

log = logging.getLogger("flowengine.http")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Flowengine-Signature",
    "Access-Control-Max-Age": "86400",
}


def _allowed_methods(request: web.Request) -> list[str]:
    """The methods the matched route accepts (for 405 messages and preflight answers)."""
    match = request.match_info
    exception = match.http_exception
    if isinstance(exception, web.HTTPMethodNotAllowed):
        return sorted(exception.allowed_methods)
    route = match.route
    resource = getattr(route, "resource", None)
    if resource is None:
        return []
    return sorted({other.method for other in resource if other.method != "*"})


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and not isinstance(request.match_info.http_exception, web.HTTPNotFound):
        methods = ", ".join(sorted(set(_allowed_methods(request)) | {"OPTIONS"}))
        headers = {**CORS_HEADERS, "Access-Control-Allow-Methods": methods, "Allow": methods}
        requested = request.headers.get("Access-Control-Request-Headers", "").strip()
        if requested:
            # Any origin may call us, so any header it asks for is fine too; echo it back.
            headers["Access-Control-Allow-Headers"] = f"{CORS_HEADERS['Access-Control-Allow-Headers']}, {requested}"
        return web.Response(status=204, headers=headers)
    response = await handler(request)
    if not response.prepared:  # WebSocket responses are already on the wire
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _message_for(request: web.Request, exception: web.HTTPException) -> str:
    status = exception.status
    if status == 404:
        return f"not found: {request.method} {request.path}"
    if status == 405:
        allowed = ", ".join(_allowed_methods(request))
        return f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    if status == 413:
        limit = request.app[CONFIG].max_body_bytes
        return f"request body too large: the limit is {limit} bytes (FLOWENGINE_MAX_BODY_BYTES)"
    return exception.reason or exception.text or "error"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ClientError as exc:
        return error_response(exc.status, exc.message, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {key: value for key, value in exc.headers.items() if key in ("Allow", "Retry-After", "WWW-Authenticate")}
        return error_response(exc.status, _message_for(request, exc), headers=headers)
    except (ConnectionResetError, ConnectionAbortedError):
        raise  # the client went away: nothing to answer
    except Exception:
        log.exception("internal error handling %s %s", request.method, request.path)
        return error_response(500, "internal error")
