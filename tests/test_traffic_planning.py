"""PIBT steps, the lifelong benchmark loop and one-shot LaCAM on small floors, every run
replayed by the independent checker."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.traffic.checker import check_paths
from fleet.traffic.grid import Grid
from fleet.traffic.lacam import solve
from fleet.traffic.lifelong import Waits, run_lifelong
from fleet.traffic.pibt import PIBT
from fleet.traffic.planner import _along_the_ring
from fleet.traffic.scenario import run_mapf
from maps.model import Cell, CellKind, Heading
from traffic_kit import WAREHOUSE, floor


@pytest.mark.parametrize("rotation", [False, True])
def test_lifelong_run_finishes_tasks_without_conflicts(rotation):
    report = run_lifelong(WAREHOUSE, agents=12, steps=150, rotation=rotation, seed=3)
    assert report["collisions"] == 0 and report["conflicts"]["illegal_moves"] == 0
    assert report["tasks_finished"] > 20
    assert report["max_wait_steps"] < 150
    # who waited longest, from when, where and for which goal: where to look in a replay
    longest = report["longest_wait"]
    assert (longest is None) == (report["max_wait_steps"] == 0)
    if longest is not None:
        assert 0 <= longest["robot"] < 12 and longest["cell"] != longest["goal"]
        assert 0 <= longest["since_step"] and longest["since_step"] + report["max_wait_steps"] <= 150
        assert all(WAREHOUSE.traversable(Cell(*xy)) for xy in (longest["cell"], longest["goal"]))
    for key in ("throughput", "plan_ms_mean", "plan_ms_p50", "plan_ms_p99", "plan_ms_max", "first_plan_ms",
                "throughput_ceiling"):
        assert report[key] > 0

def test_the_longest_wait_names_the_robot_the_step_it_last_got_closer_its_cell_and_goal():
    waits = Waits(2)
    # robot 0 gets closer every step but one; robot 1 last gets closer at step 3 (5 left),
    # is pushed back (a detour counts as waiting too) and has not beaten 5 by step 7
    for step, (left0, left1, cell1) in enumerate([(9, 7, 20), (8, 6, 21), (8, 5, 22), (7, 6, 21), (6, 6, 23),
                                                  (5, 5, 24), (4, 5, 24)], start=1):
        waits.measure(0, step, left0, 100 + step, 50)
        waits.measure(1, step, left1, cell1, 60)
    assert (waits.longest, waits.who) == (4, (1, 3, 24, 60))
    waits.arrived(1)  # a new goal: its waiting starts afresh, the record stands
    waits.measure(1, 8, 30, 25, 61)
    waits.measure(1, 9, 30, 25, 61)
    assert (waits.longest, waits.who) == (4, (1, 3, 24, 60))


def test_lifelong_run_with_following_allowed_may_follow_but_never_collide():
    report = run_lifelong(WAREHOUSE, agents=15, steps=150, seed=1, following=True)
    assert report["collisions"] == 0

def test_lifelong_run_is_reproducible_for_a_seed():
    a = run_lifelong(WAREHOUSE, agents=8, steps=60, seed=5)
    b = run_lifelong(WAREHOUSE, agents=8, steps=60, seed=5)
    assert a["tasks_finished"] == b["tasks_finished"] and a["max_wait_steps"] == b["max_wait_steps"]

def test_lifelong_run_rejects_bad_starts():
    with pytest.raises(ValueError, match="distinct free cells"):
        run_lifelong(WAREHOUSE, agents=2, steps=5, starts=[Cell(0, 0), Cell(0, 0)])
    with pytest.raises(ValueError, match="do not fit"):
        run_lifelong(WAREHOUSE, agents=500, steps=5)

def test_pibt_step_never_enters_an_occupied_cell_without_following():
    grid = Grid.from_map(WAREHOUSE)
    pibt = PIBT(grid)
    cells = [grid.index(Cell(x, 0)) for x in range(5)]  # a train heading east
    goals = [grid.index(Cell(10, 0))] * 5
    nxt, _ = pibt.step(cells, [0] * 5, goals, [5.0, 4.0, 3.0, 2.0, 1.0])
    assert nxt[4] == grid.index(Cell(5, 0))  # the front robot moves on
    for i in range(4):
        assert nxt[i] == cells[i] or nxt[i] not in cells  # nobody steps into a cell being left

#: A westbound one-way row out of an open bay, back to the bay round a one-way loop.
ONE_WAY_LOOP = floor(
    "#####...",
    "<<<<<...",
    "v####...",
    ">>>>>...",
)


@pytest.mark.parametrize("rotation", [False, True])
def test_pibt_does_not_lead_a_robot_out_of_a_one_way_row_it_cannot_come_back_through(rotation):
    # Both robots are bound down the westbound row. The corridor swap took the one at
    # its mouth for a robot to lead out of the leader's way, and pushed it east, away
    # from the row it needs: in a one-way row nobody can come back through the
    # leader's cell, so there is nobody to let pass. On a crowded floor this led the
    # strongest robot round a square of four cells for good (docs/traffic.md).
    grid = Grid.from_map(ONE_WAY_LOOP, lane_penalty=1, street_penalty=1)
    pibt = PIBT(grid, rotation=rotation, following=True)
    leader, mouth = grid.index(Cell(5, 0)), grid.index(Cell(5, 1))
    goals = [grid.index(Cell(0, 1)), grid.index(Cell(1, 1))]
    nxt, _ = pibt.step([leader, mouth], [int(Heading.SOUTH), int(Heading.WEST)], goals, [2.0, 1.0])
    assert nxt == [mouth, grid.index(Cell(4, 1))]  # the robot at the mouth drives in, the leader follows


def test_lifelong_run_with_rotation_and_following_never_collides():
    report = run_lifelong(WAREHOUSE, agents=15, steps=150, rotation=True, seed=2, following=True)
    assert report["collisions"] == 0 and report["conflicts"]["illegal_moves"] == 0
    assert report["tasks_finished"] > 20

def test_lacam_solves_a_corridor_swap_that_needs_a_detour():
    corridor = floor(
        "#.#####",
        ".......",
    )
    grid = Grid.from_map(corridor, lane_penalty=1, street_penalty=1)
    starts = [grid.index(Cell(0, 1)), grid.index(Cell(6, 1))]
    goals = [grid.index(Cell(6, 1)), grid.index(Cell(0, 1))]
    result = solve(grid, starts, goals, out_of_time=lambda: False, following=True)
    assert result.solved
    paths = np.array(result.paths)
    assert paths[-1].tolist() == goals
    xy = np.stack((paths % grid.width, paths // grid.width), axis=-1)
    assert check_paths(corridor, xy, following_allowed=True).collisions == 0
    assert len(paths) - 1 >= 8  # one of them had to step into the bay

def test_lacam_reports_an_impossible_instance_quickly():
    grid = Grid.from_map(floor("...", "#.#"), lane_penalty=1, street_penalty=1)
    with pytest.raises(ValueError, match="cannot be reached"):
        solve(grid, [0], [grid.index(Cell(0, 1))], out_of_time=lambda: False)
    # Two robots swapping ends of a dead-end corridor: no solution exists, the search
    # runs out of configurations and says so.
    line = Grid.from_map(floor("..."), lane_penalty=1, street_penalty=1)
    result = solve(line, [0, 2], [2, 0], out_of_time=lambda: False, following=True)
    assert not result.solved

def test_run_mapf_executes_without_following_and_counts_costs():
    starts = [Cell(0, 0), Cell(10, 0), Cell(0, 4), Cell(10, 4)]
    goals = [Cell(10, 4), Cell(0, 4), Cell(10, 0), Cell(0, 0)]
    report = run_mapf(WAREHOUSE, starts, goals, time_limit=20)
    assert report["solved"] and report["collisions"] == 0
    assert report["conflicts"]["illegal_moves"] == 0
    assert report["lower_bound"] == 4 * 14
    assert report["sum_of_costs"] >= report["lower_bound"]
    assert report["ratio"] == pytest.approx(report["sum_of_costs"] / report["lower_bound"], abs=1e-3)


#: A block of shelves with an aisle row below it and a westbound ring lane below that.
RING = (
    "#########",
    "#.......#",
    "#.SSSSS.#",
    "#.......#",
    "#<<<<<<.#",
    "#########",
)


def test_the_aisle_row_beside_a_one_way_ring_lane_runs_against_it_for_loaded_robots():
    """Loaded robots drive the row between the shelves and the ring lane east only (the
    lane runs west): the two make a road with a lane each way, instead of a two-way row
    where loaded robots meet head-on. Turning off it into a shelf cell (a goal) stays allowed.
    Without arrows on the ring the row keeps no direction."""
    for rows, expected in ((RING, Heading.EAST), (tuple(r.replace("<", ".") for r in RING), None)):
        grid = Grid.from_map(floor(*rows))
        shelves = frozenset(grid.index(c) for c in grid.map.cells_of(CellKind.STORAGE))
        base = grid.without(shelves).lanes
        aisles = _along_the_ring(grid, shelves, base)
        row = [int(aisles[grid.index(Cell(x, 3))]) for x in range(2, 7)]
        before = [int(base[grid.index(Cell(x, 3))]) for x in range(2, 7)]
        assert row == (before if expected is None else [int(expected)] * 5)
        assert aisles[grid.index(Cell(1, 3))] == base[grid.index(Cell(1, 3))]  # beyond the block: as it was
        if expected is None:
            continue
        goal = grid.index(Cell(4, 2))
        loaded = grid.one_way(shelves - {goal}, aisles)
        here = grid.index(Cell(4, 3))
        assert loaded.ahead[here, Heading.WEST] == -1
        assert loaded.ahead[here, Heading.EAST] == grid.index(Cell(5, 3))
        assert loaded.ahead[here, Heading.NORTH] == goal
