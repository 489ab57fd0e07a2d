"""Control nodes: if/else branching and merging branches back together."""

from __future__ import annotations

import operator
import re
from typing import Any, Callable, Mapping

from ..errors import NodeError
from ..values import Value
from .api import ConfigKey, NodeContext, NodeType, Port


def _contains(value: Any, compare: Any) -> bool:
    if isinstance(value, str):
        return isinstance(compare, str) and compare in value
    if isinstance(value, (list, dict)):
        return compare in value
    raise TypeError(f"'contains' needs a string, array or object, got {type(value).__name__}")


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": operator.eq,
    "not_equals": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "contains": _contains,
    "matches": lambda value, pattern: re.search(pattern, value if isinstance(value, str) else str(value)) is not None,
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
    try:
        outcome = bool(_COMPARISONS[op](subject, compare))
    except TypeError as exc:
        raise NodeError(f"cannot apply {op!r} to {subject!r} and {compare!r}: {exc}") from None
    return {"true" if outcome else "false": value if value is not None else Value("Null", None)}


def _merge(ctx: NodeContext) -> dict[str, Any]:
    return {"merged": Value("Object", dict(ctx.inputs))}


IF = NodeType(
    type="control.if",
    description="Compares its input and emits it on port 'true' or port 'false' only",
    category="control",
    run=_if,
    inputs=(Port("value", "The value to test"),),
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
)

NODE_TYPES = [IF, MERGE]
