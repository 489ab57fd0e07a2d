"""A big graph is laid out in slices, after the rest of the execution page is up: meanwhile the
graph says so, the counts and the node table follow the run, and once the layout is ready the
graph shows every state seen so far, then follows the run to the end.

The page holds a finished layout while ``window.feLayoutGate`` (a promise the test resolves) is
pending, so that events certainly arrive before the graph exists."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from support.dashboard import layered, register, start

COUNT = 5000
HOLD_LAYOUT = "window.feLayoutGate = new Promise((resolve) => (window.feOpenLayoutGate = resolve));"


def test_events_during_the_layout_reach_the_graph_once_it_is_drawn(tab, server):
    register(server, layered("held", COUNT, delay_ms=6000))
    tab.page.add_init_script(HOLD_LAYOUT)
    execution_id = start(server, "held")
    page = tab.open(f"#/executions/{execution_id}")
    # The layout is held: the page says the graph is coming, and the run's events are applied.
    expect(page.locator("#graph")).to_contain_text(f"Laying out {COUNT} nodes…")
    # n0 has succeeded (the table puts problems and running nodes first: it is counted), n1 runs.
    expect(page.locator('#nodes tr[data-node="n1"]')).to_have_attribute("data-status", "running")
    expect(page.locator('#summary li[data-status="succeeded"]')).to_have_text("✓ succeeded 1")
    expect(page.locator("#graph g.node")).to_have_count(0)
    expect(page.locator("#graph")).to_contain_text(f"Laying out {COUNT} nodes…")

    page.evaluate("window.feOpenLayoutGate()")
    # n0's and n1's states came while there was no graph (n1 still runs): the graph has them.
    expect(page.locator('#graph g[data-id="n1"]')).to_have_attribute("data-status", "running")
    expect(page.locator('#graph g[data-id="n0"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator('#graph g[data-id="n0"] .state')).to_have_text("succeeded")
    expect(page.locator("#graph")).not_to_contain_text("Laying out")

    expect(page.locator("#exec-status")).to_have_text("✓ succeeded")
    expect(page.locator('#summary li[data-status="succeeded"]')).to_have_text(f"✓ succeeded {COUNT}")
    graph_nodes = page.locator("#graph g.node")
    expect(graph_nodes.first).to_be_visible()
    expect(page.locator('#graph g.node:not([data-status="succeeded"])')).to_have_count(0)
    # The last node, far from the first view: opened from the table, centred in the graph.
    page.get_by_role("searchbox", name="Filter nodes").fill(f"n{COUNT - 1}")
    page.locator(f'#nodes tr[data-node="n{COUNT - 1}"] button').click()
    expect(page.locator(f'#graph g[data-id="n{COUNT - 1}"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator(f'#graph g[data-id="n{COUNT - 1}"]')).to_have_class(re.compile(r"\bselected\b"))
    assert tab.errors == []
