"""Benchmark inputs (cell lists, MovingAI scenarios) and the one-shot MAPF benchmark.

Inputs come from files people edit by hand, so every bad line is reported with its file
and line number instead of surfacing as an IndexError deep in the planner.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fleet.traffic.checker import check_paths
from fleet.traffic.execution import execute
from fleet.traffic.grid import Grid, warm_up
from fleet.traffic.lacam import solve
from fleet.traffic.lns import configurations, refine
from fleet.traffic.lns import warm_up as warm_up_refinement
from fleet.traffic.reservations import ReservationTable
from maps.model import Cell, WarehouseMap


class ScenarioError(ValueError):
    """A cell list or scenario file that cannot be used; the message names file and line."""


def read_cells(path: str | Path, wmap: WarehouseMap) -> list[Cell]:
    """`x y` per line (x = column, y = row, 0-based); blank lines and # comments skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read cell list: {exc}") from None
    cells = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
            raise ScenarioError(f"{path}:{number}: expected two integers 'x y', got {line!r}")
        cell = Cell(int(parts[0]), int(parts[1]))
        if not wmap.traversable(cell):
            raise ScenarioError(f"{path}:{number}: cell {cell} is blocked or outside map {wmap.name!r}")
        cells.append(cell)
    if not cells:
        raise ScenarioError(f"{path}: no cells listed")
    return cells


def read_scenario(path: str | Path, wmap: WarehouseMap, agents: int) -> tuple[list[Cell], list[Cell]]:
    """Starts and goals of the first `agents` lines of a MovingAI .scen file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from None
    starts, goals = [], []
    for number, line in enumerate(lines, 1):
        if number == 1 and line.startswith("version"):
            continue
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            sx, sy, gx, gy = (int(f) for f in fields[4:8])
        except (ValueError, IndexError):
            raise ScenarioError(f"{path}:{number}: expected 'bucket map width height sx sy gx gy length'") from None
        for cell in (Cell(sx, sy), Cell(gx, gy)):
            if not wmap.traversable(cell):
                raise ScenarioError(f"{path}:{number}: cell {cell} is blocked or outside map {wmap.name!r}")
        starts.append(Cell(sx, sy))
        goals.append(Cell(gx, gy))
        if len(starts) == agents:
            return starts, goals
    raise ScenarioError(f"{path}: {agents} agents asked for, the scenario has {len(starts)}")


def run_mapf(wmap: WarehouseMap, starts: list[Cell], goals: list[Cell], time_limit: float,
             following: bool = False, seed: int = 0, lane_penalty: int = 1) -> dict:
    """LaCAM's first solution, then large neighbourhood search (lns.py) improving it for
    the rest of `time_limit`. Both are reported: `first_solution_ms`, `sum_of_costs_first`
    and `ratio_first` for the first, `sum_of_costs`, `ratio`, `makespan` and the checker's
    `collisions` for the final plan.

    Lanes and streets are off by default here: in one-shot runs they cost more than
    they save (measured in docs/traffic.md), unlike in lifelong traffic."""
    began = time.perf_counter()
    warm_up()
    warm_up_refinement()
    warm_up_ms = (time.perf_counter() - began) * 1000
    grid = Grid.from_map(wmap, lane_penalty, street_penalty=lane_penalty)
    s = [grid.index(c) for c in starts]
    g = [grid.index(c) for c in goals]
    began = time.perf_counter()

    def out_of_time() -> bool:
        return time.perf_counter() - began > time_limit

    # Planned with following, executed without: the reservation table holds each robot
    # back until the cell ahead has been left, which costs steps but never a conflict.
    result = solve(grid, s, g, out_of_time, True, seed)
    if result.solved and not following:
        result.paths = _executed(grid, result.paths)
    elapsed_ms = (time.perf_counter() - began) * 1000
    lower_bound = int(sum(grid.distances(goal)[start] for start, goal in zip(s, g)))
    report = {
        "map": wmap.name,
        "agents": len(starts),
        "following": following,
        "solved": result.solved,
        "lower_bound": lower_bound,
        "configurations": result.nodes,
        "jit_load_ms": round(warm_up_ms, 1),
    }
    if not result.solved:
        return report | {"sum_of_costs": None, "ratio": None, "first_solution_ms": None, "collisions": None,
                         "search_ms": round(elapsed_ms, 1)}
    first = np.array(result.paths)  # (steps + 1, robots)
    first_cost = _sum_of_costs(first, g)
    refined = refine(grid, g, first, out_of_time, following, seed)
    refine_ms = (time.perf_counter() - began) * 1000 - elapsed_ms
    paths = configurations(refined.paths)
    cost = _sum_of_costs(paths, g)
    conflicts = check_paths(wmap, _xy(grid, paths), following_allowed=following)
    first_conflicts = check_paths(wmap, _xy(grid, first), following_allowed=following)
    return report | {
        "sum_of_costs": cost,
        "ratio": round(cost / lower_bound, 4) if lower_bound else 1.0,
        "makespan": paths.shape[0] - 1,
        "first_solution_ms": round(elapsed_ms, 1),
        "sum_of_costs_first": first_cost,
        "ratio_first": round(first_cost / lower_bound, 4) if lower_bound else 1.0,
        "makespan_first": first.shape[0] - 1,
        "collisions_first": first_conflicts.collisions,
        "refine_ms": round(refine_ms, 1),
        "refine_iterations": refined.iterations,
        "refine_improvements": refined.improvements,
        "collisions": conflicts.collisions,
        "conflicts": conflicts.as_dict(),
    }


def _sum_of_costs(paths: np.ndarray, goals: list[int]) -> int:
    """A robot's cost is the step after which it never leaves its goal again."""
    away = paths != np.array(goals)
    last_away = np.where(away.any(axis=0), paths.shape[0] - 1 - np.argmax(away[::-1], axis=0), 0)
    return int(np.where(away.any(axis=0), last_away + 1, 0).sum())


def _xy(grid: Grid, paths: np.ndarray) -> np.ndarray:
    return np.stack((paths % grid.width, paths // grid.width), axis=-1)


def _executed(grid: Grid, configs: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The configurations robots pass through when the plan runs through the table."""
    robots = range(len(configs[0]))
    # Each cell converted once, not once per robot and step (a hundred thousand times).
    cell_of = {v: grid.cell(v) for v in set().union(*configs)}
    index_of = {c: v for v, c in cell_of.items()}
    table = ReservationTable({i: cell_of[configs[0][i]] for i in robots})
    table.commit({i: [cell_of[c[i]] for c in configs] for i in robots})
    return [tuple(index_of[step[i]] for i in robots) for step in execute(table)]
