"""Fixtures of the dashboard's browser tests: one server and one Chromium per module, a fresh
browser context per test that records console errors and every request the page makes.

Without Chromium or Playwright these tests are skipped with the reason, except in CI
(``CI=true``), where they fail: a CI run must never pass without them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowengine.config import Config

from support.browser import LiveServer, launch, missing_browser

try:
    import axe_playwright_python  # noqa: F401
    import playwright  # noqa: F401
except ImportError:
    # The modules import them: without them nothing here can even be collected. In CI that is
    # a failure (the import errors stay); elsewhere the folder is left out.
    if os.environ.get("CI") != "true":
        collect_ignore_glob = ["test_*.py"]

# Playwright's waits: generous, since both cores may be busy; tests assert on DOM state, never
# on how long it took.
WAIT_MS = 30_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_browser()
    if reason is None or os.environ.get("CI") == "true":
        return  # in CI the browser fixture fails instead
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing_browser()
    if reason is not None:
        pytest.fail(f"the browser tests cannot run in CI: {reason}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def start_server(tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> LiveServer:
    db = tmp_path_factory.mktemp("dashboard") / "flowengine.db"
    return LiveServer(Config(db=str(db), **overrides)).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory)
    yield live
    live.stop()


@dataclass
class Tab:
    """A page and what it did: console errors, page errors, requests (method, url, headers)."""

    page: Any
    origin: str
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)

    def open(self, route: str = "") -> Any:
        self.page.goto(f"{self.origin}/{route}")
        return self.page

    def off_origin(self) -> list[str]:
        return [url for _, url, _ in self.requests if not (url.startswith(self.origin + "/") or url.startswith("data:"))]


def open_tab(browser: Any, origin: str) -> Tab:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    tab = Tab(page, origin)
    page.on("console", lambda message: message.type == "error" and tab.errors.append(f"{message.text} ({message.location.get('url', '')})"))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("request", lambda request: tab.requests.append((request.method, request.url, request.headers)))

    def watch(socket: Any) -> None:
        tab.requests.append(("WS", socket.url.replace("ws://", "http://", 1), {}))
        socket.on("framereceived", lambda payload: tab.frames.append(payload if isinstance(payload, str) else payload.get("payload", "")))

    page.on("websocket", watch)
    return tab


@pytest.fixture
def tab(browser: Any, server: LiveServer) -> Iterator[Tab]:
    opened = open_tab(browser, server.url)
    yield opened
    opened.page.context.close()
