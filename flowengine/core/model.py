"""The workflow document (DESIGN.md section 4) as dataclasses, with hand-written validation.

``parse_workflow`` turns client JSON into a Workflow or raises ValidationError whose message
names the JSON path; ``Workflow.to_json`` gives the document back with defaults filled in.
"""

from __future__ import annotations

import gc
import graphlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from ..nodes.api import ALL_OUTPUTS, MAX_DURATION_MS, UPSTREAM_INPUT, UPSTREAM_OUTPUT, NodeType
from ..nodes.registry import NodeRegistry
from ..values import Value, decode_value, encode_values, json_kind
from .redaction import MIN_SECRET_LENGTH, lookup, secret_env_name, secret_names
from .triggerchecks import TRIGGER_CHECKS

__all__ = [
    "resolve_port",
    "RetryPolicy",
    "Node",
    "Connection",
    "Trigger",
    "Settings",
    "Workflow",
    "ON_ERROR_POLICIES",
    "TRIGGER_TYPES",
    "collector_paused",
    "parse_workflow",
]

WORKFLOW_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ON_ERROR_POLICIES = ("StopWorkflow", "ContinueOnError", "RetryWorkflow")
MAX_ATTEMPTS = 1000  # retry and RetryWorkflow attempts
MAX_BACKOFF_MULTIPLIER = 1000.0
TRIGGER_TYPES = ("Manual", "Cron", "Webhook", "Event")



@dataclass
class RetryPolicy:
    max_attempts: int = 3
    delay_ms: int = 1000
    backoff_multiplier: float = 2.0
    max_delay_ms: int = 60000
    retry_on_timeout: bool = True

    def delay_before_retry(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (0 for the first retry): ``delay_ms *
        backoff_multiplier ** retry_number``, capped at ``max_delay_ms``. Multiplied step by
        step and stopped at the cap, so a large multiplier cannot overflow."""
        delay_ms = float(self.delay_ms)
        for _ in range(retry_number):
            if delay_ms >= self.max_delay_ms:
                break
            delay_ms *= self.backoff_multiplier
        return min(delay_ms, self.max_delay_ms) / 1000.0

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "delay_ms": self.delay_ms,
            "backoff_multiplier": self.backoff_multiplier,
            "max_delay_ms": self.max_delay_ms,
            "retry_on_timeout": self.retry_on_timeout,
        }


@dataclass(slots=True)
class Node:
    id: str
    node_type: str
    name: str
    config: dict[str, Value]
    position: dict[str, Any] | None = None
    retry_policy: RetryPolicy | None = None
    timeout_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node_type": self.node_type,
            "name": self.name,
            "config": encode_values(self.config),
            "position": self.position,
            "retry_policy": self.retry_policy.to_json() if self.retry_policy else None,
            "timeout_ms": self.timeout_ms,
        }


@dataclass(slots=True)
class Connection:
    from_node: str
    from_port: str
    to_node: str
    to_port: str
    # Positions of the two nodes in Workflow.nodes, found while validating, so the plan need not
    # look every id up again.
    from_index: int = field(default=-1, compare=False, repr=False)
    to_index: int = field(default=-1, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "from_node": self.from_node,
            "from_port": self.from_port,
            "to_node": self.to_node,
            "to_port": self.to_port,
        }


@dataclass
class Trigger:
    id: str
    enabled: bool
    trigger_type: dict[str, Any]  # {"type": "Cron", "expression": ...} and so on

    @property
    def type(self) -> str:
        return self.trigger_type["type"]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "enabled": self.enabled, "trigger_type": dict(self.trigger_type)}


@dataclass
class Settings:
    max_execution_time_ms: int | None = None
    max_parallel_nodes: int = 10
    on_error: str = "StopWorkflow"
    retry_workflow_attempts: int = 1  # RetryWorkflow's max_attempts; 1 for the other policies

    def on_error_json(self) -> Any:
        if self.on_error == "RetryWorkflow":
            return {"RetryWorkflow": {"max_attempts": self.retry_workflow_attempts}}
        return self.on_error

    def to_json(self) -> dict[str, Any]:
        return {
            "max_execution_time_ms": self.max_execution_time_ms,
            "max_parallel_nodes": self.max_parallel_nodes,
            "on_error": self.on_error_json(),
        }


@dataclass
class Workflow:
    id: str
    name: str
    # None when the document has none: read back as null, as the upstream server does.
    description: str | None
    nodes: list[Node]
    connections: list[Connection]
    triggers: list[Trigger] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    version: int = 1
    created_at: str | None = None
    updated_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        document = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "nodes": [node.to_json() for node in self.nodes],
            "connections": [connection.to_json() for connection in self.connections],
            "triggers": [trigger.to_json() for trigger in self.triggers],
            "settings": self.settings.to_json(),
            "version": self.version,
        }
        if self.created_at is not None:
            document["created_at"] = self.created_at
            document["updated_at"] = self.updated_at
        return document

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "nodes": len(self.nodes),
            "connections": len(self.connections),
            "version": self.version,
        }


# -- small typed readers: each returns the field or raises with its path ----------------------


def _object(obj: Any, path: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValidationError(f"{path}: expected an object, got {json_kind(obj)}")
    return obj


def _list(obj: Any, path: str) -> list[Any]:
    if not isinstance(obj, list):
        raise ValidationError(f"{path}: expected an array, got {json_kind(obj)}")
    return obj


def _string(obj: Any, path: str, *, non_empty: bool = False) -> str:
    if not isinstance(obj, str):
        raise ValidationError(f"{path}: expected a string, got {json_kind(obj)}")
    if non_empty and not obj.strip():
        raise ValidationError(f"{path}: must not be empty")
    return obj


def _bool(obj: Any, path: str) -> bool:
    if not isinstance(obj, bool):
        raise ValidationError(f"{path}: expected true or false, got {json_kind(obj)}")
    return obj


def _int(obj: Any, path: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(obj, float) and obj.is_integer():
        obj = int(obj)
    if isinstance(obj, float):  # say which number, "got a number" would puzzle
        raise ValidationError(f"{path}: expected an integer, got {obj!r}")
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise ValidationError(f"{path}: expected an integer, got {json_kind(obj)}")
    return _within(obj, path, minimum, maximum)


def _number(obj: Any, path: str, *, minimum: float, maximum: float | None = None) -> float:
    if isinstance(obj, bool) or not isinstance(obj, (int, float)):
        raise ValidationError(f"{path}: expected a number, got {json_kind(obj)}")
    return _within(obj, path, minimum, maximum)


def _within(value: Any, path: str, minimum: float, maximum: float | None) -> Any:
    if value < minimum:
        raise ValidationError(f"{path}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValidationError(f"{path}: must be at most {maximum}, got {value}")
    return value


def _optional(document: dict[str, Any], key: str) -> Any:
    """A field's value; ``null`` counts as not set, as other tools send it."""
    return document.get(key)


# -- parsing ------------------------------------------------------------------------------------


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around building a large acyclic structure.

    Validating or planning a 50,000-node workflow allocates hundreds of thousands of objects
    that all stay alive; the collector would traverse them again and again for nothing (it
    made those steps grow faster than linearly). The work never awaits, so nothing else runs
    while the collector is paused."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_workflow(
    raw: Any,
    registry: NodeRegistry,
    *,
    workflow_id: str | None = None,
    max_nodes: int | None = None,
    max_connections: int | None = None,
) -> Workflow:
    """Validate a workflow document and build the Workflow. ``workflow_id`` (from a PUT URL)
    overrides the document's id; a document without one gets a fresh UUID4."""
    with collector_paused():
        return _parse_workflow(raw, registry, workflow_id, max_nodes, max_connections)


def _parse_workflow(
    raw: Any, registry: NodeRegistry, workflow_id: str | None, max_nodes: int | None, max_connections: int | None
) -> Workflow:
    document = _object(raw, "workflow")
    if workflow_id is None:
        given_id = _optional(document, "id")
        workflow_id = str(uuid.uuid4()) if given_id is None else _string(given_id, "id")
    if not WORKFLOW_ID_PATTERN.fullmatch(workflow_id):
        raise ValidationError(f"id: must match [A-Za-z0-9._:-]{{1,128}}, got {workflow_id!r}")
    if "name" not in document or document["name"] is None:
        raise ValidationError("name: is required")
    name = _string(document["name"], "name", non_empty=True)
    description = _optional(document, "description")
    if description is not None:
        description = _string(description, "description")

    raw_nodes = _optional(document, "nodes")
    raw_nodes = [] if raw_nodes is None else _list(raw_nodes, "nodes")
    if max_nodes is not None and len(raw_nodes) > max_nodes:
        raise ValidationError(
            f"nodes: {len(raw_nodes)} nodes is over the limit of {max_nodes} (FLOWENGINE_MAX_NODES)"
        )
    nodes: list[Node] = []
    node_types: dict[str, NodeType] = {}
    for index, raw_node in enumerate(raw_nodes):
        node, node_type = _parse_node(raw_node, f"nodes[{index}]", registry)
        if node.id in node_types:
            raise ValidationError(f"nodes[{index}].id: duplicate node id {node.id!r}")
        node_types[node.id] = node_type
        nodes.append(node)

    raw_connections = _optional(document, "connections")
    raw_connections = [] if raw_connections is None else _list(raw_connections, "connections")
    if max_connections is not None and len(raw_connections) > max_connections:
        raise ValidationError(
            f"connections: {len(raw_connections)} connections is over the limit of {max_connections}"
            " (FLOWENGINE_MAX_WORKFLOW_CONNECTIONS)"
        )
    positions = {node.id: position for position, node in enumerate(nodes)}
    port_names = _PortNames(nodes)
    connections = [
        _parse_connection(raw_connection, index, positions, node_types, port_names)
        for index, raw_connection in enumerate(raw_connections)
    ]
    _check_acyclic(nodes, connections)

    raw_triggers = _optional(document, "triggers")
    raw_triggers = [] if raw_triggers is None else _list(raw_triggers, "triggers")
    triggers = [_parse_trigger(item, f"triggers[{index}]") for index, item in enumerate(raw_triggers)]
    trigger_ids = set()
    for index, trigger in enumerate(triggers):
        if trigger.id in trigger_ids:
            raise ValidationError(f"triggers[{index}].id: duplicate trigger id {trigger.id!r}")
        trigger_ids.add(trigger.id)

    raw_settings = _optional(document, "settings")
    settings = Settings() if raw_settings is None else _parse_settings(raw_settings, "settings")
    return Workflow(
        id=workflow_id,
        name=name,
        description=description,
        nodes=nodes,
        connections=connections,
        triggers=triggers,
        settings=settings,
    )


def _parse_node(raw: Any, path: str, registry: NodeRegistry) -> tuple[Node, NodeType]:
    document = _object(raw, path)
    if document.get("id") is None:
        raise ValidationError(f"{path}.id: is required")
    node_id = _string(document["id"], f"{path}.id", non_empty=True)
    if document.get("node_type") is None:
        raise ValidationError(f"{path}.node_type: is required")
    type_name = _string(document["node_type"], f"{path}.node_type")
    node_type = registry.require(type_name, f"{path}.node_type")
    name = _optional(document, "name")
    name = node_id if name is None else _string(name, f"{path}.name")

    raw_config = _optional(document, "config")
    raw_config = {} if raw_config is None else _object(raw_config, f"{path}.config")
    config = {
        key: decode_value(item, f"{path}.config.{key}", strict=True, allow_secret=True)
        for key, item in raw_config.items()
    }
    _check_config(config, node_type, f"{path}.config", node_id)

    position = _optional(document, "position")
    if position is not None:
        position = _object(position, f"{path}.position")
    raw_retry = _optional(document, "retry_policy")
    retry_policy = None if raw_retry is None else _parse_retry_policy(raw_retry, f"{path}.retry_policy")
    timeout_ms = _optional(document, "timeout_ms")
    if timeout_ms is not None:
        timeout_ms = _int(timeout_ms, f"{path}.timeout_ms", minimum=1, maximum=MAX_DURATION_MS)
    node = Node(
        id=node_id,
        node_type=type_name,
        name=name,
        config=config,
        position=position,
        retry_policy=retry_policy,
        timeout_ms=timeout_ms,
    )
    return node, node_type


def _check_config(config: dict[str, Value], node_type: NodeType, path: str, node_id: str) -> None:
    declared = {key.name: key for key in node_type.config}
    free_form = node_type.any_inputs or node_type.dynamic_inputs or node_type.dynamic_outputs
    # A config entry named like an input port is that port's fallback value (DESIGN.md 5).
    port_names = {port.name for port in node_type.inputs}
    for name, value in config.items():
        key = declared.get(name)
        if key is None or not key.secret:
            _refuse_secrets(value, f"{path}.{name}", node_type, node_id)
        if key is None:
            if name in port_names or free_form:
                continue
            known = sorted(set(declared) | port_names)
            raise ValidationError(
                f"{path}.{name}: node {node_id!r} ({node_type.type}) has no config key {name!r}"
                f" (known: {', '.join(known) or 'none'})"
            )
        if not _fits(value, key.type):
            raise ValidationError(
                f"{path}.{name}: node {node_id!r} ({node_type.type}) expects {key.type}, got {value.type}"
            )
        if key.choices is not None and value.type != "Secret" and value.value not in key.choices:
            allowed = ", ".join(str(choice) for choice in key.choices)
            raise ValidationError(
                f"{path}.{name}: node {node_id!r} ({node_type.type}): {value.value!r} is not one of {allowed}"
            )
    for name, value in config.items():
        for secret in secret_names(value):
            resolved = lookup(secret)
            if resolved is None:
                raise ValidationError(
                    f"{path}.{name}: secret {secret!r} is not set: define the environment variable"
                    f" {secret_env_name(secret)} on the server"
                )
            if len(resolved) < MIN_SECRET_LENGTH:
                raise ValidationError(
                    f"{path}.{name}: secret {secret!r} is shorter than {MIN_SECRET_LENGTH} characters,"
                    " too short to be masked reliably"
                )
    for key in node_type.config:
        if key.required and key.name not in config:
            raise ValidationError(f"{path}.{key.name}: node {node_id!r} ({node_type.type}) requires it")
    if node_type.check_config is not None:
        try:
            node_type.check_config(config)
        except ValueError as exc:
            raise ValidationError(f"{path}: node {node_id!r} ({node_type.type}): {exc}") from None


def _refuse_secrets(value: Value, path: str, node_type: NodeType, node_id: str) -> None:
    """A Secret may sit only in a config key its node type declares secret-capable: anywhere
    else a node could compute on it (compare it, cut it up, branch on it) and show the result."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item.type == "Secret":
            capable = sorted(key.name for key in node_type.config if key.secret)
            raise ValidationError(
                f"{where}: a Secret is not allowed here: node {node_id!r} ({node_type.type}) takes secrets only in"
                f" its secret-capable config keys ({', '.join(capable) or 'none'})"
            )
        if item.type == "Array":
            stack.extend((child, f"{where}.value[{i}]") for i, child in reversed(list(enumerate(item.value))))
        elif item.type == "Object":
            stack.extend((child, f"{where}.value.{key}") for key, child in reversed(list(item.value.items())))


def _fits(value: Value, wanted: str) -> bool:
    """Whether a config value suits a declared type. Plain JSON objects and arrays arrive as
    Json, and a Secret resolves to a String, so those count too."""
    actual = value.type
    if wanted in ("Any", actual):
        return True
    if actual == "Secret":
        return wanted == "String"
    if actual == "Json":
        return (wanted == "Object" and isinstance(value.value, dict)) or (
            wanted == "Array" and isinstance(value.value, list)
        )
    return False


def _parse_retry_policy(raw: Any, path: str) -> RetryPolicy:
    document = _object(raw, path)
    policy = RetryPolicy()
    readers = {
        "max_attempts": lambda v, p: _int(v, p, minimum=1, maximum=MAX_ATTEMPTS),
        "delay_ms": lambda v, p: _int(v, p, minimum=0, maximum=MAX_DURATION_MS),
        "backoff_multiplier": lambda v, p: _number(v, p, minimum=1.0, maximum=MAX_BACKOFF_MULTIPLIER),
        "max_delay_ms": lambda v, p: _int(v, p, minimum=0, maximum=MAX_DURATION_MS),
        "retry_on_timeout": _bool,
    }
    for key, read in readers.items():
        value = _optional(document, key)
        if value is not None:
            setattr(policy, key, read(value, f"{path}.{key}"))
    return policy


def _parse_connection(
    raw: Any,
    index: int,
    positions: dict[str, int],
    node_types: dict[str, NodeType],
    port_names: _PortNames,
) -> Connection:
    path = f"connections[{index}]"
    document = _object(raw, path)
    fields = {}
    for key in ("from_node", "from_port", "to_node", "to_port"):
        if document.get(key) is None:
            raise ValidationError(f"{path}.{key}: is required")
        fields[key] = _string(document[key], f"{path}.{key}", non_empty=True)
    connection = Connection(fields["from_node"], fields["from_port"], fields["to_node"], fields["to_port"])
    for end, port_end, outputs in (("from_node", "from_port", True), ("to_node", "to_port", False)):
        node_id = fields[end]
        node_type = node_types.get(node_id)
        if node_type is None:
            raise ValidationError(f"{path}.{end}: unknown node {node_id!r}")
        allowed = port_names.of(node_id, node_type, outputs=outputs)
        if allowed is not None and fields[port_end] not in allowed and not _aliased(node_type, fields[port_end], outputs):
            kind = "output" if outputs else "input"
            raise ValidationError(
                f"{path}.{port_end}: node {node_id!r} ({node_type.type}) has no {kind} port"
                f" {fields[port_end]!r} (known: {', '.join(sorted(allowed)) or 'none'})"
            )
    connection.from_index = positions[connection.from_node]
    connection.to_index = positions[connection.to_node]
    return connection


class _PortNames:
    """The port names connections may use, per node; worked out once per node type unless the
    type derives its ports from each node's config."""

    def __init__(self, nodes: list[Node]) -> None:
        self._configs = {node.id: node.config for node in nodes}
        self._by_type: dict[tuple[str, bool], frozenset[str] | None] = {}

    def of(self, node_id: str, node_type: NodeType, *, outputs: bool) -> frozenset[str] | None:
        dynamic = node_type.dynamic_outputs if outputs else node_type.dynamic_inputs
        if dynamic is not None:
            return _port_names(node_type, self._configs[node_id], outputs=outputs)
        key = (node_type.type, outputs)
        if key not in self._by_type:
            self._by_type[key] = _port_names(node_type, {}, outputs=outputs)
        return self._by_type[key]


def _aliased(node_type: NodeType, port: str, outputs: bool) -> bool:
    """Whether ``port`` is ``output`` (``input``) and the type gives that name a meaning."""
    return port == (UPSTREAM_OUTPUT if outputs else UPSTREAM_INPUT) and port in node_type.port_aliases()


def resolve_port(node_type: NodeType, config: dict[str, Value], port: str, *, outputs: bool) -> str | None:
    """The port a connection end really uses: ``port`` itself when the node has a port of that
    name (or accepts any name); else the type's main port for ``input``/``output``; None for
    ``output`` meaning all of the node's outputs as one Object."""
    if not _aliased(node_type, port, outputs):
        return port
    names = _port_names(node_type, config, outputs=outputs)
    if names is None or port in names:
        return port
    target = node_type.port_aliases()[port]
    return None if target == ALL_OUTPUTS else target


def _port_names(node_type: NodeType, config: dict[str, Value], *, outputs: bool) -> frozenset[str] | None:
    """The port names a connection may use, or None when any name is accepted."""
    if outputs:
        if node_type.any_outputs:
            return None
        names = {port.name for port in node_type.outputs}
        if node_type.dynamic_outputs is not None:
            names |= node_type.dynamic_outputs(config)
    else:
        if node_type.any_inputs:
            return None
        names = {port.name for port in node_type.inputs}
        if node_type.dynamic_inputs is not None:
            names |= node_type.dynamic_inputs(config)
    return frozenset(names)


def _check_acyclic(nodes: list[Node], connections: list[Connection]) -> None:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node in nodes:
        sorter.add(node.id)
    for connection in connections:
        sorter.add(connection.to_node, connection.from_node)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise ValidationError(f"connections: cycle: {' -> '.join(cycle)}") from None


def _parse_trigger(raw: Any, path: str) -> Trigger:
    document = _object(raw, path)
    # Accept the bare form {"type": "Webhook", "path": ...} as well as {"trigger_type": {...}}.
    if "trigger_type" in document:
        trigger_type = dict(_object(document["trigger_type"], f"{path}.trigger_type"))
        type_path = f"{path}.trigger_type"
    else:
        trigger_type = {k: v for k, v in document.items() if k not in ("id", "enabled")}
        type_path = path
    kind = trigger_type.get("type")
    if kind is None:
        raise ValidationError(f"{type_path}.type: is required (one of {', '.join(TRIGGER_TYPES)})")
    if kind not in TRIGGER_TYPES:
        raise ValidationError(f"{type_path}.type: unknown trigger type {kind!r} (known: {', '.join(TRIGGER_TYPES)})")
    required_fields = {"Cron": "expression", "Webhook": "path", "Event": "event_type"}
    required = required_fields.get(kind)
    if required is not None:
        if trigger_type.get(required) is None:
            raise ValidationError(f"{type_path}.{required}: is required for a {kind} trigger")
        _string(trigger_type[required], f"{type_path}.{required}", non_empty=True)
    check = TRIGGER_CHECKS.get(kind)
    if check is not None:
        check(trigger_type, type_path)
    trigger_id = _optional(document, "id")
    trigger_id = str(uuid.uuid4()) if trigger_id is None else _string(trigger_id, f"{path}.id", non_empty=True)
    enabled = _optional(document, "enabled")
    enabled = True if enabled is None else _bool(enabled, f"{path}.enabled")
    return Trigger(id=trigger_id, enabled=enabled, trigger_type=trigger_type)


def _parse_settings(raw: Any, path: str) -> Settings:
    document = _object(raw, path)
    settings = Settings()
    limit = _optional(document, "max_execution_time_ms")
    if limit is not None:
        settings.max_execution_time_ms = _int(
            limit, f"{path}.max_execution_time_ms", minimum=1, maximum=MAX_DURATION_MS
        )
    parallel = _optional(document, "max_parallel_nodes")
    if parallel is not None:
        settings.max_parallel_nodes = _int(parallel, f"{path}.max_parallel_nodes", minimum=1)
    on_error = _optional(document, "on_error")
    if on_error is None:
        return settings
    policies = ", ".join(ON_ERROR_POLICIES)
    if isinstance(on_error, str):
        if on_error not in ("StopWorkflow", "ContinueOnError"):
            if on_error == "RetryWorkflow":
                raise ValidationError(
                    f'{path}.on_error: RetryWorkflow needs max_attempts: {{"RetryWorkflow": {{"max_attempts": 3}}}}'
                )
            raise ValidationError(f"{path}.on_error: unknown policy {on_error!r} (known: {policies})")
        settings.on_error = on_error
        return settings
    if isinstance(on_error, dict) and list(on_error) == ["RetryWorkflow"]:
        retry = _object(on_error["RetryWorkflow"], f"{path}.on_error.RetryWorkflow")
        attempts = retry.get("max_attempts")
        if attempts is None:
            raise ValidationError(f"{path}.on_error.RetryWorkflow.max_attempts: is required")
        settings.on_error = "RetryWorkflow"
        settings.retry_workflow_attempts = _int(
            attempts, f"{path}.on_error.RetryWorkflow.max_attempts", minimum=1, maximum=MAX_ATTEMPTS
        )
        return settings
    if isinstance(on_error, dict) and len(on_error) == 1:
        (policy,) = on_error
        raise ValidationError(f"{path}.on_error: unknown policy {policy!r} (known: {policies})")
    raise ValidationError(
        f'{path}.on_error: expected "StopWorkflow", "ContinueOnError" or {{"RetryWorkflow": {{"max_attempts": N}}}}'
    )
