"""The node/edge graph rules of section 6.6, beyond the schema."""

from __future__ import annotations

import pytest

from drivers.vda5050 import messages as m
from drivers.vda5050.order_graph import graph_problems
from vda5050_samples import order_full, order_minimal


def node(node_id: str, seq: int, released: bool = True, actions: tuple[str, ...] = ()) -> m.Node:
    return m.Node(node_id=node_id, sequence_id=seq, released=released,
                  actions=[m.Action(action_type="beep", action_id=a, blocking_type=m.BlockingType.NONE)
                           for a in actions])


def edge(start: str, end: str, seq: int, released: bool = True) -> m.Edge:
    return m.Edge(edge_id=f"{start}-{end}", sequence_id=seq, released=released,
                  start_node_id=start, end_node_id=end, actions=[])


def order(nodes: list[m.Node], edges: list[m.Edge]) -> m.Order:
    return order_minimal().model_copy(update={"nodes": nodes, "edges": edges})


def test_the_samples_are_sound():
    assert graph_problems(order_minimal()) == []
    assert graph_problems(order_full()) == []


def test_an_update_may_start_at_any_sequence_id():
    update = order([node("b", 6), node("c", 8, released=False)], [edge("b", "c", 7, released=False)])
    assert graph_problems(update) == []


@pytest.mark.parametrize(("nodes", "edges", "expected"), [
    ([], [], "an order needs at least one node"),
    ([node("a", 0), node("b", 2)], [], "2 nodes need 1 edges, not 0"),
    ([node("a", 0, released=False)], [], "first node 'a' is not released"),
    ([node("a", 0), node("b", 4)], [edge("a", "b", 1)], "node 1 ('b') has sequenceId 4, expected 2"),
    ([node("a", 0), node("b", 2)], [edge("a", "b", 3)], "edge 0 ('a-b') has sequenceId 3, expected 1"),
    ([node("a", 0), node("b", 2)], [edge("b", "a", 1)], "edge 0 ('b-a') joins 'b'->'a', not 'a'->'b'"),
    ([node("a", 0), node("b", 2, released=False)], [edge("a", "b", 1)],
     "edge 0 ('a-b') is released but a node it joins is not"),
    ([node("a", 0), node("b", 2, released=False), node("c", 4)],
     [edge("a", "b", 1, released=False), edge("b", "c", 3, released=False)],
     "a released node follows an unreleased one"),
    ([node("a", 0), node("b", 2), node("c", 4)],
     [edge("a", "b", 1, released=False), edge("b", "c", 3)], "a released edge follows an unreleased one"),
    ([node("a", 0, actions=("x",)), node("b", 2, actions=("x",))], [edge("a", "b", 1)],
     "actionId used more than once: x"),
])
def test_each_broken_rule_is_named(nodes, edges, expected):
    problems = graph_problems(order(nodes, edges))
    assert any(expected in problem for problem in problems), problems
