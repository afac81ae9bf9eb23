"""The rules of section 6.6 an order's node/edge graph must follow beyond its schema.

A schema-valid order can still be nonsense: edges that do not join consecutive nodes, a
released edge after the horizon began, sequence ids that skip. The vehicle side rejects
such an order with a validationError, and the master checks its own orders with the same
function, so both sides apply one reading of the specification.
"""

from __future__ import annotations

from collections import Counter

from drivers.vda5050.messages import Order


def graph_problems(order: Order) -> list[str]:
    """Every way the order breaks the graph rules, in words; empty if it is sound."""
    nodes, edges = order.nodes, order.edges
    if not nodes:
        return ["an order needs at least one node"]
    problems = []
    if len(edges) != len(nodes) - 1:
        problems.append(f"{len(nodes)} nodes need {len(nodes) - 1} edges, not {len(edges)}")
    if not nodes[0].released:
        problems.append(f"first node {nodes[0].node_id!r} is not released")
    first = nodes[0].sequence_id
    for i, node in enumerate(nodes):
        if node.sequence_id != first + 2 * i:
            problems.append(f"node {i} ({node.node_id!r}) has sequenceId {node.sequence_id}, "
                            f"expected {first + 2 * i}")
    for i, edge in enumerate(edges[: len(nodes) - 1]):
        start, end = nodes[i], nodes[i + 1]
        if (edge.start_node_id, edge.end_node_id) != (start.node_id, end.node_id):
            problems.append(f"edge {i} ({edge.edge_id!r}) joins {edge.start_node_id!r}->{edge.end_node_id!r}, "
                            f"not {start.node_id!r}->{end.node_id!r}")
        if edge.sequence_id != first + 2 * i + 1:
            problems.append(f"edge {i} ({edge.edge_id!r}) has sequenceId {edge.sequence_id}, "
                            f"expected {first + 2 * i + 1}")
        if edge.released and not (start.released and end.released):
            problems.append(f"edge {i} ({edge.edge_id!r}) is released but a node it joins is not")
    for label, items in (("node", nodes), ("edge", edges)):
        released = [item.released for item in items]
        if False in released and True in released[released.index(False):]:
            problems.append(f"a released {label} follows an unreleased one (the base must come first)")
    action_ids = Counter(a.action_id for item in [*nodes, *edges] for a in item.actions)
    repeated = sorted(action_id for action_id, count in action_ids.items() if count > 1)
    if repeated:
        problems.append(f"actionId used more than once: {', '.join(repeated)}")
    return problems
