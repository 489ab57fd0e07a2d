"""Telemetry: the server's metric set, forgetting deleted workflows, and the process/Python
metrics (flowengine/server/telemetry.py, flowengine/lib/process_metrics.py).

Expositions are read back with the strict parser of support.exposition.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import sys
import time
from types import SimpleNamespace

import pytest

from flowengine.lib.metrics import Registry
from flowengine.lib.process_metrics import register_process_metrics
from flowengine.server.telemetry import Telemetry

from support.exposition import parse_exposition


def result(workflow_id: str, status: str = "succeeded") -> SimpleNamespace:
    """The fields of an ExecutionResult that telemetry reads."""
    return SimpleNamespace(
        workflow_id=workflow_id,
        status=status,
        duration_us=12_000,
        node_types=["debug.log"],
        node_statuses=["succeeded"],
        node_durations_us=[1_000],
    )


def test_forget_workflow_drops_its_series_and_keeps_the_rest():
    telemetry = Telemetry()
    for workflow_id in ("doomed", "doomed", "kept"):
        telemetry.record_execution(result(workflow_id))
    telemetry.record_execution(result("doomed", "failed"))
    before = telemetry.registry.render()
    assert before.count('workflow="doomed"') > 3
    # executions_total x2 statuses, duration histogram x1
    assert telemetry.forget_workflow("doomed") == 3
    after = telemetry.registry.render()
    assert 'workflow="doomed"' not in after
    families = parse_exposition(after)
    assert families["flowengine_executions_total"].get("flowengine_executions_total", workflow="kept", status="succeeded") == 1
    assert families["flowengine_execution_duration_seconds"].get("flowengine_execution_duration_seconds_count", workflow="kept") == 1
    # Node series are by node type, shared by workflows: kept.
    assert families["flowengine_node_executions_total"].get("flowengine_node_executions_total", node_type="debug.log", status="succeeded") == 4


def test_workflow_changed_forgets_only_deletions():
    telemetry = Telemetry()
    telemetry.record_execution(result("w"))
    telemetry.workflow_changed("w", object())  # created or replaced: history stays
    assert 'workflow="w"' in telemetry.registry.render()
    telemetry.workflow_changed("w", None)
    assert 'workflow="w"' not in telemetry.registry.render()


def test_many_create_delete_cycles_leave_no_series():
    telemetry = Telemetry()
    baseline = len(telemetry.registry.render())
    for n in range(300):
        telemetry.record_execution(result(f"wf-{n}"))
        telemetry.workflow_changed(f"wf-{n}", None)
    text = telemetry.registry.render()
    assert "wf-" not in text
    # Node-type series and the process metrics may change size a little; workflows add nothing.
    assert len(text) < baseline + 2000


def test_bus_totals_are_counters_named_total():
    telemetry = Telemetry()
    bus = SimpleNamespace(listeners=[1, 2], published=7, listeners_dropped=1)
    telemetry.watch_bus(bus)  # type: ignore[arg-type]
    families = parse_exposition(telemetry.registry.render())
    assert families["flowengine_events_published_total"].type == "counter"
    assert families["flowengine_events_published_total"].get("flowengine_events_published_total") == 7
    assert families["flowengine_listeners_dropped_total"].type == "counter"
    assert families["flowengine_listeners_dropped_total"].get("flowengine_listeners_dropped_total") == 1
    assert families["flowengine_websocket_listeners"].type == "gauge"
    assert "flowengine_events_published " not in telemetry.registry.render()
    bus.published = 9
    assert parse_exposition(telemetry.registry.render())["flowengine_events_published_total"].get(
        "flowengine_events_published_total") == 9


def test_every_counter_is_named_total():
    telemetry = Telemetry()
    telemetry.watch_bus(SimpleNamespace(listeners=[], published=0, listeners_dropped=0))  # type: ignore[arg-type]
    families = parse_exposition(telemetry.registry.render())
    counters = [name for name, family in families.items() if family.type == "counter"]
    assert counters and all(name.endswith("_total") for name in counters), counters


# ---- process and Python metrics -------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc: Linux only")
def test_process_metrics_from_proc_are_plausible():
    registry = Registry()
    register_process_metrics(registry)
    cpu_before = sum(os.times()[:2])
    families = parse_exposition(registry.render())

    def one(name: str) -> float:
        return families[name].get(name)

    rss, vsize = one("process_resident_memory_bytes"), one("process_virtual_memory_bytes")
    assert 1_000_000 < rss <= vsize
    # The kernel's own figure for this process, read another way: VmRSS in /proc/self/status.
    with open("/proc/self/status") as status:
        vm_rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    assert abs(rss - vm_rss_kb * 1024) < 64 * 1024 * 1024
    start = one("process_start_time_seconds")
    assert start <= time.time()
    assert families["process_start_time_seconds"].type == "gauge"
    # This process is younger than the machine's uptime.
    with open("/proc/uptime") as uptime:
        assert start >= time.time() - float(uptime.read().split()[0]) - 1
    assert families["process_cpu_seconds_total"].type == "counter"
    assert one("process_cpu_seconds_total") >= cpu_before - 0.011
    assert 0 < one("process_open_fds") <= one("process_max_fds")
    import resource

    assert one("process_max_fds") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    opened = [open(os.devnull) for _ in range(5)]
    try:
        more = parse_exposition(registry.render())["process_open_fds"].get("process_open_fds")
        assert more >= one("process_open_fds") + 5
    finally:
        for handle in opened:
            handle.close()


def test_without_proc_memory_and_start_time_are_left_out(tmp_path):
    registry = Registry()
    register_process_metrics(registry, proc=str(tmp_path / "no-proc"))
    families = parse_exposition(registry.render())
    for absent in ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds"):
        assert absent not in families
    # Portable ones stay.
    assert families["process_cpu_seconds_total"].get("process_cpu_seconds_total") > 0
    if sys.platform != "win32":
        assert families["process_max_fds"].get("process_max_fds") > 0


def _fake_proc(root, comm: str, starttime: int, vsize: int, rss_pages: int, btime: int) -> None:
    (root / "self" / "fd").mkdir(parents=True)
    for fd in range(3):
        (root / "self" / "fd" / str(fd)).write_text("")
    # Fields 3..21 are filler; starttime is field 22, vsize 23, rss 24.
    filler = " ".join(["S"] + ["0"] * 18)
    (root / "self" / "stat").write_text(f"1234 ({comm}) {filler} {starttime} {vsize} {rss_pages} 0 0 0\n")
    (root / "stat").write_text(f"cpu  1 2 3\nbtime {btime}\nprocesses 9\n")


def test_proc_stat_is_parsed_past_a_command_name_with_spaces_and_parentheses(tmp_path):
    _fake_proc(tmp_path, "py (worker) 2", starttime=500 * os.sysconf("SC_CLK_TCK"), vsize=123_456_789,
               rss_pages=1000, btime=1_700_000_000)
    registry = Registry()
    register_process_metrics(registry, proc=str(tmp_path))
    families = parse_exposition(registry.render())
    assert families["process_virtual_memory_bytes"].get("process_virtual_memory_bytes") == 123_456_789
    assert families["process_resident_memory_bytes"].get("process_resident_memory_bytes") == 1000 * os.sysconf("SC_PAGESIZE")
    assert families["process_start_time_seconds"].get("process_start_time_seconds") == 1_700_000_500
    assert families["process_open_fds"].get("process_open_fds") == 3
    # A file that cannot be read at scrape time gives NaN, not a failed scrape.
    (tmp_path / "self" / "stat").unlink()
    families = parse_exposition(registry.render())
    assert math.isnan(families["process_resident_memory_bytes"].get("process_resident_memory_bytes"))


def test_python_gc_and_info_metrics_follow_prometheus_client_names():
    registry = Registry()
    register_process_metrics(registry)
    gc.collect()
    stats = gc.get_stats()
    families = parse_exposition(registry.render())
    for name, key in (("python_gc_objects_collected_total", "collected"),
                      ("python_gc_objects_uncollectable_total", "uncollectable"),
                      ("python_gc_collections_total", "collections")):
        assert families[name].type == "counter"
        for generation in range(len(stats)):
            # Read after gc.get_stats(), and these counts only go up.
            assert families[name].get(name, generation=str(generation)) >= stats[generation][key]
    major, minor, patch = platform.python_version_tuple()
    assert families["python_info"].get(
        "python_info", implementation=platform.python_implementation(), major=major, minor=minor,
        patchlevel=patch, version=platform.python_version()) == 1
