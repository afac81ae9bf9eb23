"""Which free robot takes which task.

The customer's rule is "the free robot nearest to the shelf's storage cell". Taken one
task at a time that rule is greedy, and greedy can send the one robot that is near two
shelves to the wrong one; with several tasks open at once an optimal assignment
(minimum total travel, OR-Tools' linear sum assignment) serves all of them sooner. Both
are here, so that benchmarks can compare them. Battery counts: a robot below the
critical level takes no task, and a low battery makes a robot look farther away, so the
fuller robot wins a near tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from maps.model import Cell

Distance = Callable[[Cell, Cell], float]

#: Seconds of travel one unit of missing charge (0..1) is worth when choosing a robot.
BATTERY_PENALTY_S = 60.0


@dataclass(frozen=True)
class FreeRobot:
    robot_id: str
    cell: Cell
    charge: float  # 0..1


@dataclass(frozen=True)
class OpenTask:
    task_id: str
    cell: Cell  # where the robot must go first (the shelf's cell)
    priority: int = 0


def _cost(robot: FreeRobot, task: OpenTask, distance: Distance) -> float:
    return distance(robot.cell, task.cell) + BATTERY_PENALTY_S * (1.0 - robot.charge)


def assign_robots(tasks: Sequence[OpenTask], robots: Sequence[FreeRobot], distance: Distance,
                  critical: float = 0.1, optimal: bool = True) -> dict[str, str]:
    """task id -> robot id for as many tasks as there are able robots.

    When tasks outnumber robots the most urgent tasks (priority, then the order given)
    are served; unreachable pairs (infinite distance) are never assigned.
    """
    able = [r for r in robots if r.charge > critical]
    ranked = sorted(range(len(tasks)), key=lambda i: (-tasks[i].priority, i))
    chosen = [tasks[i] for i in ranked[: len(able)]]
    if not chosen:
        return {}
    costs = [[_cost(r, t, distance) for r in able] for t in chosen]
    if not optimal:
        return _greedy(chosen, able, costs)
    return _optimal(chosen, able, costs)


def _greedy(tasks: Sequence[OpenTask], robots: Sequence[FreeRobot], costs: list[list[float]]) -> dict[str, str]:
    taken: set[int] = set()
    out: dict[str, str] = {}
    for i, task in enumerate(tasks):
        options = [(costs[i][j], robots[j].robot_id, j) for j in range(len(robots)) if j not in taken]
        best = min(options, default=None)
        if best is not None and best[0] != float("inf"):
            taken.add(best[2])
            out[task.task_id] = best[1]
    return out


def _optimal(tasks: Sequence[OpenTask], robots: Sequence[FreeRobot], costs: list[list[float]]) -> dict[str, str]:
    from ortools.graph.python import linear_sum_assignment

    solver = linear_sum_assignment.SimpleLinearSumAssignment()
    arcs = 0
    for i in range(len(tasks)):
        for j in range(len(robots)):
            if costs[i][j] != float("inf"):
                # integer costs: centiseconds keep the order of travel times
                solver.add_arc_with_cost(i, j, int(round(costs[i][j] * 100)))
                arcs += 1
    if arcs and solver.solve() == solver.OPTIMAL:
        return {tasks[i].task_id: robots[solver.right_mate(i)].robot_id for i in range(len(tasks))}
    # No perfect assignment (some task reachable by no spare robot): fall back to greedy.
    return _greedy(tasks, robots, costs)
