"""The SQLite store writes an execution's row in several shapes (one complete INSERT when the
execution ends before its start is committed, else an INSERT then an UPDATE; NULL columns
spelled in the SQL or bound): every shape reads back the same."""

from __future__ import annotations

import itertools

import pytest

from flowengine.core.engine import ExecutionResult, SinkOutputs
from flowengine.runtime.store import Store

TRIGGER = '{"type":"manual","id":null}'
INPUTS = '{"message":{"type":"String","value":"hello"}}'
EVENTS = '[{"type":"WorkflowStarted","seq":1}]'
NODES = '[{"node_id":"n0","node_type":"transform.set","status":"pending"}]'


def _result(execution_id: str, error: str | None) -> ExecutionResult:
    return ExecutionResult(
        execution_id=execution_id,
        workflow_id="wf",
        workflow_version=3,
        status="failed" if error else "succeeded",
        started_at="2026-11-28T12:00:00.000Z",
        finished_at="2026-11-28T12:00:01.000Z",
        duration_us=1_234_567,
        completed_nodes=1,
        total_nodes=1,
        attempts=2,
        sink_outputs=SinkOutputs(None),
        failed_nodes=[],
        skipped_nodes=[],
        cancelled_nodes=[],
        error=error,
        node_types=["transform.set"],
        node_statuses=["succeeded"],
        node_durations_us=[5],
    )


SHAPES = list(itertools.product((None, "an-earlier-id"), (None, "it \ud800 broke"), (None, NODES), (False, True)))


@pytest.mark.parametrize(("retry_of", "error", "nodes", "start_committed_first"), SHAPES)
async def test_every_shape_of_row_reads_back_the_same(tmp_path, retry_of, error, nodes, start_committed_first):
    store = Store(str(tmp_path / "rows.db"))
    await store.open()
    try:
        store.execution_started("e1", "wf", 3, TRIGGER, INPUTS, "2026-11-28T11:59:59.000Z", retry_of)
        if start_committed_first:
            await store.flush()
            running = await store.get_execution("e1")
            assert running is not None
            assert (running["status"], running["retry_of"], running["error"], running["finished_at"]) == (
                "running", retry_of, None, None
            )
        store.execution_finished(_result("e1", error), EVENTS, nodes)
        row = await store.get_execution("e1")
        assert row is not None
        assert {key: row[key] for key in row if key not in ("position", "events")} == {
            "id": "e1",
            "workflow_id": "wf",
            "workflow_version": 3,
            "trigger": TRIGGER,
            "inputs": INPUTS,
            "status": "failed" if error else "succeeded",
            "started_at": "2026-11-28T12:00:00.000Z",
            "finished_at": "2026-11-28T12:00:01.000Z",
            "duration_ms": 1234,
            "duration_us": 1_234_567,
            "error": None if error is None else "it \\ud800 broke",
            "attempts": 2,
            "retry_of": retry_of,
            "nodes": nodes,
        }
        # Counted as finished, so retention removes it when it is the oldest beyond the limit.
        store.execution_started("e2", "wf", 3, TRIGGER, INPUTS, "2026-11-28T12:00:02.000Z", None)
        store.prune_executions(0)
        assert [row["id"] for row in await store.list_executions()] == ["e2"]
    finally:
        await store.close()


async def test_a_large_batch_of_rows_is_written_whole_and_counted_for_retention(tmp_path):
    # 101 executions queued and finished before one commit: the writer groups consecutive
    # INSERTs of one shape into multi-row statements (64 + 32 + 2 + 1 rows here), then a retry
    # and a failure each take another shape; every row must be there, and counted as finished.
    store = Store(str(tmp_path / "batch.db"))
    await store.open()
    try:
        ids = [f"e{index:03d}" for index in range(101)]
        for index, execution_id in enumerate(ids):
            retry_of = ids[0] if index == 99 else None
            store.execution_started(execution_id, "wf", 3, TRIGGER, INPUTS, "2026-11-28T11:59:59.000Z", retry_of)
        for index, execution_id in enumerate(ids):
            store.execution_finished(_result(execution_id, "boom" if index == 100 else None), EVENTS, None)
        rows = await store.list_executions(limit=500)
        assert sorted(row["id"] for row in rows) == ids
        by_id = {row["id"]: row for row in rows}
        assert (by_id["e099"]["retry_of"], by_id["e100"]["status"], by_id["e100"]["error"]) == (ids[0], "failed", "boom")
        assert all(row["status"] == "succeeded" for row in rows if row["id"] != "e100")
        store.prune_executions(30)
        assert sorted(row["id"] for row in await store.list_executions(limit=500)) == ids[-30:]
    finally:
        await store.close()
