"""The dashboard's browser tests and benchmark: the real application in a thread, and Debian's
Chromium driven by Playwright.

Playwright's synchronous API needs the main thread free of an event loop, so the server runs
``make_app`` on 127.0.0.1 in a thread with its own loop. Chromium is the system one
(/usr/bin/chromium): Playwright's own browser download is never used (it cannot be reached from
here, and CI installs Debian's package instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web

from flowengine.config import Config
from flowengine.server.app import make_app
from flowengine.server.protocol import FlowengineRunner

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "LiveServer", "missing_browser", "launch"]

CHROMIUM = "/usr/bin/chromium"
# Root on a closed network: no sandbox, no GPU, no call home; every host but 127.0.0.1 fails to
# resolve, so a request off-origin could not succeed even if the page made one.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def launch(playwright: Any) -> Any:
    """Chromium with a fresh temporary profile; each test then opens its own context in it."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)


class LiveServer:
    """``make_app(config)`` served on 127.0.0.1 from a thread; ``stop()`` and ``start()`` again
    restart it on the same port and database, as a real restart would."""

    def __init__(self, config: Config) -> None:
        self.config = dataclasses.replace(config, host="127.0.0.1", port=0)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            loop = self._loop
            assert loop is not None
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # report start-up failures to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="flowengine-live-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        config = dataclasses.replace(self.config, port=self.port)
        self._runner = FlowengineRunner(make_app(config))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        """A graceful stop (as on SIGTERM): running executions are interrupted and listeners get
        1001."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop = self._thread = self._runner = None

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One API call from outside the browser: (status, decoded JSON)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
