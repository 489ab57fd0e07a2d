"""``GET /api/session``: who the caller is to this server, so that a client (the dashboard) can
tell which actions the credentials allow before trying them.

The access middleware (flowengine.server.access) leaves the principal it authenticated in
the request under :data:`PRINCIPAL`; with authentication off there is none, and everyone may
do everything.
"""

from __future__ import annotations

from aiohttp import web

from ..lib.auth import SCOPES, Principal
from .http_json import ClientError, json_response
from .keys import CONFIG

__all__ = ["PRINCIPAL", "get_session"]

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")


async def get_session(request: web.Request) -> web.Response:
    if not request.app[CONFIG].auth_enabled:
        return json_response({"authenticated": False, "auth": "off", "subject": None, "scopes": list(SCOPES)})
    principal = request.get(PRINCIPAL)
    if principal is None:  # only if the route table stopped guarding this route
        raise ClientError(401, "missing credentials: send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    # A scope allows every scope before it (SCOPES is ordered least powerful first).
    scopes = [scope for scope in SCOPES if principal.allows(scope)]
    return json_response(
        {"authenticated": True, "auth": principal.kind, "subject": principal.subject, "scopes": scopes}
    )
