"""Take the README's screenshots of the dashboard: the Executions, Execution and Workflow views in
the light and the dark theme, from a real server with a few runs, in Debian's headless Chromium.

    .venv/bin/python docs/screenshots/take.py     # writes docs/screenshots/*.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from flowengine.config import Config  # noqa: E402

from support.browser import LiveServer, launch  # noqa: E402
from support.dashboard import failing, layered, register, slow, start  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        server = LiveServer(Config(db=str(Path(folder) / "shots.db"))).start()
        browser = launch(playwright)
        try:
            register(server, slow("nightly-report", 40))
            register(server, failing("import-orders", fixed=False))
            register(server, layered("fan-out-300", 300, width=12, delay_ms=10))
            for workflow_id in ("nightly-report", "fan-out-300", "nightly-report"):
                assert server.call("POST", f"/api/workflows/{workflow_id}/execute", {"inputs": {}})[0] == 200
            failed = server.call("POST", "/api/workflows/import-orders/execute", {"inputs": {}})[1]["execution_id"]
            register(server, slow("slow-sync", 600_000))
            start(server, "slow-sync")
            for theme in ("light", "dark"):
                context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=theme)
                page = context.new_page()
                page.goto(f"{server.url}/#/executions")
                expect(page.locator("#executions tbody tr")).to_have_count(5)
                page.screenshot(path=HERE / f"executions-{theme}.png")
                page.goto(f"{server.url}/#/executions/{failed}")
                page.locator('#nodes tr[data-node="pick"] button').click()
                expect(page.locator("#node-error")).to_be_visible()
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=HERE / f"execution-{theme}.png")
                page.goto(f"{server.url}/#/workflows/fan-out-300")
                expect(page.locator(".graph-host g.node").first).to_be_visible()
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=HERE / f"workflow-{theme}.png")
                context.close()
        finally:
            browser.close()
            server.stop()


if __name__ == "__main__":
    main()
