"""One-shot planning (every robot to one goal, then stop): LaCAM over PIBT.

PIBT alone can circle forever on a floor with one-wide aisles. LaCAM (Okumura, AAAI
2023) makes it complete: it searches over whole-floor configurations, using PIBT only to
generate the next one, and when a configuration comes back it asks PIBT again with some
robots' moves pinned (the "constraints"), one more robot pinned each time. Every
successor of a configuration is eventually tried, so if a solution exists it is found;
and since PIBT usually heads straight for the goals, the first solution comes after few
configurations. Used here for one-shot jobs and the MAPF benchmark; lifelong traffic
uses planner.LifelongPlanner.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from fleet.traffic.grid import UNREACHABLE, Grid
from fleet.traffic.pibt import PIBT


@dataclass
class _Constraint:
    """Pinned moves along one branch of a configuration's constraint tree."""

    who: tuple[int, ...] = ()
    where: tuple[int, ...] = ()

    def child(self, robot: int, cell: int) -> "_Constraint":
        return _Constraint(self.who + (robot,), self.where + (cell,))


@dataclass
class _Node:
    config: tuple[int, ...]
    parent: "_Node | None"
    priorities: list[float]
    order: list[int]
    tree: deque = field(default_factory=lambda: deque([_Constraint()]))


@dataclass
class OneShotResult:
    solved: bool
    #: configurations from start to goal, one per step (empty if not solved)
    paths: list[tuple[int, ...]]
    nodes: int


def solve(
    grid: Grid,
    starts: Sequence[int],
    goals: Sequence[int],
    out_of_time: Callable[[], bool],
    following: bool = False,
    seed: int = 0,
) -> OneShotResult:
    for i, (s, g) in enumerate(zip(starts, goals)):
        if grid.distances(g)[s] >= UNREACHABLE:
            raise ValueError(f"robot {i}: goal {grid.cell(g)} cannot be reached from {grid.cell(s)}")
    rng = random.Random(seed)
    pibt = PIBT(grid, rotation=False, following=following, seed=seed)
    headings = [0] * len(starts)
    goal_config = tuple(goals)
    tables = [grid.distances(g, guided=True) for g in goals]

    def node(config: tuple[int, ...], parent: _Node | None) -> _Node:
        if parent is None:
            prio = [tables[i][c] / grid.size for i, c in enumerate(config)]
        else:
            prio = [p + 1 if c != goals[i] else p - int(p) for i, (p, c) in enumerate(zip(parent.priorities, config))]
        order = sorted(range(len(config)), key=prio.__getitem__, reverse=True)
        return _Node(config, parent, prio, order)

    root = node(tuple(starts), None)
    stack = [root]
    seen = {root.config: root}
    count = 1
    while stack and not out_of_time():
        top = stack[-1]
        if top.config == goal_config:
            paths = []
            walk: _Node | None = top
            while walk is not None:
                paths.append(walk.config)
                walk = walk.parent
            return OneShotResult(True, paths[::-1], count)
        if not top.tree:
            stack.pop()
            continue
        constraint = top.tree.popleft()
        depth = len(constraint.who)
        if depth < len(starts):
            robot = top.order[depth]
            here = top.config[robot]
            options = [here] + [v for _, v in grid.moves[here]]
            rng.shuffle(options)
            top.tree.extend(constraint.child(robot, v) for v in options)
        result = pibt.step(top.config, headings, goals, top.priorities, dict(zip(constraint.who, constraint.where)))
        if result is None:
            continue
        config = tuple(result[0])
        known = seen.get(config)
        if known is not None:
            stack.append(known)
            continue
        fresh = node(config, top)
        seen[config] = fresh
        stack.append(fresh)
        count += 1
    return OneShotResult(False, [], count)
