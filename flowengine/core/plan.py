"""The plan of a workflow version: what the scheduler needs, computed once per version (node
types, incoming connections, successors and predecessor counts as flat rows, root input names,
config defaults, which nodes hold secrets, each node's NodeStarted fields once made), with no
recursion so a 10,000-node chain is as easy as a wide fan-out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..nodes.api import UPSTREAM_INPUT, UPSTREAM_OUTPUT, NodeType
from ..nodes.registry import NodeRegistry
from ..values import Value, to_value
from .model import Node, Workflow, collector_paused, resolve_port
from .redaction import secret_names

__all__ = ["Plan"]


@dataclass
class Plan:
    """What the executor needs, computed once per workflow version."""

    workflow: Workflow
    nodes: list[Node]
    node_types: list[NodeType]
    type_names: list[str]  # node.node_type of each node
    # The graph in compressed rows, so that a 50,000-node plan is a few flat lists rather than
    # 100,000 small ones for the garbage collector to walk: node i's incoming connections are
    # incoming[incoming_start[i]:incoming_start[i + 1]] as (source index, from_port, to_port),
    # with ports named ``output``/``input`` resolved to what they mean on the node's type
    # (from_port None: all of the source's outputs as one Object), its distinct successors successors[successor_start[i]:successor_start[i + 1]].
    incoming_start: list[int]
    incoming: list[tuple[int, str | None, str]]
    successor_start: list[int]
    successors: list[int]
    predecessor_count: list[int]
    roots: list[int]
    sinks: list[int]
    accepted_inputs: list[frozenset[str] | None]  # root input names a node takes; None: all
    base_config: list[dict[str, Value]]  # declared defaults overlaid by the node's config
    has_secrets: list[bool]
    # Each node's NodeStarted fields (the same in every execution of this version), made by the
    # engine when the node first starts: building them all here would cost a 50,000-node plan
    # as much again for nodes that may never start.
    started_fields: list[str | None]

    @classmethod
    def build(cls, workflow: Workflow, registry: NodeRegistry) -> Plan:
        with collector_paused():
            return cls._build(workflow, registry)

    @classmethod
    def _build(cls, workflow: Workflow, registry: NodeRegistry) -> Plan:
        nodes = workflow.nodes
        count = len(nodes)
        connections = workflow.connections
        # Node i's incoming connections, in document order: a counting sort by target.
        incoming_start = _row_starts(count, [connection.to_index for connection in connections])
        incoming: list[Any] = [None] * len(connections)
        place = incoming_start[:-1]
        for connection in connections:
            target = connection.to_index
            from_port, to_port = connection.from_port, connection.to_port
            if from_port == UPSTREAM_OUTPUT or to_port == UPSTREAM_INPUT:
                ends = _resolve_ends(registry, nodes[connection.from_index], from_port, nodes[target], to_port)
                incoming[place[target]] = (connection.from_index, *ends)
            else:
                incoming[place[target]] = (connection.from_index, from_port, to_port)
            place[target] += 1
        # Two connections between the same pair of nodes are one dependency: distinct pairs,
        # kept as one number each (source * count + target) rather than a tuple.
        links = list(dict.fromkeys([connection.from_index * count + connection.to_index for connection in connections]))
        sources = [link // count for link in links]
        successor_start = _row_starts(count, sources)
        successors = [0] * len(links)
        place = successor_start[:-1]
        predecessor_count = [0] * count
        for link, source in zip(links, sources):
            target = link - source * count
            successors[place[source]] = target
            place[source] += 1
            predecessor_count[target] += 1
        # What nodes of one type share (accepted input names, config defaults, whether those
        # hold secrets) is worked out once per type, not once per node: a 50,000-node workflow
        # has a handful of types. One pass over the nodes, since at that size each pass over
        # 50,000 scattered objects costs more in memory traffic than in instructions.
        shared: dict[str, tuple[NodeType, frozenset[str] | None, dict[str, Value], bool]] = {}
        node_types: list[NodeType] = []
        type_names: list[str] = []
        accepted: list[frozenset[str] | None] = []
        base_config: list[dict[str, Value]] = []
        has_secrets: list[bool] = []
        for node in nodes:
            type_name = node.node_type
            known = shared.get(type_name)
            if known is None:
                node_type = registry.get(type_name)
                if node_type is None:
                    raise LookupError(f"node {node.id!r}: node type {type_name!r} is not available")
                defaults = {key.name: to_value(key.default) for key in node_type.config if key.default is not None}
                known = shared[type_name] = (
                    node_type,
                    None if node_type.any_inputs else frozenset(port.name for port in node_type.inputs),
                    defaults,
                    _holds_secrets(defaults),
                )
            node_type, type_accepted, defaults, defaults_secret = known
            node_types.append(node_type)
            type_names.append(type_name)
            if node_type.dynamic_inputs is not None and not node_type.any_inputs:
                names = {port.name for port in node_type.inputs} | node_type.dynamic_inputs(node.config)
                accepted.append(frozenset(names))
            else:
                accepted.append(type_accepted)
            if node.config:
                config = {**defaults, **node.config}
                base_config.append(config)
                has_secrets.append(_holds_secrets(config))
            else:
                base_config.append(defaults)
                has_secrets.append(defaults_secret)
        return cls(
            workflow=workflow,
            nodes=nodes,
            node_types=node_types,
            type_names=type_names,
            incoming_start=incoming_start,
            incoming=incoming,
            successor_start=successor_start,
            successors=successors,
            predecessor_count=predecessor_count,
            roots=[i for i, count in enumerate(predecessor_count) if count == 0],
            sinks=[i for i in range(len(nodes)) if successor_start[i] == successor_start[i + 1]],
            accepted_inputs=accepted,
            base_config=base_config,
            has_secrets=has_secrets,
            started_fields=[None] * count,
        )


def _resolve_ends(registry: NodeRegistry, source: Node, from_port: str, target: Node, to_port: str) -> tuple[str | None, str]:
    """A connection's ports with ``output``/``input`` resolved (model.resolve_port)."""
    source_type, target_type = registry.get(source.node_type), registry.get(target.node_type)
    source_port = from_port if source_type is None else resolve_port(source_type, source.config, from_port, outputs=True)
    if target_type is not None:
        to_port = resolve_port(target_type, target.config, to_port, outputs=False) or to_port
    return source_port, to_port


def _holds_secrets(config: dict[str, Value]) -> bool:
    return any(secret_names(value) for value in config.values())


def _row_starts(count: int, rows: list[int]) -> list[int]:
    """Where each row begins when items are grouped by row (``rows[k]`` is item k's row):
    row i's items go to ``[starts[i]:starts[i + 1]]``. Counting, not sorting: linear, and it
    allocates nothing per item, which at 50,000 nodes matters more than the count of steps."""
    starts = [0] * (count + 1)
    for row in rows:
        starts[row + 1] += 1
    for row in range(count):
        starts[row + 1] += starts[row]
    return starts
