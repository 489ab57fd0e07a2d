"""Node types: the public node API, the registry, and the built-in library.

Third-party node types use ``NodeType``, ``Port``, ``ConfigKey``, ``NodeContext`` and
``NodeError`` from here, and are loaded from the ``flowengine.nodes`` entry point group or
from modules named in FLOWENGINE_PLUGINS.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import NodeError
from . import control, debug, http_request, shell, timing, transform
from .api import ConfigKey, NodeContext, NodeType, Port
from .registry import ENTRY_POINT_GROUP, NodeRegistry, PluginError

__all__ = [
    "ConfigKey",
    "ENTRY_POINT_GROUP",
    "NodeContext",
    "NodeError",
    "NodeRegistry",
    "NodeType",
    "PluginError",
    "Port",
    "builtin_registry",
]

_BUILTIN_MODULES = (debug, http_request, transform, timing, control)


def builtin_registry(
    *, enable_shell: bool = False, plugins: Iterable[str] = (), use_entry_points: bool = True
) -> NodeRegistry:
    """A registry with the built-in node types, shell.exec if enabled, and the plugins."""
    registry = NodeRegistry()
    for module in _BUILTIN_MODULES:
        for node_type in module.NODE_TYPES:
            registry.register(node_type)
    if enable_shell:
        registry.register(shell.SHELL_EXEC)
    else:
        registry.disable(shell.SHELL_EXEC.type, shell.HOW_TO_ENABLE)
    registry.load_plugins(plugins, use_entry_points=use_entry_points)
    return registry
