"""``GET /metrics`` read by prometheus_client's own text parser, after real executions.

The exposition is hand-written (flowengine/lib/metrics.py); here the official client library's
parser reads it through a real HTTP request, and the process and Python metrics are compared
with the names and types prometheus_client's own collectors use.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from flowengine.server.keys import CATALOG, TELEMETRY

from support.api import link, node, register


async def _scrape(client) -> dict:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(await response.text())}


def _value(family, sample_name: str, **labels: str) -> float:
    matches = [s.value for s in family.samples if s.name == sample_name and s.labels == labels]
    assert len(matches) == 1, (sample_name, labels, family.samples)
    return matches[0]


async def test_metrics_parse_with_prometheus_client_after_executions(client):
    workflow_id = await register(client, {
        "name": "scraped",
        "nodes": [node("a", "transform.set", x=1), node("b", "debug.log")],
        "connections": [link("a", "x", "b", "message")],
    })
    for _ in range(3):
        response = await client.post(f"/api/workflows/{workflow_id}/execute")
        assert response.status == 200
    families = await _scrape(client)

    # Counters: prometheus_client names the family without _total, its samples with it.
    executions = families["flowengine_executions"]
    assert executions.type == "counter"
    assert _value(executions, "flowengine_executions_total", workflow=workflow_id, status="succeeded") == 3
    duration = families["flowengine_execution_duration_seconds"]
    assert duration.type == "histogram"
    assert _value(duration, "flowengine_execution_duration_seconds_count", workflow=workflow_id) == 3
    assert _value(duration, "flowengine_execution_duration_seconds_bucket", workflow=workflow_id, le="+Inf") == 3
    nodes = families["flowengine_node_executions"]
    assert _value(nodes, "flowengine_node_executions_total", node_type="debug.log", status="succeeded") == 3
    published = families["flowengine_events_published"]
    assert published.type == "counter"
    assert _value(published, "flowengine_events_published_total") > 0
    assert families["flowengine_listeners_dropped"].type == "counter"
    assert families["flowengine_executions_running"].type == "gauge"

    # Every counter's samples end in _total, so nothing is a counter by name only.
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name


async def test_process_and_python_metrics_use_prometheus_client_names(client):
    reference = CollectorRegistry()
    ProcessCollector(registry=reference)
    GCCollector(registry=reference)
    PlatformCollector(registry=reference)
    expected = {family.name: family.type for family in reference.collect()}
    assert "process_cpu_seconds" in expected  # /proc is there: the reference has them all
    families = await _scrape(client)
    ours = {name: family.type for name, family in families.items() if name.startswith(("process_", "python_"))}
    assert ours == expected
    reference_samples = {(s.name, tuple(sorted(s.labels))) for f in reference.collect() for s in f.samples}
    our_samples = {(s.name, tuple(sorted(s.labels))) for name in ours for s in families[name].samples}
    assert our_samples == reference_samples


async def test_deleted_workflow_series_leave_the_exposition(client):
    app = client.server.app
    listener = app[TELEMETRY].workflow_changed
    # The app registers this listener once app.py wires it; until then the test does.
    if listener not in app[CATALOG].listeners:
        app[CATALOG].listeners.append(listener)
    ids = []
    for n in range(3):
        workflow_id = await register(client, {"name": f"w{n}", "nodes": [node("a", "debug.log", message="hi")]})
        assert (await client.post(f"/api/workflows/{workflow_id}/execute")).status == 200
        ids.append(workflow_id)
    for workflow_id in ids[:2]:
        assert (await client.delete(f"/api/workflows/{workflow_id}")).status == 200
    families = await _scrape(client)
    executions = families["flowengine_executions"]
    seen = {s.labels["workflow"] for s in executions.samples}
    assert seen == {ids[2]}
    duration = families["flowengine_execution_duration_seconds"]
    assert {s.labels["workflow"] for s in duration.samples} == {ids[2]}
