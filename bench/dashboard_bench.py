"""Measurement 10: the dashboard in headless Chromium (Debian's /usr/bin/chromium) against the
real application, for the budgets of DASHBOARD.md section 4.

- page weight: raw and gzip bytes of every file the first page loads, and how many requests;
- first contentful paint of ``/`` and the time a route with data (50 executions) takes;
- a 1,000- and a 5,000-node execution page: layout, first render, graph nodes in the DOM and
  the slowest of 30 pan frames (timings from the page itself: window.feTiming);
- watching a 5,000-node run from the page that started it: from the click on Run to the last
  node drawn, and the main-thread tasks over 50 ms meanwhile (Long Tasks API).

The browser tests assert what the page shows; only this module measures how fast.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import REPO, Profile, median

sys.path.insert(0, str(REPO / "tests"))  # the browser tests' server and workflow helpers

from flowengine.config import Config
from flowengine.server.dashboard import ASSETS

from support.browser import LiveServer, launch, missing_browser
from support.dashboard import layered, register

# Counts every main-thread task over 50 ms, from before the page's own scripts run.
_LONG_TASKS = """
window.feTiming = [];
window.feLongTasks = [];
new PerformanceObserver((list) => { for (const entry of list.getEntries()) window.feLongTasks.push(entry.duration); })
  .observe({ type: "longtask", buffered: true });
"""


@dataclass
class DashboardResult:
    raw_bytes: int = 0
    gzip_bytes: int = 0
    requests: int = 0
    first_paint_ms: float = 0.0
    route_ms: float = 0.0
    graphs: list[dict[str, Any]] = field(default_factory=list)  # per size: layout, render, DOM, pan
    watch: dict[str, Any] = field(default_factory=dict)


def _timing(page: Any, name: str) -> list[float]:
    return [duration for label, duration in page.evaluate("window.feTiming") if label == name]


def measure_dashboard(profile: Profile) -> DashboardResult:
    reason = missing_browser()
    if reason is not None:
        raise SystemExit(f"dashboard benchmark: {reason}")
    from playwright.sync_api import sync_playwright

    result = DashboardResult()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        server = LiveServer(Config(db=str(Path(folder) / "bench.db"))).start()
        browser = launch(playwright)
        try:
            def fresh_page() -> Any:
                """A new context: an empty cache and a first load, as a new visitor gets."""
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_init_script(_LONG_TASKS)
                return context.new_page()

            register(server, layered("bench-small", 12, delay_ms=0))
            for _ in range(50):
                server.call("POST", "/api/workflows/bench-small/execute", {"inputs": {}})
            paints, routes = [], []
            for _ in range(profile.repeats + 1):
                page = fresh_page()
                loaded: list[str] = []
                page.on("request", lambda request, into=loaded: into.append(request.url))
                page.goto(server.url + "/#/executions")
                page.wait_for_selector("#executions tbody tr >> nth=49")
                paints.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                routes.append(_timing(page, "route")[-1])
                page.context.close()
            result.first_paint_ms, result.route_ms = median(paints[1:]), median(routes[1:])
            files = [url for url in loaded if "/api/" not in url]
            result.requests = len(files)
            for url in files:
                name = "index.html" if url.endswith("/") else url.rsplit("/", 1)[1]
                result.raw_bytes += len(ASSETS[name].body)
                result.gzip_bytes += len(ASSETS[name].gzipped)

            page = fresh_page()
            for count in (1000, 5000):
                register(server, layered(f"bench-{count}", count, delay_ms=0))
                status, body = server.call("POST", f"/api/workflows/bench-{count}/execute", {"inputs": {}})
                assert status == 200, body
                layouts, renders, pans = [], [], []
                for _ in range(profile.repeats + 1):
                    page.goto(server.url + "/#/executions")
                    page.wait_for_selector("#executions")
                    page.evaluate("window.feTiming = []")
                    page.goto(f"{server.url}/#/executions/{body['execution_id']}")
                    page.wait_for_selector('#summary li[data-status="succeeded"]')
                    # The graph is laid out in slices after the route's task: "graph" is the
                    # time from the view's start to its first graph frame, noted in the frame
                    # that draws its first nodes. (Not wait_for_function: its polling evaluates a
                    # string, which the page's CSP refuses.)
                    page.wait_for_selector("#graph g.node")
                    layouts.append(_timing(page, "layout")[0])
                    renders.append(_timing(page, "graph")[0])
                    page.evaluate("window.feTiming = []")
                    page.locator("#graph").focus()
                    for key in ["ArrowRight", "ArrowDown"] * 15:
                        page.keyboard.press(key)
                    page.wait_for_timeout(100)
                    pans.append(max(_timing(page, "draw")))
                nodes_in_dom = page.locator("#graph g.node").count()
                result.graphs.append({
                    "nodes": count, "layout_ms": median(layouts[1:]), "render_ms": median(renders[1:]),
                    "dom_nodes": nodes_in_dom, "pan_ms": median(pans[1:]),
                })

            # Watching a run live: the page starts it and follows it to the end.
            register(server, layered("bench-watch", 5000, delay_ms=500))
            page.goto(server.url + "/#/workflows/bench-watch")
            run = page.get_by_role("button", name="Run", exact=True)
            run.wait_for()
            # The workflow's own graph is laid out after its page is up: counted from the click
            # on Run, the watch would include that page's work.
            page.locator("svg.graph g.node").first.wait_for()
            page.evaluate("window.feLongTasks = []")
            started = time.perf_counter()
            run.click()
            page.wait_for_url("**/#/executions/*")
            page.wait_for_selector('#exec-status:has-text("succeeded")', timeout=120_000)
            page.wait_for_selector('#summary li[data-status="succeeded"]:has-text("5000")', timeout=120_000)
            watched = time.perf_counter() - started
            long_tasks = page.evaluate("window.feLongTasks")
            result.watch = {"seconds": watched, "long_tasks": len(long_tasks), "longest_ms": max(long_tasks, default=0.0)}
        finally:
            browser.close()
            server.stop()
    return result
