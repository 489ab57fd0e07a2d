"""Exceptions shared across modules: what a client did wrong, and why a node failed."""

from __future__ import annotations

__all__ = ["ValidationError", "NodeError"]


class ValidationError(ValueError):
    """Bad client input. The message starts with the JSON path it concerns, e.g.
    ``nodes[2].config.method: ...``, and is sent to the client as a 400."""


class NodeError(Exception):
    """An expected failure inside a node body (bad response, missing input, ...).

    The engine reports its message as the node's error without logging a traceback, unlike
    any other exception a node raises, which is treated as a bug and logged in full.
    """
