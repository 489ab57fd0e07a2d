"""What ``--workers N`` decides without processes: how the metrics of several workers make one
exposition, how long a slot waits before its worker starts again, and which configurations
are refused."""

from __future__ import annotations

import pytest

from flowengine.config import Config
from flowengine.lib.metrics import Registry, merge_snapshots
from flowengine.server.supervisor import MAX_DELAY, STABLE_AFTER, RestartBackoff, describe_exit, refusal
from flowengine.server.telemetry import Telemetry

from support.exposition import parse_exposition


def _worker(requests: int, running: int, seconds: float, start: float) -> Registry:
    registry = Registry()
    registry.counter("requests_total", "Requests.", ("route",)).inc(requests, route="/health")
    registry.gauge("running", "Running now.").set(running)
    registry.gauge("alive", "Processes alive (the same for all).", combine="max").set(3)
    registry.gauge("started", "Start time.", combine="min").set(start)
    registry.histogram("seconds", "Durations.", buckets=(0.1, 1.0)).observe(seconds)
    return registry


def test_counters_and_histograms_add_up_and_gauges_combine_as_declared():
    merged = merge_snapshots([_worker(5, 2, 0.05, 100.0).snapshot(), _worker(7, 1, 0.5, 90.0).snapshot()])
    families = parse_exposition(Registry.from_snapshot(merged).render())
    assert families["requests_total"].get("requests_total", route="/health") == 12
    assert families["running"].get("running") == 3
    assert families["alive"].get("alive") == 3
    assert families["started"].get("started") == 90
    seconds = families["seconds"]
    assert seconds.get("seconds_bucket", le="0.1") == 1
    assert seconds.get("seconds_bucket", le="1.0") == 2
    assert seconds.get("seconds_count") == 2
    assert seconds.get("seconds_sum") == pytest.approx(0.55)


def test_a_series_only_one_worker_has_is_kept_and_mismatched_buckets_are_left_out():
    one = _worker(1, 0, 0.05, 1.0)
    one.counter("only_here_total", "Only in one worker.").inc(4)
    other = Registry()
    other.histogram("seconds", "Durations.", buckets=(0.5,)).observe(0.2)
    merged = merge_snapshots([one.snapshot(), other.snapshot()])
    families = parse_exposition(Registry.from_snapshot(merged).render())
    assert families["only_here_total"].get("only_here_total") == 4
    assert families["seconds"].get("seconds_count") == 1  # the other worker's series cannot be added


def test_process_gauges_that_are_facts_not_amounts_are_not_summed():
    snapshots = [Telemetry().snapshot(), Telemetry().snapshot()]
    families = parse_exposition(Registry.from_snapshot(merge_snapshots(snapshots)).render())
    (version,) = [value for (_name, _labels), value in families["python_info"].samples.items()]
    assert version == 1
    assert families["process_start_time_seconds"].get("process_start_time_seconds") == pytest.approx(
        parse_exposition(Registry.from_snapshot(snapshots[0]).render())["process_start_time_seconds"].get("process_start_time_seconds")
    )


def test_a_worker_that_keeps_failing_at_start_waits_longer_each_time_and_a_stable_one_not_at_all():
    backoff = RestartBackoff()
    delays = [backoff.delay(0.2) for _ in range(9)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[-1] == MAX_DELAY and all(a <= b for a, b in zip(delays, delays[1:]))
    assert backoff.delay(STABLE_AFTER) == 0
    assert backoff.delay(0.2) == 0.5  # the count starts again after a worker that ran


def test_exit_statuses_are_described_as_a_user_reads_them():
    assert describe_exit(2) == "exited with status 2"
    assert describe_exit(-9) == "was killed by SIGKILL"


def test_only_postgresql_takes_several_workers():
    assert refusal(Config(db="postgresql://db/flow", workers=4)) is None
    assert refusal(Config(db="flowengine.db", workers=1)) is None
    message = refusal(Config(db="flowengine.db", workers=2))
    assert message is not None and "needs a PostgreSQL database" in message and "'flowengine.db'" in message
