"""debug.log: shows what reaches it, as Info events and in the server log."""

from __future__ import annotations

import logging
from typing import Any

from .api import NodeContext, NodeType, Port

log = logging.getLogger("flowengine.nodes.debug")


def _log(ctx: NodeContext) -> dict[str, Any]:
    message = ctx.inputs.get("message")
    if message is not None:
        text = message.to_text()
        ctx.info(text)
        log.info("[%s] %s", ctx.node_id, text)
    for name, value in ctx.inputs.items():
        if name != "message":
            text = value.to_text()
            ctx.info(f"{name}: {text}", port=name)
            log.info("[%s] %s: %s", ctx.node_id, name, text)
    return {"message": message} if message is not None else {}


DEBUG_LOG = NodeType(
    type="debug.log",
    description="Logs its inputs (message first) as Info events and to the server log",
    category="debug",
    run=_log,
    inputs=(Port("message", "The value to log"),),
    outputs=(Port("message", "The message, passed through"),),
    any_inputs=True,
    main_output="message",
)

NODE_TYPES = [DEBUG_LOG]
