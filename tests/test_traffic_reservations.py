"""The reservation table: cells are granted in the planned order and handed back on
reports, never by the clock; random plans run with random delays never collide and
never deadlock."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fleet.traffic.checker import check_paths
from fleet.traffic.execution import Deadlock, execute
from fleet.traffic.grid import Grid
from fleet.traffic.lacam import solve
from fleet.traffic.reservations import ReservationError, ReservationTable
from maps.model import Cell
from traffic_kit import floor

A, B, C, D, E = (Cell(x, 0) for x in range(5))


def test_second_robot_gets_a_cell_only_after_the_first_reports_leaving_it():
    table = ReservationTable({"r1": A, "r2": Cell(2, 1)})
    # r1 passes C at step 2; r2 enters C at step 3 (following r1 in the plan).
    table.commit({"r1": [A, B, C, D], "r2": [Cell(2, 1), Cell(2, 1), Cell(2, 1), C]})
    assert table.grant("r2") == []  # r1 has not even reached C yet
    assert table.grant("r1") == [B, C, D]
    assert table.reached("r1", C) == [A, B]
    assert table.grant("r2") == []  # r1 stands on C: still held
    assert table.holder(C) == "r1"
    assert table.reached("r1", D) == [C]  # handed back on the report of D
    assert table.grant("r2") == [C]


def test_waiting_for_names_the_cell_whose_queue_holds_a_robot_up():
    # The executor retries a robot only when this cell is handed back.
    table = ReservationTable({"r1": A, "r2": Cell(1, 1)})
    table.commit({"r1": [A, B, C], "r2": [Cell(1, 1), Cell(1, 1), Cell(1, 1), B]})
    assert table.grant("r2", horizon=1) == []
    assert table.waiting_for("r2") == B
    table.grant("r1", horizon=1)
    assert table.reached("r1", B) == [A]
    assert table.waiting_for("r2") == B  # r1 stands on B
    table.grant("r1", horizon=1)
    assert table.reached("r1", C) == [B]  # B handed back: r2 may go
    assert table.grant("r2", horizon=1) == [B]
    assert table.waiting_for("r2") is None  # granted everything committed for it


def test_a_late_robot_keeps_its_turn():
    # r1 is planned through B first; r2 is ready earlier but must wait for it anyway.
    table = ReservationTable({"r1": A, "r2": Cell(1, 1)})
    table.commit({"r1": [A, B, C], "r2": [Cell(1, 1), Cell(1, 1), Cell(1, 1), B]})
    assert table.grant("r2") == []
    assert table.grant("r1", horizon=1) == [B]
    assert table.grant("r2") == []


def test_a_silent_robot_keeps_everything_it_holds():
    table = ReservationTable({"r1": A, "r2": E})
    table.commit({"r1": [A, B, C], "r2": [E, D, C, B]})
    table.grant("r1")
    for _ in range(5):  # r1 has stopped reporting: nothing it holds is handed on
        table.grant("r2")
        assert table.held("r2") == [E, D]
    assert table.held("r1") == [A, B, C]
    assert table.holder(C) == "r1"


def test_horizon_limits_the_released_base():
    table = ReservationTable({"r": A})
    table.commit({"r": [A, B, C, D, E]})
    assert table.grant("r", horizon=2) == [B, C]
    table.reached("r", B)
    assert table.grant("r", horizon=2) == [D]


def test_blocked_cells_are_granted_to_nobody_and_name_the_robots_to_replan():
    table = ReservationTable({"r1": A, "r2": Cell(0, 1)})
    table.commit({"r1": [A, B, C, D], "r2": [Cell(0, 1), Cell(1, 1)]})
    assert table.grant("r1", horizon=1) == [B]
    assert table.block([C]) == {"r1"}
    assert table.grant("r1") == []
    assert table.cancel("r1") == [C, D]
    assert table.remaining("r1") == [B]
    table.unblock([C])
    table.commit({"r1": [B, C]})
    table.reached("r1", B)
    assert table.grant("r1") == [C]


def test_bad_plans_and_reports_are_refused_with_reasons():
    table = ReservationTable({"r": A})
    with pytest.raises(ReservationError, match="must start at"):
        table.commit({"r": [B, C]})
    with pytest.raises(ReservationError, match="jumps"):
        table.commit({"r": [A, C]})
    with pytest.raises(ReservationError, match="unknown robot"):
        table.grant("ghost")
    with pytest.raises(ReservationError, match="already"):
        table.add_robot("r", E)
    with pytest.raises(ReservationError, match="reserved by"):
        table.add_robot("s", A)
    table.commit({"r": [A, B]})
    with pytest.raises(ReservationError, match="not granted"):
        table.reached("r", B)


def test_execution_reports_a_deadlock_instead_of_hanging():
    # A swap committed as a plan: each robot waits for the other's cell, forever.
    table = ReservationTable({"r1": A, "r2": B})
    table.commit({"r1": [A, B], "r2": [B, A]})
    with pytest.raises(Deadlock, match="no robot can move"):
        execute(table)


# --- property: random plans, random delays ----------------------------------------------

@st.composite
def instances(draw):
    width, height = draw(st.integers(4, 7)), draw(st.integers(3, 6))
    rng = random.Random(draw(st.integers(0, 10**6)))
    rows = ["".join("#" if rng.random() < 0.15 else "." for _ in range(width)) for _ in range(height)]
    wmap = floor(*rows)
    grid = Grid.from_map(wmap, lane_penalty=1, street_penalty=1)
    free = [int(c) for c in grid.free_cells()]
    # The largest connected part of the floor.
    part = max(({c for c in free if grid.distances(g)[c] < 10**6} for g in free), key=len)
    robots = draw(st.integers(1, max(1, min(6, len(part) // 3))))
    starts = rng.sample(sorted(part), robots)
    goals = rng.sample(sorted(part), robots)
    return wmap, grid, starts, goals, draw(st.floats(0.0, 0.7)), draw(st.integers(0, 10**6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_random_plans_with_random_delays_never_collide_nor_deadlock(instance):
    wmap, grid, starts, goals, delay, seed = instance
    budget = iter(range(3000))
    result = solve(grid, starts, goals, out_of_time=lambda: next(budget, None) is None, following=True, seed=seed)
    if not result.solved:
        return  # some random floors have no solution; the planner must say so, as it did
    table = ReservationTable({i: grid.cell(s) for i, s in enumerate(starts)})
    table.commit({i: [grid.cell(c[i]) for c in result.paths] for i in range(len(starts))})
    rng = random.Random(seed)
    history = execute(table, delayed=lambda robot, step: rng.random() < delay)
    cells = np.array([[list(h[i]) for i in range(len(starts))] for h in history])
    assert check_paths(wmap, cells).as_dict()["collisions"] == 0
    assert [grid.index(Cell(*c)) for c in cells[-1]] == list(goals)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.integers(0, 5))
def test_a_robot_that_stops_for_good_keeps_its_cells_and_is_never_run_into(instance, stopper):
    wmap, grid, starts, goals, delay, seed = instance
    budget = iter(range(3000))
    result = solve(grid, starts, goals, out_of_time=lambda: next(budget, None) is None, following=True, seed=seed)
    if not result.solved:
        return
    stopper %= len(starts)
    table = ReservationTable({i: grid.cell(s) for i, s in enumerate(starts)})
    table.commit({i: [grid.cell(c[i]) for c in result.paths] for i in range(len(starts))})
    rng = random.Random(seed)
    history = execute(table, delayed=lambda robot, step: (robot == stopper and step >= 2) or rng.random() < delay,
                      max_steps=4 * len(result.paths) + 20)
    cells = np.array([[list(h[i]) for i in range(len(starts))] for h in history])
    assert check_paths(wmap, cells).collisions == 0
    assert cells[-1][stopper].tolist() == cells[min(2, len(cells) - 1)][stopper].tolist()  # it never moved again
    held = set(table.held(stopper))
    for robot in range(len(starts)):
        if robot != stopper:
            assert not held & set(table.held(robot))
