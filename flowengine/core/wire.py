"""Every piece of hand-built JSON text: the fields of the events every execution publishes and
the execute response, put together from parts that are already JSON (node outputs are encoded
once and reused). Building text directly costs a fraction of a dict and an encoder pass, and it
keeps the scheduler free of JSON syntax. Each builder's output is exactly what ``json.dumps``
with compact separators would give for the same data (tests compare them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .events import quote, serialise, utf8_safe

if TYPE_CHECKING:
    from .engine import ExecutionResult

__all__ = [
    "durations",
    "execute_response",
    "member",
    "node_completed",
    "node_started",
    "object_of",
    "workflow_completed",
    "workflow_started",
]


def member(name: str, value_json: str) -> str:
    """One object member, ``"name":value``, from a name and a value that is JSON already."""
    return f"{quote(name)}:{value_json}"


def object_of(members: list[str]) -> str:
    return "{" + ",".join(members) + "}"


def workflow_started(trigger_json: str | None) -> str:
    return "" if trigger_json is None else f'"trigger":{trigger_json}'


def durations(duration_us: int) -> str:
    """``duration_ms`` (whole milliseconds, truncated) and ``duration_us`` beside it."""
    return f'"duration_ms":{duration_us // 1000},"duration_us":{duration_us}'


def workflow_completed(success: bool, status: str, duration_us: int) -> str:
    return f'"success":{"true" if success else "false"},"status":"{status}",{durations(duration_us)}'


def node_started(node_id: str, node_type: str) -> str:
    # Node types are plain names (the registry's TYPE_NAME pattern): no escaping needed.
    return f'"node_id":{quote(node_id)},"node_type":"{node_type}"'


def node_completed(node_id: str, outputs_json: str, duration_us: int, attempts: int, cached: bool) -> str:
    fields = f'"node_id":{quote(node_id)},"outputs":{outputs_json},{durations(duration_us)},"attempts":{attempts}'
    return fields + ',"cached":true' if cached else fields


def execute_response(result: ExecutionResult) -> str:
    """The execute response body: the seed fields first, then the rest, ``error`` in front when
    there is one."""
    head = "{" if result.error is None else f'{{"error":{quote(result.error)},'
    text = (
        f'{head}"execution_id":{quote(result.execution_id)},"completed_nodes":{result.completed_nodes},'
        f'"total_nodes":{result.total_nodes},"status":"{result.status}",{durations(result.duration_us)},'
        f'"attempts":{result.attempts},"outputs":{result.outputs_json},"failed_nodes":{_list(result.failed_nodes)},'
        f'"skipped_nodes":{_list(result.skipped_nodes)},"cancelled_nodes":{_list(result.cancelled_nodes)}}}'
    )
    return text if text.isascii() else utf8_safe(text)


def _list(items: list[Any]) -> str:
    return serialise(items) if items else "[]"
