"""time.delay: waits, then passes its inputs through unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

from .api import ConfigKey, NodeContext, NodeType, check_duration


async def _delay(ctx: NodeContext) -> dict[str, Any]:
    delay_ms = ctx.setting("delay_ms", 1000)
    ctx.info(f"waiting {delay_ms:g} ms")
    if delay_ms > 0:  # 0 waits for nothing: not even a turn of the event loop
        await asyncio.sleep(delay_ms / 1000)  # cancellation interrupts the wait
    return dict(ctx.inputs)


def _check(config: Any) -> None:
    check_duration(config, "delay_ms", minimum=0)


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
