"""The test server that goes through flowengine's own connection layer (flowengine.server.protocol),
so that tests see the parser's errors, head timeouts and keep-alive as ``flowengine serve``
answers them."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from flowengine.server.protocol import FlowengineRunner

__all__ = ["FlowengineTestServer"]


class FlowengineTestServer(TestServer):
    """``TestServer`` running the app with ``FlowengineRunner``; pass it to ``aiohttp_client``."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return FlowengineRunner(self.app, **kwargs)
