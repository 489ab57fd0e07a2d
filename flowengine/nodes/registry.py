"""The set of node types a server knows: built-ins, plugins, and the ones switched off."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

from ..errors import ValidationError
from .api import NodeType

__all__ = ["NodeRegistry", "PluginError", "ENTRY_POINT_GROUP", "UPSTREAM_ONLY"]

ENTRY_POINT_GROUP = "flowengine.nodes"

log = logging.getLogger("flowengine.nodes")


# Node types of the upstream Rust server that flowengine does not provide: each needs a service
# outside this process. Workflows written for upstream use them, so refusing one says what it
# is and what it would take, rather than just "unknown". The README lists the same table.
UPSTREAM_ONLY: dict[str, str] = {
    "api.call": "runs a Python script with pip packages inside a Zypi (Firecracker microVM) sandbox"
    " and needs the Zypi service",
    "docker.run": "runs a Docker container and needs a Docker daemon",
    "zypi.exec": "runs a command inside a Zypi (Firecracker microVM) sandbox and needs the Zypi service",
    "browser.render": "renders HTML or a URL in a headless Chromium browser inside a Zypi sandbox"
    " and needs a browser and the Zypi service",
}
UPSTREAM_ONLY_HELP = (
    "flowengine does not provide it (README: 'Upstream node types flowengine does not provide');"
    " a plugin can register a node type of that name"
)


class PluginError(RuntimeError):
    """A plugin could not be loaded; the message says which and why."""


class NodeRegistry:
    """Node types by name. Disabled types are remembered so errors can say how to enable them."""

    def __init__(self) -> None:
        self._types: dict[str, NodeType] = {}
        self._disabled: dict[str, str] = {}

    def register(self, node_type: NodeType) -> None:
        if not isinstance(node_type, NodeType):
            raise TypeError(f"expected a NodeType, got {type(node_type).__name__}")
        if node_type.type in self._types:
            raise ValueError(f"node type {node_type.type!r} is already registered")
        if node_type.type in self._disabled:
            # A plugin must not bring back, under the same name, a type the operator switched off.
            raise ValueError(f"node type {node_type.type!r} is a built-in that is switched off here")
        self._types[node_type.type] = node_type

    def disable(self, name: str, how_to_enable: str) -> None:
        self._types.pop(name, None)
        self._disabled[name] = how_to_enable

    def get(self, name: str) -> NodeType | None:
        return self._types.get(name)

    def require(self, name: str, path: str) -> NodeType:
        """The node type called ``name``, or a ValidationError that says what exists."""
        node_type = self._types.get(name)
        if node_type is not None:
            return node_type
        if name in self._disabled:
            raise ValidationError(f"{path}: node type {name!r} is disabled; {self._disabled[name]}")
        if name in UPSTREAM_ONLY:
            raise ValidationError(f"{path}: node type {name!r} {UPSTREAM_ONLY[name]}; {UPSTREAM_ONLY_HELP}")
        raise ValidationError(f"{path}: unknown node type {name!r} (known: {', '.join(self.names())})")

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: str) -> bool:
        return name in self._types

    def describe(self) -> list[dict[str, Any]]:
        return [self._types[name].describe() for name in self.names()]

    def load_plugin(self, plugin: Any, origin: str) -> None:
        """Register what a plugin offers: a NodeType, an iterable of them, a ``register(registry)``
        callable, or a module with ``register`` or ``NODE_TYPES``."""
        try:
            if isinstance(plugin, NodeType):
                self.register(plugin)
            elif hasattr(plugin, "register") and callable(plugin.register):
                plugin.register(self)
            elif hasattr(plugin, "NODE_TYPES"):
                for node_type in plugin.NODE_TYPES:
                    self.register(node_type)
            elif callable(plugin):
                plugin(self)
            elif isinstance(plugin, Iterable):
                for node_type in plugin:
                    self.register(node_type)
            else:
                raise TypeError("offers no NodeType, NODE_TYPES or register(registry)")
        except (TypeError, ValueError) as exc:
            raise PluginError(f"plugin {origin}: {exc}") from exc
        log.info("loaded node plugin %s", origin)

    def load_plugins(self, modules: Iterable[str], *, use_entry_points: bool = True) -> None:
        """Load the ``flowengine.nodes`` entry points, then each named module."""
        if use_entry_points:
            for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    loaded = entry_point.load()
                except Exception as exc:  # a broken third-party package must say which one
                    raise PluginError(f"plugin entry point {entry_point.name!r}: {exc}") from exc
                self.load_plugin(loaded, f"entry point {entry_point.name!r}")
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # ImportError, or the module's own code failing
                raise PluginError(
                    f"plugin module {module_name!r} cannot be imported: {type(exc).__name__}: {exc}"
                ) from exc
            self.load_plugin(module, f"module {module_name!r}")
