"""The same two workflows for flowengine and for n8n, each with the other's built-in nodes.

1. ``set``: a webhook receives a JSON body, one step sets a constant (``x = 1``), the answer is
   sent. flowengine: a Webhook trigger on a one-node ``transform.set`` workflow (the answer is
   the execute response). n8n: Webhook (answer from a node) -> Set -> Respond to Webhook.
2. ``chain``: a webhook, 40 steps that pass their input on unchanged, one after the other, then
   the answer. flowengine: 40 ``time.delay`` nodes with ``delay_ms`` 0 (its built-in
   pass-through; it also reports an Info event per node, so flowengine does a little more).
   n8n: 40 No Operation nodes between Webhook and Respond to Webhook.

Both servers keep their execution history in SQLite (flowengine's default; n8n's default
database, saving every execution by default).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

__all__ = ["CHAIN_STEPS", "SET_PATH", "CHAIN_PATH", "flowengine_set", "flowengine_chain", "n8n_set", "n8n_chain"]

CHAIN_STEPS = 40
SET_PATH = "bench-set"
CHAIN_PATH = "bench-chain"


def flowengine_set() -> dict[str, Any]:
    return {
        "id": "peers-set",
        "name": "webhook, set, answer",
        "nodes": [{"id": "set", "node_type": "transform.set", "config": {"x": {"type": "Number", "value": 1}}}],
        "connections": [],
        "triggers": [{"id": "hook", "trigger_type": {"type": "Webhook", "path": SET_PATH}}],
    }


def flowengine_chain() -> dict[str, Any]:
    ids = [f"step{index}" for index in range(1, CHAIN_STEPS + 1)]
    return {
        "id": "peers-chain",
        "name": f"webhook, {CHAIN_STEPS} pass-through steps, answer",
        "nodes": [{"id": node, "node_type": "time.delay", "config": {"delay_ms": {"type": "Number", "value": 0}}}
                  for node in ids],
        "connections": [{"from_node": a, "from_port": "message", "to_node": b, "to_port": "message"}
                        for a, b in itertools.pairwise(ids)],
        "triggers": [{"id": "hook", "trigger_type": {"type": "Webhook", "path": CHAIN_PATH}}],
    }


def _n8n_node(name: str, node_type: str, version: float, parameters: dict[str, Any], column: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowengine-bench/{name}")), "name": name, "type": node_type,
            "typeVersion": version, "position": [column * 220, 0], "parameters": parameters}


def _n8n_workflow(workflow_id: str, name: str, path: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    webhook = _n8n_node("Webhook", "n8n-nodes-base.webhook", 2,
                        {"httpMethod": "POST", "path": path, "responseMode": "responseNode", "options": {}}, 0)
    webhook["webhookId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowengine-bench/hook/{path}"))
    respond = _n8n_node("Respond", "n8n-nodes-base.respondToWebhook", 1.1,
                        {"respondWith": "firstIncomingItem", "options": {}}, len(steps) + 1)
    nodes = [webhook, *steps, respond]
    connections = {
        source["name"]: {"main": [[{"node": target["name"], "type": "main", "index": 0}]]}
        for source, target in itertools.pairwise(nodes)
    }
    return {"id": workflow_id, "name": name, "active": False, "nodes": nodes, "connections": connections,
            "settings": {"executionOrder": "v1"}, "pinData": {}}


def n8n_set() -> dict[str, Any]:
    assignment = {"id": "x", "name": "x", "value": 1, "type": "number"}
    step = _n8n_node("Set", "n8n-nodes-base.set", 3.4, {"assignments": {"assignments": [assignment]}, "options": {}}, 1)
    return _n8n_workflow("PeersBenchSet001", "webhook, set, answer", SET_PATH, [step])


def n8n_chain() -> dict[str, Any]:
    steps = [_n8n_node(f"Step {index}", "n8n-nodes-base.noOp", 1, {}, index) for index in range(1, CHAIN_STEPS + 1)]
    return _n8n_workflow("PeersBenchChain1", f"webhook, {CHAIN_STEPS} pass-through steps, answer", CHAIN_PATH, steps)
