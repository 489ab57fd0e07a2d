"""Transform nodes: JSON parse/stringify, templates, path lookups and constants."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from ..errors import NodeError
from ..values import Value, to_value
from .api import ALL_OUTPUTS, ConfigKey, NodeContext, NodeType, Port


def _json_parse(ctx: NodeContext) -> dict[str, Any]:
    text = ctx.require("json")
    if not isinstance(text, (str, bytes)):
        raise NodeError(f"input 'json' must be a String, got {ctx.inputs['json'].type}")
    try:
        return {"parsed": Value("Json", json.loads(text))}
    except ValueError as exc:
        raise NodeError(f"input 'json' is not valid JSON: {exc}") from None


def _json_stringify(ctx: NodeContext) -> dict[str, Any]:
    value = ctx.inputs.get("value")
    payload = None if value is None else value.to_python()
    pretty = ctx.setting("pretty", False)
    try:
        text = json.dumps(payload, indent=2 if pretty else None, ensure_ascii=False)
    except TypeError as exc:  # Bytes have no JSON form
        raise NodeError(f"input 'value' cannot be written as JSON: {exc}") from None
    return {"json": text}


def _placeholders(config: Mapping[str, Value]) -> frozenset[str]:
    template = config.get("template")
    if template is None or template.type != "String":
        return frozenset()
    return frozenset(string.Template(template.value).get_identifiers())


def _check_template(config: Mapping[str, Value]) -> None:
    template = config.get("template")
    if template is not None and not string.Template(template.value).is_valid():
        raise ValueError("template: invalid placeholder syntax (use ${name}, and $$ for a literal $)")


def _template(ctx: NodeContext) -> dict[str, Any]:
    template = string.Template(ctx.setting("template", ""))
    values = {}
    for name in template.get_identifiers():
        value = ctx.inputs.get(name) or ctx.config.get(name)
        if value is None:
            raise NodeError(f"template placeholder '{name}' has no value (connect an input named '{name}')")
        values[name] = value.to_text()
    return {"text": template.substitute(values)}


_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """``items[0].name`` -> ``["items", 0, "name"]``; ValueError when it is not such a path."""
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None or (match.group(0).startswith(".") and position == 0):
            raise ValueError(f"path {path!r} is not valid at character {position + 1}")
        key, index = match.groups()
        steps.append(int(index) if index is not None else key)
        position = match.end()
    if not steps:
        raise ValueError("path must not be empty")
    return steps


def _check_get(config: Mapping[str, Value]) -> None:
    path = config.get("path")
    if path is not None:
        parse_path(path.value)


def _step(current: Any, step: str | int) -> Any:
    """One step down: a key into an object or an index into an array, nothing else (a string
    is a value, not a sequence of characters). LookupError when there is nothing there."""
    if isinstance(step, int):
        if not isinstance(current, list):
            raise LookupError(step)
        return current[step]
    if not isinstance(current, dict):
        raise LookupError(step)
    return current[step]


def _get(ctx: NodeContext) -> dict[str, Any]:
    path = ctx.setting("path")
    if path is None:
        raise NodeError("config 'path' is required")
    current = ctx.require("value")
    walked = ""
    for step in parse_path(path):
        walked += f"[{step}]" if isinstance(step, int) else (f".{step}" if walked else step)
        try:
            current = _step(current, step)
        except LookupError:
            if "default" in ctx.config:
                return {"value": ctx.config["default"]}
            raise NodeError(f"path {path!r}: nothing at {walked!r}") from None
    return {"value": to_value(current)}


def _config_keys(config: Mapping[str, Value]) -> frozenset[str]:
    return frozenset(config)


def _set(ctx: NodeContext) -> dict[str, Any]:
    return dict(ctx.config)


JSON_PARSE = NodeType(
    type="transform.json_parse",
    description="Parses a JSON string",
    category="transform",
    run=_json_parse,
    inputs=(Port("json", "JSON text", required=True, type="String"),),
    outputs=(Port("parsed", "The parsed value", type="Json"),),
    main_input="json",
    main_output="parsed",
)

JSON_STRINGIFY = NodeType(
    type="transform.json_stringify",
    description="Writes a value as JSON text",
    category="transform",
    run=_json_stringify,
    inputs=(Port("value", "The value to write", required=True),),
    outputs=(Port("json", "JSON text", type="String"),),
    main_input="value",
    main_output="json",
    config=(ConfigKey("pretty", "Bool", False, "Indent the JSON"),),
)

TEMPLATE = NodeType(
    type="transform.template",
    description="Fills ${name} placeholders in a template from the inputs of the same name",
    category="transform",
    run=_template,
    outputs=(Port("text", "The filled-in template", type="String"),),
    main_output="text",
    config=(ConfigKey("template", "String", None, "Text with ${name} placeholders", required=True),),
    dynamic_inputs=_placeholders,
    check_config=_check_template,
)

GET = NodeType(
    type="transform.get",
    description="Picks a value out of a structure by path, e.g. items[0].name",
    category="transform",
    run=_get,
    inputs=(Port("value", "The structure to look into", required=True),),
    outputs=(Port("value", "The value at the path"),),
    main_input="value",
    main_output="value",
    config=(
        ConfigKey("path", "String", None, "Path like items[0].name", required=True),
        ConfigKey("default", "Any", None, "Output when the path is missing (else the node fails)"),
    ),
    check_config=_check_get,
)

SET = NodeType(
    type="transform.set",
    description="Outputs each config entry on a port of the same name (constants)",
    category="transform",
    run=_set,
    dynamic_outputs=_config_keys,
    main_output=ALL_OUTPUTS,
)

NODE_TYPES = [JSON_PARSE, JSON_STRINGIFY, TEMPLATE, GET, SET]
