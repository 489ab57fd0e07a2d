"""Control nodes: if/else branching and merging branches back together."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NodeError
from ..values import Value, json_kind
from .api import ALL_OUTPUTS, ConfigKey, NodeContext, NodeType, Port


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (as it is in Python), ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """gt/gte/lt/lte: numbers with numbers, strings with strings; anything else is an error
    rather than Python's idea of an order (``True > 0``)."""

    def check(value: Any, other: Any) -> bool:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (value, other))
        strings = isinstance(value, str) and isinstance(other, str)
        if not (numbers or strings):
            raise TypeError("ordering needs two numbers or two strings")
        return compare(value, other)

    return check


def _as_json(value: Any) -> str:
    """A value as the user wrote it (JSON: null, true, "text"), for messages."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _contains(value: Any, compare: Any) -> bool:
    if isinstance(value, str):
        return isinstance(compare, str) and compare in value
    if isinstance(value, list):
        return any(_same(item, compare) for item in value)
    if isinstance(value, dict):
        return isinstance(compare, str) and compare in value  # an object contains its keys
    raise TypeError(f"'contains' needs a string, array or object, got {json_kind(value)}")


def _matches(value: Any, pattern: Any) -> bool:
    if value is None:
        return False  # a missing value matches nothing, not the text "None"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return re.search(pattern, text) is not None


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": _same,
    "not_equals": lambda value, compare: not _same(value, compare),
    "gt": _ordered(operator.gt),
    "gte": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "lte": _ordered(operator.le),
    "contains": _contains,
    "matches": _matches,
    "truthy": lambda value, _compare: bool(value),
    "exists": lambda value, _compare: value is not None,
}
OPERATORS = tuple(_COMPARISONS)


def _check_if(config: Mapping[str, Value]) -> None:
    op = config.get("operator")
    compare = config.get("compare")
    if op is not None and op.value == "matches":
        if compare is None or compare.type != "String":
            raise ValueError("operator 'matches' needs a String 'compare' (the regular expression)")
        try:
            re.compile(compare.value)
        except re.error as exc:
            raise ValueError(f"compare: invalid regular expression: {exc}") from None


def _if(ctx: NodeContext) -> dict[str, Any]:
    op = ctx.setting("operator", "truthy")
    value = ctx.inputs.get("value")
    subject = None if value is None or value.type == "Null" else value.to_python()
    compare = ctx.setting("compare")
    if op not in _COMPARISONS:  # registration checks the choices; kept for callers that skip it
        raise NodeError(f"unknown operator {op!r} (known: {', '.join(OPERATORS)})")
    try:
        outcome = bool(_COMPARISONS[op](subject, compare))
    except TypeError as exc:
        raise NodeError(f"cannot apply {op!r} to {_as_json(subject)} and {_as_json(compare)}: {exc}") from None
    # Only the chosen port gets a value, so the nodes on the other branch are skipped.
    return {"true" if outcome else "false": value if value is not None else Value("Null", None)}


def _merge(ctx: NodeContext) -> dict[str, Any]:
    return {"merged": Value("Object", dict(ctx.inputs))}


IF = NodeType(
    type="control.if",
    description="Compares its input and emits it on port 'true' or port 'false' only",
    category="control",
    run=_if,
    inputs=(Port("value", "The value to test"),),
    main_input="value",
    main_output=ALL_OUTPUTS,
    outputs=(
        Port("true", "The value, when the condition holds"),
        Port("false", "The value, when it does not"),
    ),
    config=(
        ConfigKey("operator", "String", "truthy", "How to compare", choices=OPERATORS),
        ConfigKey("compare", "Any", None, "What to compare with (a regex for 'matches')"),
    ),
    check_config=_check_if,
)

MERGE = NodeType(
    type="control.merge",
    description="Waits for its predecessors and outputs the inputs that arrived as one Object",
    category="control",
    run=_merge,
    outputs=(Port("merged", "An Object of the inputs that arrived, by port name", type="Object"),),
    any_inputs=True,
    main_output="merged",
)

NODE_TYPES = [IF, MERGE]
