"""The public node API shared by built-in and third-party node types.

A node type declares its ports and config keys and provides a body: an ``async def`` (or, for
quick CPU-only work, a plain ``def`` that the engine runs inline) taking a NodeContext and
returning a mapping of output port name to value (a Value or plain Python).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NodeError
from ..values import Value, to_value

__all__ = [
    "Port",
    "ConfigKey",
    "NodeType",
    "NodeContext",
    "NodeError",
    "VALUE_TYPES",
    "MAX_DURATION_MS",
    "check_duration",
    "ALL_OUTPUTS",
    "UPSTREAM_INPUT",
    "UPSTREAM_OUTPUT",
]

# The port names the upstream SDK's ``Flow >>`` wires on every node type. A type whose ports
# are fixed gives them a meaning with ``main_input`` / ``main_output`` (see NodeType).
UPSTREAM_INPUT = "input"
UPSTREAM_OUTPUT = "output"
# ``main_output`` value meaning: every output the node produced, as one Object.
ALL_OUTPUTS = "*"

# The longest duration (timeouts, delays) a workflow may ask for: about 24.8 days. Larger ones
# overflow the event loop's timers; they are refused when the workflow is registered.
MAX_DURATION_MS = 2**31 - 1


def check_duration(config: Mapping[str, Any], key: str, *, minimum: float) -> None:
    """Raise ValueError unless config ``key`` (if set) is a duration in [minimum, MAX_DURATION_MS]."""
    value = config.get(key)
    if value is None:
        return
    if not minimum <= value.value <= MAX_DURATION_MS:
        raise ValueError(f"{key} must be from {minimum:g} to {MAX_DURATION_MS} ms, got {value.value!r}")

# "Any" accepts every tag; the rest are the value tags of DESIGN.md section 3.
VALUE_TYPES = frozenset(
    {"Any", "Null", "Bool", "Number", "String", "Bytes", "Json", "Array", "Object"}
)
# A Secret resolves to text, so only keys that can hold text, directly or inside, may take one.
SECRET_KEY_TYPES = frozenset({"Any", "String", "Array", "Object"})

# Node type names: "http.request", "acme.send-mail"; no spaces or slashes.
TYPE_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")

log = logging.getLogger("flowengine.nodes")


def _check_unique(type_name: str, kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"node type {type_name!r}: duplicate {kind} {name!r}")
        seen.add(name)


@dataclass(frozen=True)
class Port:
    """An input or output port."""

    name: str
    description: str = ""
    required: bool = False
    type: str = "Any"
    default: Any = None  # a plain Python default for an input port left unset

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "required": self.required,
            "type": self.type,
        }


@dataclass(frozen=True)
class ConfigKey:
    """A config entry a node type understands; checked when a workflow is registered.

    ``secret=True`` lets the entry hold a Secret (``{"type": "Secret", "value": "NAME"}``), as
    the whole value or anywhere inside an Object or Array; the node body sees the resolved text.
    Config keys without it refuse a Secret, so only code that sends a secret where it belongs
    (a header, an environment variable) ever holds one, never code that computes on it.
    """

    name: str
    type: str = "Any"
    default: Any = None
    description: str = ""
    choices: tuple[Any, ...] | None = None
    required: bool = False
    secret: bool = False

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "description": self.description,
            "required": self.required,
        }
        if self.choices is not None:
            described["choices"] = list(self.choices)
        if self.secret:
            described["secret"] = True
        return described


PortNames = Callable[[Mapping[str, Value]], frozenset[str]]


@dataclass
class NodeType:
    """A kind of node. ``run(ctx)`` returns ``{output_port: value}``.

    ``any_inputs`` / ``any_outputs`` accept connections on any port name. ``dynamic_inputs`` /
    ``dynamic_outputs`` derive the port names from the node's config (a template's placeholders,
    a set node's entries). ``check_config`` raises ValueError for config the declarations cannot
    express (an invalid regex, say); its message is reported with the node's path.

    ``main_input`` names the input port a connection to port ``input`` reaches, and
    ``main_output`` the output port a connection from port ``output`` reads (``ALL_OUTPUTS``:
    all of the node's outputs as one Object), for clients that wire ``output`` -> ``input``
    whatever the type (the upstream SDK). They apply only when the type has no port of that
    name and does not accept any name.
    """

    type: str
    description: str
    category: str
    run: Callable[[NodeContext], Any]
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    config: tuple[ConfigKey, ...] = ()
    any_inputs: bool = False
    any_outputs: bool = False
    dynamic_inputs: PortNames | None = None
    dynamic_outputs: PortNames | None = None
    check_config: Callable[[Mapping[str, Value]], None] | None = None
    main_input: str | None = None
    main_output: str | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # Checked here so a plugin author sees the mistake when the plugin loads, not later.
        if not isinstance(self.type, str) or not TYPE_NAME.fullmatch(self.type):
            raise ValueError(f"node type name {self.type!r} must look like 'category.name' ([A-Za-z0-9_.-])")
        if not callable(self.run):
            raise ValueError(f"node type {self.type!r}: run must be a function")
        # A callable object with an ``async def __call__`` counts as async too.
        self.is_async = inspect.iscoroutinefunction(self.run) or inspect.iscoroutinefunction(
            type(self.run).__call__
        )
        self.inputs = tuple(self.inputs)
        self.outputs = tuple(self.outputs)
        self.config = tuple(self.config)
        for kind, ports in (("input", self.inputs), ("output", self.outputs)):
            _check_unique(self.type, kind, [port.name for port in ports])
            for port in ports:
                if port.type not in VALUE_TYPES:
                    raise ValueError(
                        f"node type {self.type!r}: {kind} port {port.name!r} has unknown type {port.type!r}"
                    )
        _check_unique(self.type, "config key", [key.name for key in self.config])
        for key in self.config:
            if key.type not in VALUE_TYPES:
                raise ValueError(f"node type {self.type!r}: config key {key.name!r} has unknown type {key.type!r}")
            if key.secret and key.type not in SECRET_KEY_TYPES:
                raise ValueError(
                    f"node type {self.type!r}: config key {key.name!r} of type {key.type} cannot hold a Secret"
                    f" (secret=True needs type {', '.join(sorted(SECRET_KEY_TYPES))})"
                )
            if key.choices is not None and key.default is not None and key.default not in key.choices:
                raise ValueError(
                    f"node type {self.type!r}: config key {key.name!r} default {key.default!r}"
                    " is not one of its choices"
                )
        if self.main_input is not None and self.main_input not in {port.name for port in self.inputs}:
            raise ValueError(f"node type {self.type!r}: main_input {self.main_input!r} is not one of its inputs")
        if self.main_output is not None and self.main_output not in {port.name for port in self.outputs} | {ALL_OUTPUTS}:
            raise ValueError(f"node type {self.type!r}: main_output {self.main_output!r} is not one of its outputs")

    def port_aliases(self) -> dict[str, str]:
        """What ports ``input`` and ``output`` mean on this type when it has no port of that
        name: {"input": port} and/or {"output": port or ALL_OUTPUTS}."""
        aliases = {}
        if self.main_input is not None:
            aliases[UPSTREAM_INPUT] = self.main_input
        if self.main_output is not None:
            aliases[UPSTREAM_OUTPUT] = self.main_output
        return aliases

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "description": self.description,
            "category": self.category,
            "inputs": [port.describe() for port in self.inputs],
            "outputs": [port.describe() for port in self.outputs],
            "config": [key.describe() for key in self.config],
            "any_inputs": self.any_inputs or self.dynamic_inputs is not None,
            "any_outputs": self.any_outputs or self.dynamic_outputs is not None,
            "port_aliases": self.port_aliases(),
        }


EmitFn = Callable[[str, str, dict[str, Any]], None]  # (node_id, event_type, fields)


class NodeContext:
    """What a node body sees: its inputs and config, events, cancellation, the HTTP session."""

    __slots__ = ("_emit", "attempt", "config", "execution_id", "http", "inputs", "node_id", "node_type")

    def __init__(
        self,
        node_id: str,
        node_type: str,
        execution_id: str,
        inputs: dict[str, Value],
        config: dict[str, Value],
        attempt: int,
        http: Any,
        emit: EmitFn,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.execution_id = execution_id
        self.inputs = inputs
        self.config = config
        self.attempt = attempt
        self.http = http  # the shared aiohttp.ClientSession
        self._emit = emit

    def input(self, name: str, default: Any = None) -> Any:
        """An input's payload as plain Python, or ``default`` when it did not arrive."""
        value = self.inputs.get(name)
        return default if value is None else value.to_python()

    def setting(self, name: str, default: Any = None) -> Any:
        """A config entry's payload as plain Python (declared defaults already applied)."""
        value = self.config.get(name)
        return default if value is None else value.to_python()

    def require(self, name: str) -> Any:
        """An input, else a config entry of the same name; a NodeError naming it if neither."""
        value = self.inputs.get(name) or self.config.get(name)
        if value is None or value.type == "Null":
            raise NodeError(f"missing required input '{name}'")
        return value.to_python()

    # Cancellation: the engine cancels the node's task; awaiting anything honours it.

    def info(self, message: str, **data: Any) -> None:
        self._emit(self.node_id, "Info", {"message": message, **data})

    def warning(self, message: str, **data: Any) -> None:
        self._emit(self.node_id, "Warning", {"message": message, **data})

    def progress(self, percent: float, message: str = "") -> None:
        self._emit(self.node_id, "Progress", {"percent": percent, "message": message})

    def data(self, value: Any, port: str = "output") -> None:
        """Stream a piece of data before the node finishes, as a ``Data`` NodeEvent naming the
        ``port`` it belongs to (the upstream event's fields: ``port``, ``value``)."""
        self._emit(self.node_id, "Data", {"port": str(port), "value": to_value(value).to_json()})

    def stdout(self, line: str) -> None:
        self._emit(self.node_id, "StdoutLine", {"line": line})

    def stderr(self, line: str) -> None:
        self._emit(self.node_id, "StderrLine", {"line": line})
