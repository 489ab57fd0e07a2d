"""Unit tests for flowengine.lib.metrics.

Every rendering is read back by ``support.exposition.parse_exposition``, a strict parser of the
Prometheus text format (0.0.4) written from the format's description, independent of the code
under test; the first tests here check that the parser itself refuses bad expositions.
"""

from __future__ import annotations

import math

import pytest

from flowengine.lib.metrics import CONTENT_TYPE, DEFAULT_BUCKETS, Counter, Histogram, Registry

from support.exposition import parse_exposition

# ---- the parser itself must catch bad expositions -------------------------------------------


@pytest.mark.parametrize("bad", [
    "x 1\n",  # no HELP/TYPE
    "# HELP x h\nx 1\n",  # no TYPE
    "# HELP x h\n# TYPE x counter\nx{a=\"1} 1\n",  # unterminated label value
    "# HELP x h\n# TYPE x counter\nx{a=\"\\t\"} 1\n",  # bad escape
    "# HELP x h\n# TYPE x counter\nx one\n",
    "# HELP x h\n# TYPE x counter\ny 1\n",
    "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
    "h_sum 1\nh_count 1\n",  # not cumulative
    "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",  # +Inf != count
    "# HELP x h\n# TYPE x counter\nx 1",  # no final newline
    "# HELP x h\n# TYPE x counter\nx\n",  # no value
])
def test_parser_rejects_bad_expositions(bad):
    with pytest.raises(AssertionError):
        parse_exposition(bad)


# ---- counters, gauges, histograms -----------------------------------------------------------


def test_content_type():
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_counter_render_and_values():
    registry = Registry()
    plain = registry.counter("flowengine_events_published_total", "Events published.")
    by = registry.counter("flowengine_executions_total", "Executions by status.", ("workflow", "status"))
    plain.inc()
    plain.inc(2.5)
    by.inc(workflow="wf-1", status="succeeded")
    by.inc(workflow="wf-1", status="succeeded")
    by.inc(3, workflow="wf-2", status="failed")
    families = parse_exposition(registry.render())
    assert families["flowengine_events_published_total"].type == "counter"
    assert families["flowengine_events_published_total"].get("flowengine_events_published_total") == 3.5
    executions = families["flowengine_executions_total"]
    assert executions.help == "Executions by status."
    assert executions.get("flowengine_executions_total", workflow="wf-1", status="succeeded") == 2
    assert executions.get("flowengine_executions_total", workflow="wf-2", status="failed") == 3
    assert by.value(workflow="wf-1", status="succeeded") == 2
    assert by.value(workflow="wf-3", status="failed") == 0


def test_counter_rejects_decrease_and_wrong_labels():
    counter = Counter("c_total", "c", ("route",))
    with pytest.raises(ValueError):
        counter.inc(-1, route="/")
    for labels in ({}, {"path": "/"}, {"route": "/", "extra": "x"}):
        with pytest.raises(ValueError) as info:
            counter.inc(**labels)
        assert "route" in str(info.value)
    with pytest.raises(ValueError):
        Counter("plain_total", "p").inc(route="/")


def test_unlabelled_metrics_show_zero_and_labelled_show_only_used_series():
    registry = Registry()
    registry.counter("a_total", "a")
    registry.counter("b_total", "b", ("x",))
    registry.gauge("g", "g")
    registry.histogram("h_seconds", "h", buckets=(1,))
    text = registry.render()
    families = parse_exposition(text)
    assert families["a_total"].get("a_total") == 0
    assert families["b_total"].samples == {}
    assert families["g"].get("g") == 0
    assert families["h_seconds"].get("h_seconds_count") == 0
    assert families["h_seconds"].get("h_seconds_bucket", le="+Inf") == 0
    # Families render in registration order.
    order = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert order == ["a_total", "b_total", "g", "h_seconds"]


def test_label_values_are_escaped():
    registry = Registry()
    counter = registry.counter("odd_total", "odd", ("value",))
    nasty = 'back\\slash "quoted"\nnew line } , = {'
    counter.inc(value=nasty)
    counter.inc(value="ünïcode ✓")
    text = registry.render()
    assert '\\\\slash \\"quoted\\"\\nnew line' in text
    families = parse_exposition(text)
    assert families["odd_total"].get("odd_total", value=nasty) == 1
    assert families["odd_total"].get("odd_total", value="ünïcode ✓") == 1


def test_help_text_is_escaped():
    registry = Registry()
    registry.gauge("g", 'Two\nlines with a \\ and "quotes".')
    text = registry.render()
    assert text.splitlines()[0] == '# HELP g Two\\nlines with a \\\\ and "quotes".'
    parse_exposition(text)


def test_gauge_set_inc_dec():
    registry = Registry()
    running = registry.gauge("running", "Executions running.")
    listeners = registry.gauge("listeners", "Listeners.", ("kind",))
    running.inc()
    running.inc()
    running.dec()
    listeners.set(4, kind="ws")
    listeners.dec(5, kind="ws")
    families = parse_exposition(registry.render())
    assert families["running"].type == "gauge"
    assert families["running"].get("running") == 1
    assert families["listeners"].get("listeners", kind="ws") == -1
    running.set(0.25)
    assert parse_exposition(registry.render())["running"].get("running") == 0.25


def test_gauge_callback_is_read_at_render_time():
    registry = Registry()
    queue: list[int] = []
    queued = registry.gauge("queued", "Queued executions.", callback=lambda: len(queue))
    registry.gauge("by_state", "By state.", ("state",),
                              callback=lambda: {"idle": 2, ("busy",): len(queue)})
    assert parse_exposition(registry.render())["queued"].get("queued") == 0
    queue.extend([1, 2, 3])
    families = parse_exposition(registry.render())
    assert families["queued"].get("queued") == 3
    assert families["by_state"].get("by_state", state="busy") == 3
    assert families["by_state"].get("by_state", state="idle") == 2
    assert queued.value() == 3
    with pytest.raises(ValueError):
        queued.set(1)


def test_histogram_buckets_are_cumulative_and_match_count():
    registry = Registry()
    hist = registry.histogram("duration_seconds", "Durations.", ("node_type",), buckets=(0.1, 1, 10))
    for value in (0.05, 0.1, 0.5, 1.0, 3, 20, 0):
        hist.observe(value, node_type="http.request")
    hist.observe(0.2, node_type="debug.log")
    text = registry.render()
    family = parse_exposition(text)["duration_seconds"]
    assert family.type == "histogram"

    def bucket(le: str, node_type: str = "http.request") -> float:
        return family.get("duration_seconds_bucket", le=le, node_type=node_type)

    # A value equal to a bound belongs to that bucket (le = "less than or equal").
    assert [bucket(le) for le in ("0.1", "1.0", "10.0", "+Inf")] == [3, 5, 6, 7]
    assert family.get("duration_seconds_count", node_type="http.request") == 7
    assert family.get("duration_seconds_sum", node_type="http.request") == pytest.approx(24.65)
    assert [bucket(le, "debug.log") for le in ("0.1", "1.0", "10.0", "+Inf")] == [0, 1, 1, 1]
    assert hist.snapshot(node_type="debug.log") == (1, 0.2)
    assert hist.snapshot(node_type="never") == (0, 0.0)
    # "le" comes last, after the metric's own labels.
    assert 'duration_seconds_bucket{node_type="debug.log",le="0.1"} 0' in text


def test_histogram_default_buckets_and_extremes():
    hist = Histogram("h", "h")
    assert hist.buckets == DEFAULT_BUCKETS
    for value in (-1.0, 0.0, 1e-9, 10.0, 10.000001, math.inf):
        hist.observe(value)
    registry = Registry()
    registry.register(hist)
    family = parse_exposition(registry.render())["h"]
    assert family.get("h_bucket", le="0.005") == 3
    assert family.get("h_bucket", le="10.0") == 4
    assert family.get("h_bucket", le="+Inf") == family.get("h_count") == 6
    assert family.get("h_sum") == math.inf
    with pytest.raises(ValueError):
        hist.observe(math.nan)


@pytest.mark.parametrize("buckets", [(), (1, 1), (2, 1), (math.nan,), (1, math.inf, 2)])
def test_histogram_rejects_bad_buckets(buckets):
    with pytest.raises(ValueError):
        Histogram("h", "h", buckets=buckets)


def test_histogram_accepts_explicit_inf_and_reserves_le():
    assert Histogram("h", "h", buckets=(1, 2, math.inf)).buckets == (1.0, 2.0)
    with pytest.raises(ValueError):
        Histogram("h", "h", ("le",))


@pytest.mark.parametrize(("name", "labels"), [
    ("1bad", ()),
    ("bad-name", ()),
    ("", ()),
    ("ok", ("bad-label",)),
    ("ok", ("__reserved",)),
    ("ok", ("a", "a")),
])
def test_invalid_names_rejected(name, labels):
    with pytest.raises(ValueError):
        Counter(name, "h", labels)


def test_registry_refuses_clashing_names():
    registry = Registry()
    registry.histogram("req_seconds", "r")
    for name in ("req_seconds", "req_seconds_count", "req_seconds_bucket"):
        with pytest.raises(ValueError):
            registry.counter(name, "c")
    registry.counter("other_total", "o")
    with pytest.raises(ValueError):
        registry.gauge("other_total", "o")


def test_value_formatting_parses_back():
    registry = Registry()
    gauge = registry.gauge("v", "v", ("case",))
    cases = {"int": 3.0, "frac": 0.1, "big": 1e20, "tiny": 1e-12, "neg": -2.5, "inf": math.inf, "ninf": -math.inf}
    for case, value in cases.items():
        gauge.set(value, case=case)
    gauge.set(math.nan, case="nan")
    text = registry.render()
    assert 'v{case="int"} 3\n' in text
    family = parse_exposition(text)["v"]
    for case, value in cases.items():
        assert family.get("v", case=case) == value
    assert math.isnan(family.get("v", case="nan"))


def test_many_series_render_in_a_stable_order():
    registry = Registry()
    counter = registry.counter("http_requests_total", "Requests.", ("route", "method", "status"))
    for n in range(50):
        counter.inc(route=f"/r/{n % 7}", method="GET" if n % 2 else "POST", status=str(200 + n % 3))
    first = registry.render()
    assert first == registry.render()
    family = parse_exposition(first)["http_requests_total"]
    assert sum(family.samples.values()) == 50


def test_unchecked_label_forms_update_the_same_series_as_the_checked_ones():
    registry = Registry()
    counter = registry.counter("jobs_total", "Jobs.", ("queue", "status"))
    histogram = registry.histogram("job_seconds", "Job time.", ("queue",), buckets=(0.1, 1.0))
    counter.inc(queue="a", status="ok")
    counter.inc_labels(("a", "ok"), 2)
    histogram.observe(0.05, queue="a")
    histogram.observe_labels(("a",), 0.5)
    assert counter.value(queue="a", status="ok") == 3
    assert histogram.snapshot(queue="a") == (2, 0.55)
    text = registry.render()
    assert 'jobs_total{queue="a",status="ok"} 3' in text
    assert 'job_seconds_bucket{queue="a",le="0.1"} 1' in text and 'job_seconds_bucket{queue="a",le="1.0"} 2' in text


# ---- callback counters, forgetting series ---------------------------------------------------


def test_counter_callback_is_a_read_only_counter():
    registry = Registry()
    events = [0]
    published = registry.counter("events_published_total", "Events published.", callback=lambda: events[0])
    registry.counter("gc_total", "By generation.", ("generation",), callback=lambda: {"0": 5, ("1",): 2})
    families = parse_exposition(registry.render())
    assert families["events_published_total"].type == "counter"
    assert families["events_published_total"].get("events_published_total") == 0
    events[0] = 41
    families = parse_exposition(registry.render())
    assert families["events_published_total"].get("events_published_total") == 41
    assert families["gc_total"].get("gc_total", generation="1") == 2
    assert published.value() == 41
    with pytest.raises(ValueError, match="callback"):
        published.inc()


def test_registry_forget_drops_every_series_with_the_label_value():
    registry = Registry()
    runs = registry.counter("runs_total", "Runs.", ("workflow", "status"))
    seconds = registry.histogram("run_seconds", "Durations.", ("workflow",), buckets=(1.0,))
    last = registry.gauge("last_size", "Sizes.", ("workflow",))
    nodes = registry.counter("nodes_total", "Nodes.", ("node_type",))
    registry.gauge("live", "Live.", ("workflow",), callback=lambda: {"gone": 1})
    for workflow in ("gone", "kept"):
        runs.inc(workflow=workflow, status="succeeded")
        runs.inc(workflow=workflow, status="failed")
        seconds.observe(0.5, workflow=workflow)
        last.set(3, workflow=workflow)
    nodes.inc(node_type="gone")  # same value, other label: untouched
    assert registry.forget("workflow", "gone") == 4
    text = registry.render()
    families = parse_exposition(text)
    assert 'workflow="gone"' not in text.replace('live{workflow="gone"}', "")
    assert families["runs_total"].get("runs_total", workflow="kept", status="failed") == 1
    assert families["run_seconds"].get("run_seconds_count", workflow="kept") == 1
    assert families["nodes_total"].get("nodes_total", node_type="gone") == 1
    # Callback values belong to whoever computes them: they are not "kept" here.
    assert families["live"].get("live", workflow="gone") == 1
    assert registry.forget("workflow", "gone") == 0
    assert registry.forget("no_such_label", "kept") == 0
    # A forgotten series starts again from zero when recorded again.
    runs.inc(workflow="gone", status="succeeded")
    assert runs.value(workflow="gone", status="failed") == 0
    assert runs.value(workflow="gone", status="succeeded") == 1
