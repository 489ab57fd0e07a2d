"""The dashboard across a server restart: the sockets reconnect (after 1001) with replay, no
event is applied twice, and the pages end in the right state."""

from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from support.dashboard import frames_of, register, slow, start


def test_execution_page_resumes_after_a_restart_without_duplicates(tab, server):
    register(server, slow("restarted", 60_000))
    execution_id = start(server, "restarted")
    page = tab.open(f"#/executions/{execution_id}")
    expect(page.locator('#nodes tr[data-node="wait"]')).to_have_attribute("data-status", "running")
    expect(page.locator("#live")).to_have_text("live")
    server.stop()  # graceful: the run is recorded interrupted, listeners get 1001
    expect(page.locator("#live")).to_have_text(re.compile("retrying|finished"))
    server.start()
    expect(page.locator("#exec-status")).to_have_text("↯ interrupted")
    expect(page.locator("#live")).to_have_text("finished")
    expect(page.locator('#nodes tr[data-node="wait"]')).not_to_have_attribute("data-status", "running")
    recorded = server.call("GET", f"/api/executions/{execution_id}/events")[1]
    expect(page.locator("#log")).to_contain_text("WorkflowCompleted")
    shown = [int(line.split()[0]) for line in page.locator("#log").inner_text().splitlines()]
    assert shown == [event["seq"] for event in recorded]  # each once, in order, none missing
    seqs = [event["seq"] for event in frames_of(tab, execution_id)]
    assert seqs and set(seqs) <= set(shown)


def test_executions_list_reconnects_and_keeps_showing_new_runs(tab, server):
    register(server, slow("after-restart", 10))
    page = tab.open("#/executions")
    expect(page.locator("#live")).to_have_text("live")
    server.stop()
    expect(page.locator("#live")).to_contain_text("retrying")
    server.start()
    expect(page.locator("#live")).to_have_text("live")
    execution_id = start(server, "after-restart")
    row = page.locator(f'#executions tr[data-id="{execution_id}"]')
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(page.locator(f'#executions tr[data-id="{execution_id}"]')).to_have_count(1)


def test_executions_list_shows_runs_it_missed_while_disconnected(tab, server):
    register(server, slow("while-away", 10))
    page = tab.open("#/executions")
    expect(page.locator("#live")).to_have_text("live")
    server.stop()
    # Several failed attempts: the next one is seconds away, time enough for a whole run.
    expect(page.locator("#live")).to_have_text(re.compile(r"retrying in ([3-9]|1[0-5]) s"), timeout=30_000)
    server.start()
    execution_id = start(server, "while-away")
    for _ in range(100):
        status, record = server.call("GET", f"/api/executions/{execution_id}")
        if status == 200 and record["status"] != "running":
            break
        time.sleep(0.02)
    assert record["status"] == "succeeded"
    assert "retrying" in page.locator("#live").inner_text()  # it ran while the page was away
    expect(page.locator("#live")).to_have_text("live", timeout=30_000)
    row = page.locator(f'#executions tr[data-id="{execution_id}"]')
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row).to_have_count(1)
