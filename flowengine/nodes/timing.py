"""time.delay: waits, then passes its inputs through unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

from .api import ConfigKey, NodeContext, NodeType


async def _delay(ctx: NodeContext) -> dict[str, Any]:
    delay_ms = ctx.setting("delay_ms", 1000)
    ctx.info(f"waiting {delay_ms:g} ms")
    await asyncio.sleep(delay_ms / 1000)  # cancellation interrupts the wait
    return dict(ctx.inputs)


def _check(config: Any) -> None:
    delay = config.get("delay_ms")
    if delay is not None and delay.value < 0:
        raise ValueError("delay_ms must not be negative")


TIME_DELAY = NodeType(
    type="time.delay",
    description="Waits delay_ms milliseconds, then passes its inputs through unchanged",
    category="time",
    run=_delay,
    config=(ConfigKey("delay_ms", "Number", 1000, "How long to wait, in milliseconds"),),
    any_inputs=True,
    any_outputs=True,
    check_config=_check,
)

NODE_TYPES = [TIME_DELAY]
