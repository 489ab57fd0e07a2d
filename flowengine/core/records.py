"""Per-node records of an execution (GET /api/executions/{id}), folded from its events.

The history stores an execution's events, and its per-node records only when they cannot be
folded back from them (the execution ended before every node had run, so some nodes have no
event): writing both for every execution would cost every execution for records that say
nothing the events do not.
"""

from __future__ import annotations

from typing import Any

__all__ = ["durations_of", "node_records", "with_integer_durations"]


def node_records(events: list[dict[str, Any]], nodes: list[tuple[str, str]] | None) -> list[dict[str, Any]]:
    """Per-node records folded from an execution's events: status, attempts, start time,
    duration, outputs, error, whether the outputs were cached.

    Only the last workflow attempt counts (a NodeEvent with no node_id is RetryWorkflow starting
    the workflow again). ``nodes``, (id, node type) in document order, gives the order and the
    nodes that never started (``pending``); when it is None, the nodes that have events are
    listed in the order they first appear."""
    records: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event.get("type")
        node_id = event.get("node_id")
        if kind == "NodeEvent":
            if node_id is None and "events_dropped" not in event["event"]:
                records.clear()
            continue
        if kind not in _NODE_OUTCOMES:
            continue
        entry = records.get(node_id)  # type: ignore[arg-type]
        if entry is None:
            entry = records[node_id] = _pending(node_id, event.get("node_type"))  # type: ignore[index, arg-type]
        if kind == "NodeStarted":
            entry.update(node_type=event.get("node_type"), status="running", started_at=event.get("timestamp"), attempts=1)
            continue
        duration_ms, duration_us = durations_of(event.get("duration_ms"), event.get("duration_us"))
        entry.update(status=_NODE_OUTCOMES[kind], duration_ms=duration_ms, duration_us=duration_us)
        if "attempts" in event:
            entry["attempts"] = event["attempts"]
        if kind == "NodeCompleted":
            entry.update(outputs=event.get("outputs"), cached=bool(event.get("cached")))
        elif kind == "NodeFailed":
            entry.update(node_type=event.get("node_type"), error=event.get("error"))
            if event.get("cancelled"):
                entry["status"] = "cancelled"
        else:  # NodeSkipped
            entry["node_type"] = event.get("node_type", entry["node_type"])
    if nodes is None:
        return list(records.values())
    listed = [records.pop(node_id) if node_id in records else _pending(node_id, node_type) for node_id, node_type in nodes]
    return listed + list(records.values())


_NODE_OUTCOMES = {"NodeStarted": "running", "NodeCompleted": "succeeded", "NodeFailed": "failed", "NodeSkipped": "skipped"}


def _pending(node_id: str, node_type: str | None) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "node_type": node_type,
        "status": "pending",
        "attempts": 0,
        "started_at": None,
        "duration_ms": None,
        "duration_us": None,
        "outputs": None,
        "error": None,
        "cached": False,
    }


def durations_of(duration_ms: Any, duration_us: Any) -> tuple[int | None, int | None]:
    """Integer ``duration_ms`` and ``duration_us`` from what a record holds. History written
    before durations were integers holds fractional milliseconds (three decimals) and no
    microseconds: the milliseconds are truncated and the microseconds recovered from them."""
    if isinstance(duration_us, int):
        return duration_us // 1000, duration_us
    if not isinstance(duration_ms, (int, float)) or isinstance(duration_ms, bool):
        return None, None
    micro = max(round(duration_ms * 1000), 0)
    return micro // 1000, micro


def with_integer_durations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored per-node records with integer durations (old ones hold fractional milliseconds)."""
    for record in records:
        if "duration_ms" in record:
            record["duration_ms"], record["duration_us"] = durations_of(record["duration_ms"], record.get("duration_us"))
    return records
