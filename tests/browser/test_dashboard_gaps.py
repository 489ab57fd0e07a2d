"""The dashboard on the server endpoints it asks for beyond the first API: GET /api/session,
execution search (since, until, trigger, error, total), event paging (node_id), graphs of
deleted workflows, and the batched event stream (?batch=true). Against a server without them
these fail; the dashboard itself falls back (see test_dashboard.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import open_tab, start_server
from playwright.sync_api import expect

from support.browser import LiveServer
from support.dashboard import failing, layered, register, slow, start

ADMIN = "gaps-admin-key-0123456789"
READER = "gaps-reader-key-0123456789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory, api_keys={ADMIN: "admin", READER: "read"})
    yield live
    live.stop()


def _sign_in(page: Any, key: str) -> None:
    dialog = page.get_by_role("dialog", name="Sign in")
    dialog.get_by_label("API key or JWT").fill(key)
    dialog.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_hidden()


def test_first_page_has_no_console_error_at_all(tab):
    page = tab.open()
    expect(page.locator("#live")).to_have_text("live")
    for name in ("Workflows", "Triggers", "Executions"):
        page.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.locator("#who")).to_have_text("authentication off")
    assert tab.errors == []


def test_a_read_only_key_sees_actions_disabled_before_trying(browser, guarded):
    register(guarded, failing("gaps-fail", fixed=False), token=ADMIN)
    status, body = guarded.call("POST", "/api/workflows/gaps-fail/execute", {"inputs": {}}, token=ADMIN)
    assert status == 500, body
    tab = open_tab(browser, guarded.url)
    try:
        page = tab.open(f"#/executions/{body['execution_id']}")
        _sign_in(page, READER)
        expect(page.locator("#who")).to_contain_text("(read)")
        expect(page.get_by_role("button", name="Re-run from failure (needs 'execute')")).to_be_disabled()
        expect(page.get_by_role("button", name="Re-run (needs 'execute')")).to_be_disabled()
        page.get_by_role("link", name="Executions").click()
        expect(page.locator("#executions tbody tr").first.get_by_role("button", name="Delete (needs 'admin')")).to_be_disabled()
        posts = [url for method, url, _ in tab.requests if method == "POST"]
        assert posts == []  # nothing was tried to learn it
    finally:
        tab.page.context.close()


def test_search_by_trigger_error_and_time_with_a_total(tab, server):
    register(server, failing("gaps-search", fixed=False))
    register(server, slow("gaps-ok", 1))
    for _ in range(3):
        assert server.call("POST", "/api/workflows/gaps-search/execute", {"inputs": {}})[0] == 500
    assert server.call("POST", "/api/workflows/gaps-ok/execute", {"inputs": {}})[0] == 200
    page = tab.open("#/executions")
    page.get_by_label("Error contains").fill("nothing at 'missing'")
    page.get_by_label("Trigger").select_option("manual")
    page.get_by_label("Since").fill("2000-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#executions tbody tr")).to_have_count(3)
    expect(page.locator(".total")).to_have_text("3 in all")
    expect(page.locator(".messages")).to_have_text("")  # no filter was dropped
    page.get_by_label("Since").fill("2999-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".total")).to_have_text("0 in all")


def test_a_deleted_workflow_still_draws_its_graph(tab, server):
    register(server, slow("gaps-deleted", 1))
    status, body = server.call("POST", "/api/workflows/gaps-deleted/execute", {"inputs": {}})
    assert status == 200, body
    assert server.call("DELETE", "/api/workflows/gaps-deleted")[0] == 200
    page = tab.open(f"#/executions/{body['execution_id']}")
    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    expect(page.locator("#graph g[data-id]")).to_have_count(3)
    assert page.locator("#graph path.edges").get_attribute("d") != ""
    expect(page.get_by_text("is no longer kept")).to_have_count(0)


def test_events_arrive_batched_and_a_big_runs_node_events_are_paged(tab, server):
    register(server, layered("gaps-big", 1200, delay_ms=2000))
    page = tab.open("#/workflows/gaps-big")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]{36}$"))
    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    decoded = [json.loads(frame) for frame in tab.frames]
    assert decoded and all(isinstance(frame, list) for frame in decoded)
    assert any(len(frame) > 1 for frame in decoded)  # one frame per bus flush, not per event
    page.locator('#nodes tr[data-node="n1"] button').click()
    expect(page.locator("#panel")).to_contain_text("waiting 2000 ms")
    asked = [url for method, url, _ in tab.requests if method == "GET" and "/events?" in url]
    assert asked and "node_id=n1" in asked[-1]
    execution_id = page.url.rsplit("/", 1)[1]
    status, events = server.call("GET", f"/api/executions/{execution_id}/events?node_id=n1&limit=500")
    assert status == 200 and events and {event["node_id"] for event in events} == {"n1"}


def test_live_list_filters_running_starts(tab, server):
    register(server, slow("gaps-live", 10))
    page = tab.open("#/executions?trigger=webhook")
    expect(page.locator("#live")).to_have_text("live")
    execution_id = start(server, "gaps-live")  # manual: not listed under trigger=webhook
    expect(page.locator(".total")).to_have_text(re.compile(r"^\d+ in all$"))
    assert server.call("GET", f"/api/executions/{execution_id}")[0] == 200
    expect(page.locator(f'#executions tr[data-id="{execution_id}"]')).to_have_count(0)
