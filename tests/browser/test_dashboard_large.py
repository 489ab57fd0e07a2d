"""Large runs stay usable: a 1,000- and a 5,000-node DAG watched to the end from the page that
started them, with only the nodes in sight in the DOM (graph and table) and the right counts.
How long layout, first render and watching take is measured in bench/ (python -m bench --only
dashboard), not asserted here."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from support.dashboard import layered, register

GRAPH_NODES_AT_MOST = 400  # DASHBOARD.md's budget for a 1,000-node graph
TABLE_ROWS_AT_MOST = 40 + 2  # the window, plus the two spacer rows


@pytest.mark.parametrize("count", [1000, 5000])
def test_large_run_is_watched_to_the_end_with_a_bounded_dom(tab, server, count):
    register(server, layered(f"big-{count}", count, delay_ms=3000))
    page = tab.open(f"#/workflows/big-{count}")
    expect(page.get_by_role("heading", name=f"Workflow {count} nodes")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f-]{36}$"))
    expect(page.locator('#summary li[data-status="total"]')).to_have_text(f"{count} nodes")
    expect(page.locator('#nodes tr[data-node="n1"]')).to_have_attribute("data-status", "running")
    expect(page.locator('#graph g[data-id="n1"]')).to_have_attribute("data-status", "running")
    # While it runs and once it is done, only a window of nodes and rows is in the DOM.
    sizes = []
    for _ in range(2):
        sizes.append((page.locator("#graph g.node").count(), page.locator("#nodes tbody tr").count()))
        page.locator("#graph").press("ArrowRight")
        page.locator("#graph").press("ArrowDown")
    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    expect(page.locator('#summary li[data-status="succeeded"]')).to_have_text(f"✓ succeeded {count}")
    expect(page.locator('#summary li[data-status="pending"]')).to_have_count(0)
    expect(page.locator('#summary li[data-status="running"]')).to_have_count(0)
    page.locator("#nodes").evaluate("element => element.scrollTop = element.scrollHeight")
    expect(page.locator(f'#nodes tr[data-node="n{count - 1}"]')).to_have_attribute("data-status", "succeeded")
    page.locator("#graph").press("-")
    page.locator("#graph").press("-")
    page.locator("#graph").press("-")
    sizes.append((page.locator("#graph g.node").count(), page.locator("#nodes tbody tr").count()))
    for graph_nodes, rows in sizes:
        assert 0 < graph_nodes <= GRAPH_NODES_AT_MOST
        assert 0 < rows <= TABLE_ROWS_AT_MOST
    assert tab.errors == []
