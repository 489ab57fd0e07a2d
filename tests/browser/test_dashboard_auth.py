"""The dashboard with authentication on: the dialog asks once per tab, every later request
carries the credential (the socket as ?token=), a read-only key sees the actions it may not use
disabled with the scope named; and a 429 says when to retry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import open_tab, start_server
from playwright.sync_api import expect

from flowengine.lib.ratelimit import parse_rate_limit

from support.browser import LiveServer
from support.dashboard import failing, register, slow

ADMIN = "admin-key-0123456789"
READER = "reader-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory, api_keys={ADMIN: "admin", READER: "read"})
    yield live
    live.stop()


def _sign_in(page: Any, key: str, accepted: bool = True) -> None:
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key or JWT").fill(key)
    dialog.get_by_role("button", name="Sign in").click()
    if accepted:
        expect(dialog).to_be_hidden()


def _try(button: Any) -> None:
    """Click the action unless it is disabled already: with GET /api/session the page knows the
    scopes up front; without it, the 403 the click gets disables it."""
    expect(button).to_be_visible()
    if button.is_enabled():
        button.click()


def test_the_dialog_asks_once_and_later_requests_carry_the_key(tab, server):
    register(server, slow("guarded", 1), token=ADMIN)
    page = tab.open()
    _sign_in(page, ADMIN)
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    signed_in_at = len(tab.requests)
    page.get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="guarded").click()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    page.get_by_role("link", name="Executions").click()
    expect(page.locator("#executions tbody tr")).to_have_count(1)
    expect(page.get_by_role("dialog", name="Sign in")).to_be_hidden()
    later = [(method, url, headers) for method, url, headers in tab.requests[signed_in_at:] if "/api/" in url]
    assert later
    for method, url, headers in later:
        if method == "WS":
            assert f"token={ADMIN}" in url, url
        else:
            assert headers.get("authorization") == f"Bearer {ADMIN}", url
    # A reload in the same tab keeps the key (sessionStorage): no dialog again.
    page.reload()
    expect(page.locator("#executions tbody tr")).to_have_count(1)
    expect(page.get_by_role("dialog", name="Sign in")).to_be_hidden()


def test_a_read_only_key_sees_actions_disabled_with_the_scope(tab, server):
    register(server, failing("guarded-fail", fixed=False), token=ADMIN)
    status, body = server.call("POST", "/api/workflows/guarded-fail/execute", {"inputs": {}}, token=ADMIN)
    assert status == 500, body
    page = tab.open(f"#/executions/{body['execution_id']}")
    _sign_in(page, READER)
    expect(page.locator("#exec-status")).to_have_text("✗ failed")
    rerun = page.get_by_role("button", name=re.compile("^Re-run from failure"))
    _try(rerun)
    expect(rerun).to_be_disabled()
    expect(rerun).to_have_text("Re-run from failure (needs 'execute')")
    page.get_by_role("link", name="Executions").click()
    delete = page.locator("#executions tbody tr").first.get_by_role("button", name=re.compile("^Delete"))
    _try(delete)
    expect(delete).to_be_disabled()
    expect(delete).to_have_text("Delete (needs 'admin')")
    assert server.call("GET", f"/api/executions/{body['execution_id']}", token=ADMIN)[0] == 200


def test_wrong_credentials_ask_again(tab, server):
    page = tab.open()
    _sign_in(page, "not-a-key-at-all", accepted=False)
    expect(page.get_by_role("dialog", name="Sign in")).to_contain_text("refused")
    _sign_in(page, ADMIN)
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()


def test_429_shows_when_to_retry(browser, tmp_path_factory):
    live = start_server(tmp_path_factory, rate_limit=parse_rate_limit("4/minute"))
    try:
        tab = open_tab(browser, live.url)
        page = tab.open()
        for _ in range(6):
            page.get_by_role("link", name="Workflows").click()
            page.get_by_role("link", name="Triggers").click()
        banner = page.get_by_role("alert").filter(has_text="Too many requests")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(re.compile(r"retry in \d+ s"))
        tab.page.context.close()
    finally:
        live.stop()
