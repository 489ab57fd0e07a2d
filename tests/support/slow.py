"""A local HTTP route that answers only when a test lets it: for timeouts against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web


def held_route() -> tuple[Callable[[web.Request], Awaitable[web.Response]], asyncio.Event]:
    """A handler answering "late" once the returned event is set (or after 10 s), and that event.
    Set it when the test ends: waiting on an event, not a long sleep, lets the server shut down
    promptly."""
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(release.wait(), 10)
        except TimeoutError:
            pass
        return web.Response(text="late")

    return held, release
