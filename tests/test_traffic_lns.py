"""Large neighbourhood search (fleet/traffic/lns.py): the refined plan keeps the floor's
rules, never costs more than the first one, and improves a plan that is worse than it
needs to be. Every plan is replayed by the independent checker."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.traffic.checker import check_paths
from fleet.traffic.grid import Grid
from fleet.traffic.lacam import solve
from fleet.traffic.lns import LEAST_WEIGHT, LargeNeighbourhoodSearch, configurations, refine
from fleet.traffic.scenario import _executed, _sum_of_costs, run_mapf
from maps.model import Cell
from traffic_kit import floor

AISLES = floor(
    "...........",
    ".###.###.#.",
    "...........",
    ".###.###.#.",
    "...........",
)
SQUARE = floor("...", "...")


def _after(calls: int):
    """An out_of_time that ends the search after a fixed number of checks: reproducible
    on any machine, unlike a clock."""
    left = [calls]

    def out_of_time() -> bool:
        left[0] -= 1
        return left[0] < 0

    return out_of_time


def _rotations(configs: np.ndarray) -> int:
    """Steps in which robots move round a closed chain, each entering the cell the next
    one leaves (legal in unit time with following, impossible on a real floor)."""
    found = 0
    for before, after in zip(configs[:-1], configs[1:]):
        standing = {int(c): i for i, c in enumerate(before)}
        for first in range(len(before)):
            robot, seen = first, set()
            while robot not in seen and before[robot] != after[robot]:
                seen.add(robot)
                robot = standing.get(int(after[robot]), -1)
                if robot < 0:
                    break
            found += robot == first and len(seen) > 1
    return found


def _checked(wmap, grid: Grid, configs: np.ndarray, following: bool) -> None:
    xy = np.stack((configs % grid.width, configs // grid.width), axis=-1)
    conflicts = check_paths(wmap, xy, following_allowed=following)
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0, conflicts
    assert _rotations(configs) == 0


@pytest.mark.parametrize("following", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_refined_plan_never_conflicts_and_never_costs_more(following, seed):
    grid = Grid.from_map(AISLES, lane_penalty=1, street_penalty=1)
    rng = np.random.default_rng(seed)
    cells = rng.permutation(grid.free_cells())
    starts, goals = cells[:14].tolist(), cells[14:28].tolist()
    result = solve(grid, starts, goals, out_of_time=lambda: False, following=True, seed=seed)
    assert result.solved
    first = np.array(result.paths if following else _executed(grid, result.paths))
    refined = refine(grid, goals, first, _after(300), following, seed)
    configs = configurations(refined.paths)
    assert configs[0].tolist() == starts and configs[-1].tolist() == goals
    _checked(AISLES, grid, configs, following)
    assert refined.sum_of_costs == _sum_of_costs(configs, goals) <= _sum_of_costs(first, goals)
    assert refined.iterations > 0


def _square_by_hand(grid: Grid) -> tuple[list[int], list[int], np.ndarray]:
    """Four robots on a 2 x 2 square, each to the next cell clockwise, beside two free
    cells; solved by hand one robot at a time (sum of costs 15). Moving all four round
    at once (cost 4) is a rotation, forbidden; with following allowed a chain through
    the free cell costs 6."""
    a, b, c, d, e, f = (grid.index(Cell(x, y)) for x, y in ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1)))
    steps = [
        (a, b, d, c),
        (a, e, d, c),  # robot 1 steps aside
        (b, e, d, c),
        (b, e, d, a),
        (b, e, c, a),
        (b, f, c, a),
        (b, d, c, a),
    ]
    return list(steps[0]), list(steps[-1]), np.array(steps)


@pytest.mark.parametrize("following", [False, True])
def test_a_needlessly_slow_plan_is_improved_without_a_rotation(following):
    grid = Grid.from_map(SQUARE, lane_penalty=1, street_penalty=1)
    starts, goals, by_hand = _square_by_hand(grid)
    _checked(SQUARE, grid, by_hand, following)
    assert _sum_of_costs(by_hand, goals) == 15
    refined = refine(grid, goals, by_hand, _after(200), following)
    configs = configurations(refined.paths)
    _checked(SQUARE, grid, configs, following)
    assert refined.improvements > 0
    assert 4 < refined.sum_of_costs < 15
    if following:
        assert refined.sum_of_costs == 6  # the chain through the free cell


def test_run_mapf_reports_the_first_and_the_refined_plan():
    starts = [Cell(0, 0), Cell(10, 0), Cell(0, 4), Cell(10, 4), Cell(4, 2), Cell(6, 2)]
    goals = [Cell(10, 4), Cell(0, 4), Cell(10, 0), Cell(0, 0), Cell(6, 2), Cell(4, 2)]
    report = run_mapf(AISLES, starts, goals, time_limit=1.0)
    assert report["solved"] and report["collisions"] == 0 and report["collisions_first"] == 0
    assert report["lower_bound"] <= report["sum_of_costs"] <= report["sum_of_costs_first"]
    assert report["ratio_first"] == pytest.approx(report["sum_of_costs_first"] / report["lower_bound"], abs=1e-3)
    assert report["sum_of_costs"] < report["sum_of_costs_first"]  # 142 -> 68 when written
    assert report["refine_improvements"] > 0
    assert report["first_solution_ms"] + report["refine_ms"] < 1000 + 200  # the time limit holds, give or take a step


RING = floor(
    ".......",
    ".##.##.",
    ".......",
)


def _plan(grid: Grid, *cells: tuple[int, int]) -> np.ndarray:
    return np.array([grid.index(Cell(x, y)) for x, y in cells])


@pytest.mark.parametrize("seed", [0, 1])  # seed 1 would draw the crosser first
def test_a_robot_kept_off_its_goal_by_a_late_crosser_is_replanned_first_with_the_crosser(seed):
    """Robot 0 waits below its goal (3, 0) until robot 1, which idled at its start, has
    driven over it along the top aisle (at step 13). The rule that reads the goal's own
    timeline must pick both, robot 0 first: resting on its goal from step 2 on sends
    robot 1 round the bottom aisle, and the plan costs 12 instead of 31. (On a floor this
    small the delayed rule's walks meet robot 1 too; on 110-cell aisles they rarely do.)"""
    grid = Grid.from_map(RING, lane_penalty=1, street_penalty=1)
    crosser = [(0, 0)] * 11 + [(x, 0) for x in range(1, 7)]  # on (3, 0) at step 13
    kept_off = [(3, 2)] * 14 + [(3, 1), (3, 0)]  # may enter (3, 0) two steps after the crosser
    paths = [_plan(grid, *kept_off), _plan(grid, *crosser)]
    goals = [grid.index(Cell(3, 0)), grid.index(Cell(6, 0))]
    _checked(RING, grid, configurations(paths), following=False)
    search = LargeNeighbourhoodSearch(grid, goals, paths, seed=seed)
    assert search.sum_of_costs == 15 + 16
    group, lead = search._over_goal()
    assert (group, lead) == ([0, 1], True)
    assert search._replan(group, lead) == 31 - 12
    assert search.costs.tolist() == [2, 10]
    _checked(RING, grid, configurations(search.paths), following=False)
    assert search._over_goal() == ([], False)  # nobody is kept off a goal any more


def test_a_rule_that_finds_no_neighbourhood_loses_its_weight():
    """Otherwise it keeps the weight it started with while the others' fall as their
    gains dry up, and is drawn nearly every time to find nothing (the goal rule at 100
    robots with following: a tenth of the neighbourhoods in 30 s)."""
    grid = Grid.from_map(AISLES, lane_penalty=1, street_penalty=1)
    cells = np.random.default_rng(0).permutation(grid.free_cells())
    starts, goals = cells[:14].tolist(), cells[14:28].tolist()
    first = np.array(_executed(grid, solve(grid, starts, goals, lambda: False, following=True).paths)).T
    search = LargeNeighbourhoodSearch(grid, goals, first)
    search._rules = (search._at_random, lambda: ([], False))
    search.weights = [1.0, 1.0]
    search.run(_after(1000))
    assert search.weights[1] == LEAST_WEIGHT
