"""Accessibility: axe-core (the copy inside axe-playwright-python, injected by the test, never
fetched) finds no serious or critical issue on any view, in the light and the dark theme, with
colour contrast among its checks; the theme toggle is a pressed/unpressed button."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from support.dashboard import failing, register, slow, start

AXE = Axe()


@pytest.fixture(scope="module")
def routes(server) -> dict[str, str]:
    """One route per view, with data on it: a failed execution, a running one, workflows."""
    register(server, failing("a11y-failing", fixed=False))
    register(server, slow("a11y-slow", 60_000))
    status, body = server.call("POST", "/api/workflows/a11y-failing/execute", {"inputs": {}})
    assert status == 500, body
    running = start(server, "a11y-slow")
    return {
        "executions": "#/executions",
        "failed execution": f"#/executions/{body['execution_id']}",
        "running execution": f"#/executions/{running}",
        "workflows": "#/workflows",
        "workflow": "#/workflows/a11y-slow",
        "triggers": "#/triggers",
    }


def _serious(page: Any) -> list[str]:
    results = AXE.run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"]}})
    return [
        f"{violation['id']} ({violation['impact']}): {[node['target'] for node in violation['nodes']][:5]}"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_serious_or_critical_issue_on_any_view(tab, routes, theme):
    page = tab.page
    page.emulate_media(color_scheme=theme)
    found = {}
    for view, route in routes.items():
        tab.open(route)
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator("main[aria-busy]")).to_have_count(0)
        if view == "running execution":  # replayed up to the node that waits
            expect(page.locator('#nodes tr[data-node="wait"]')).to_have_attribute("data-status", "running")
        if "execution" in view and view != "executions":
            page.locator("#nodes tbody tr[data-node] button").first.click()  # the node panel too
            expect(page.locator("#panel h2")).to_be_visible()
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (theme == "dark")
        issues = _serious(page)
        if issues:
            found[view] = issues
    assert found == {}


def test_the_toggle_switches_theme_and_is_remembered(tab):
    page = tab.page
    page.emulate_media(color_scheme="light")
    tab.open()
    toggle = page.get_by_role("button", name="Dark theme: off")
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    toggle.click()
    expect(page.get_by_role("button", name="Dark theme: on")).to_have_attribute("aria-pressed", "true")
    dark = page.evaluate(background)
    assert dark != light
    issues = _serious(page)
    assert issues == []
    page.reload()
    expect(page.get_by_role("button", name="Dark theme: on")).to_be_visible()
    assert page.evaluate(background) == dark
