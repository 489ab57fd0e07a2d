"""The dashboard in headless Chromium against the real server: what a user sees on each view,
live updates driven by WebSocket frames, the actions, and no request leaving the origin."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from support.api import webhook_workflow
from support.dashboard import failing, frames_of, register, slow, start


def test_first_page_renders_without_errors_or_requests_elsewhere(tab):
    page = tab.open()
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    for name in ("Workflows", "Triggers", "Executions"):
        page.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    assert tab.errors == []
    assert tab.off_origin() == []
    # The page itself and its files only: index, the stylesheet and five modules.
    files = {url for method, url, _ in tab.requests if method == "GET" and "/api/" not in url}
    assert files == {f"{tab.origin}/"} | {f"{tab.origin}/ui/{name}" for name in ("app.css", "app.js", "api.js", "graph.js", "views.js", "run.js")}


def test_run_from_the_workflow_page_is_watched_live(tab, server):
    register(server, slow("slow-run", 1500))
    page = tab.open("#/workflows/slow-run")
    expect(page.get_by_role("heading", name="Workflow Slow slow-run")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]{36}$"))
    execution_id = page.url.rsplit("/", 1)[1]
    row = page.locator('#nodes tr[data-node="wait"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(page.locator('#graph g[data-id="wait"]')).to_have_attribute("data-status", "running")
    expect(page.locator('#graph g[data-id="wait"] .state')).to_have_text("running")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(page.locator('#graph g[data-id="wait"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    # Driven by the socket: its frames carried the node's progress, and the execution's record
    # was not fetched over and over meanwhile (once at load, once when it finished).
    seen = [(event["type"], event.get("node_id")) for event in frames_of(tab, execution_id)]
    assert ("NodeStarted", "wait") in seen and ("NodeCompleted", "wait") in seen
    fetched = [url for method, url, _ in tab.requests if method == "GET" and url.endswith(f"/api/executions/{execution_id}")]
    assert len(fetched) <= 2
    assert tab.errors == []


def test_executions_list_shows_runs_started_elsewhere_without_polling(tab, server):
    register(server, slow("elsewhere", 800))
    page = tab.open("#/executions")
    expect(page.locator("#live")).to_have_text("live")
    listed = len([url for _, url, _ in tab.requests if "/api/executions?" in url])
    execution_id = start(server, "elsewhere")
    row = page.locator(f'#executions tr[data-id="{execution_id}"]')
    expect(row).to_have_attribute("data-status", "running")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row).to_contain_text("elsewhere")
    assert len([url for _, url, _ in tab.requests if "/api/executions?" in url]) == listed


def test_pause_live_holds_updates_until_resumed(tab, server):
    register(server, slow("paused", 10))
    page = tab.open("#/executions")
    expect(page.locator("#live")).to_have_text("live")
    page.get_by_role("button", name="Pause live").click()
    execution_id = start(server, "paused")
    expect(page.locator(".waiting")).to_contain_text("update(s) waiting")
    expect(page.locator(f'#executions tr[data-id="{execution_id}"]')).to_have_count(0)
    page.get_by_role("button", name="Resume live").click()
    expect(page.locator(f'#executions tr[data-id="{execution_id}"]')).to_have_attribute("data-status", "succeeded")


def test_cancel_a_running_execution(tab, server):
    register(server, slow("to-cancel", 60_000))
    execution_id = start(server, "to-cancel")
    page = tab.open(f"#/executions/{execution_id}")
    expect(page.locator('#nodes tr[data-node="wait"]')).to_have_attribute("data-status", "running")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#exec-status")).to_have_text("⊘ cancelled")
    expect(page.locator('#nodes tr[data-node="wait"]')).to_have_attribute("data-status", "cancelled")
    assert server.call("GET", f"/api/executions/{execution_id}")[1]["status"] == "cancelled"


def test_failed_run_shows_the_error_and_reruns_from_the_failure(tab, server):
    register(server, failing("flaky", fixed=False))
    status, body = server.call("POST", "/api/workflows/flaky/execute", {"inputs": {}})
    assert status == 500, body
    failed_id = body["execution_id"]
    page = tab.open(f"#/executions/{failed_id}")
    expect(page.locator("#exec-status")).to_have_text("✗ failed")
    # Problems first: the failed node heads the table.
    expect(page.locator("#nodes tbody tr[data-node]").first).to_have_attribute("data-node", "pick")
    page.locator('#nodes tr[data-node="pick"] button').click()
    expect(page.locator("#node-error")).to_contain_text("missing")
    # The fix is a new version; re-running from the failure reuses what succeeded.
    assert server.call("PUT", "/api/workflows/flaky", failing("flaky", fixed=True))[0] == 200
    page.get_by_role("button", name="Re-run from failure").click()
    expect(page).not_to_have_url(re.compile(failed_id))
    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    expect(page.locator('#nodes tr[data-node="first"]')).to_contain_text("(cached)")
    expect(page.get_by_role("link", name=failed_id[:13])).to_be_visible()  # the link to the original
    assert tab.errors == []


def test_node_panel_shows_derived_inputs_outputs_and_events(tab, server):
    register(server, slow("panel", 1))
    status, body = server.call("POST", "/api/workflows/panel/execute", {"inputs": {}})
    assert status == 200, body
    page = tab.open(f"#/executions/{body['execution_id']}")
    page.locator('#graph g[data-id="wait"]').click()
    panel = page.locator("#panel")
    expect(panel.get_by_role("heading", name="Node wait")).to_be_visible()
    expect(panel).to_contain_text("value ← start.value (derived from its output)")
    expect(panel).to_contain_text("waiting 1 ms")
    expect(page.locator("#log")).to_contain_text("WorkflowCompleted")
    seqs = [int(line.split()[0]) for line in page.locator("#log").inner_text().splitlines()]
    assert seqs == sorted(set(seqs))


def test_keyboard_only_reaches_an_execution(tab, server):
    register(server, slow("keys", 1))
    assert server.call("POST", "/api/workflows/keys/execute", {"inputs": {}})[0] == 200
    page = tab.open("#/executions")
    expect(page.locator("#executions tbody tr").first).to_be_visible()
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('href') || ''")
        if focused.startswith("#/executions/"):
            break
    else:
        raise AssertionError("no execution link reached with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("^Execution"))).to_be_visible()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none" or page.evaluate("document.activeElement === document.body")




def test_triggers_list_webhook_urls(tab, server):
    register(server, {"id": "hooked-page", **webhook_workflow("dashboard/incoming")})
    page = tab.open("#/triggers")
    row = page.locator("tr", has_text="hooked-page")
    expect(row).to_contain_text("Webhook")
    expect(row.locator("code")).to_have_text("/api/hooks/dashboard/incoming")
    expect(row.get_by_role("button", name="Copy URL")).to_be_visible()


def test_filters_and_older_pages(tab, server):
    register(server, slow("many", 1))
    register(server, failing("few", fixed=False))
    for _ in range(52):
        assert server.call("POST", "/api/workflows/many/execute", {"inputs": {}})[0] == 200
    assert server.call("POST", "/api/workflows/few/execute", {"inputs": {}})[0] == 500
    page = tab.open("#/executions")
    page.get_by_label("Workflow").fill("many")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#executions tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Older").click()
    expect(rows).to_have_count(52)
    expect(page.get_by_role("button", name="Older")).to_be_hidden()
    expect(page.locator("#executions tbody tr", has_text="few")).to_have_count(0)
    page.get_by_label("Workflow").fill("")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator('#executions tbody tr[data-status="failed"]', has_text="few")).to_have_count(1)
    expect(page.locator('#executions tbody tr:not([data-status="failed"])')).to_have_count(0)
