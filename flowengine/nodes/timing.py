"""time.delay: waits, then passes its inputs through unchanged."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .api import ConfigKey, NodeContext, NodeType, check_duration


async def _delay(ctx: NodeContext) -> dict[str, Any]:
    delay_ms = ctx.setting("delay_ms", 1000)
    ctx.info(f"waiting {delay_ms:g} ms")
    if delay_ms > 0:  # 0 waits for nothing: not even a turn of the event loop
        await wait_at_least(delay_ms / 1000)
    return dict(ctx.inputs)


async def wait_at_least(seconds: float) -> None:
    """Sleeps until ``seconds`` have passed on the clock the engine times nodes with.

    An event loop may wake a timer early: uvloop keeps time in whole milliseconds, so a 25 ms
    sleep can end after 24.6 ms. A delay node promises at least its delay, so it sleeps again
    for whatever is left. Cancellation interrupts the wait.
    """
    deadline = time.perf_counter() + seconds
    while seconds > 0:
        await asyncio.sleep(seconds)
        seconds = deadline - time.perf_counter()


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
