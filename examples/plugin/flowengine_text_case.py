"""An example flowengine plugin: ``text.case`` changes the case of a piece of text.

Everything a node type needs comes from ``flowengine.nodes``: declare the ports and config
keys (the server checks config and connections against them when a workflow is registered),
and write a body that takes a NodeContext and returns ``{output_port: value}``.
"""

from __future__ import annotations

from typing import Any

from flowengine.nodes import ConfigKey, NodeContext, NodeError, NodeType, Port

MODES = ("upper", "lower", "title", "swap")


def change_case(ctx: NodeContext) -> dict[str, Any]:
    # A plain ``def`` runs inline; use ``async def`` for bodies that wait on I/O.
    text = ctx.require("text")  # the input, else config "text", else a NodeError
    if not isinstance(text, str):
        raise NodeError(f"input 'text' must be a String, got {ctx.inputs['text'].type}")
    mode = ctx.setting("mode")  # validated against MODES at registration; default applied
    changed = {"upper": str.upper, "lower": str.lower, "title": str.title, "swap": str.swapcase}[mode](text)
    ctx.info(f"{mode}: {len(text)} characters")  # a NodeEvent of type Info on /api/events
    return {"text": changed}


TEXT_CASE = NodeType(
    type="text.case",
    description="Changes the case of text: upper, lower, title or swap",
    category="text",
    run=change_case,
    inputs=(Port("text", "The text to change", required=True, type="String"),),
    outputs=(Port("text", "The changed text", type="String"),),
    config=(ConfigKey("mode", "String", "upper", "Which case to use", choices=MODES),),
)

# What the server registers from this module.
NODE_TYPES = [TEXT_CASE]
