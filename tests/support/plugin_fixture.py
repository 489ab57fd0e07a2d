"""A node plugin used by tests/nodes/test_plugins.py, loaded by its module name `support.plugin_fixture`
through FLOWENGINE_PLUGINS and through an entry point.

It offers ``fixture.repeat`` through ``register(registry)``, with an async body that emits an
event, so both the plugin loading and the node API are exercised as a third party uses them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowengine.nodes import ConfigKey, NodeContext, NodeError, NodeRegistry, NodeType, Port


async def _repeat(ctx: NodeContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    text = ctx.require("text")
    times = ctx.setting("times")
    if times < 0:
        raise NodeError(f"times must not be negative, got {times}")
    ctx.info(f"repeating {times} times")
    return {"text": ctx.setting("separator").join([text] * int(times)), "length": len(text) * int(times)}


REPEAT = NodeType(
    type="fixture.repeat",
    description="Repeats text",
    category="fixture",
    run=_repeat,
    inputs=(Port("text", "What to repeat", required=True, type="String"),),
    outputs=(Port("text", "The repeated text", type="String"), Port("length", "Characters", type="Number")),
    config=(
        ConfigKey("times", "Number", 2, "How many times"),
        ConfigKey("separator", "String", "", "Between repetitions", choices=("", " ", "-")),
    ),
)


def register(registry: NodeRegistry) -> None:
    registry.register(REPEAT)
