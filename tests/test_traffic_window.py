"""The windowed search (fleet/traffic/window.py): replanned paths keep the floor's rules,
never cost more than the PIBT plan they replace, leave pinned and loaded robots to PIBT,
and finish more tasks than PIBT alone; lifelong runs with it are replayed by the
independent checker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fleet.traffic.grid import Grid
from fleet.traffic.lifelong import run_lifelong
from fleet.traffic.pibt import PIBT
from fleet.traffic.planner import LifelongPlanner
from fleet.traffic.scenario import read_cells
from fleet.traffic.window import WindowedRefinement, _costs, _may_stand
from maps import load_map
from maps.model import Cell, Heading
from traffic_kit import WAREHOUSE, floor

KIVA = load_map("maps/kiva.toml")


def _occupancy(window: int, size: int, paths: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """occupied[t, cell] and paths[robot, t] for hand-written paths (robot -> cells by step)."""
    occupied = np.full((window + 1, size), -1, dtype=np.int64)
    rows = np.zeros((max(paths) + 2, window + 1), dtype=np.int64)
    for robot, cells in paths.items():
        rows[robot] = cells
        for t, c in enumerate(cells):
            occupied[t, c] = robot
    return occupied, rows


def test_without_following_a_robot_never_enters_a_cell_left_in_the_same_step():
    # Cells 0-1-2-3 in a row; robot 0 moves 1 -> 2 between steps 0 and 1.
    occupied, paths = _occupancy(2, 4, {0: [1, 2, 3]})
    assert not _may_stand(occupied, paths, False, 0, 1, 0)  # into 1 as robot 0 leaves it
    assert _may_stand(occupied, paths, False, 0, 1, 1)  # a step later it is free
    # Robot 0 enters 2 at step 1: a robot standing on 2 at step 0 may not leave it then.
    occupied, paths = _occupancy(1, 4, {0: [1, 2]})
    assert not _may_stand(occupied, paths, False, 2, 3, 0)
    assert _may_stand(occupied, paths, True, 2, 3, 0)  # with following it may


def test_with_following_a_robot_may_join_a_chain_to_a_free_cell_but_never_close_a_cycle():
    # Robots 0 and 1 drive along 1 -> 2 -> 3 one behind the other; the replanned robot
    # (not in the table) stands on 0 and follows them.
    occupied, paths = _occupancy(1, 5, {0: [2, 3], 1: [1, 2]})
    assert _may_stand(occupied, paths, True, 0, 1, 0)
    # Robots on a ring 0 -> 1 -> 2 -> 3 -> 0 of which the replanned robot holds cell 3:
    # following the one on 0 closes the cycle (nobody could move first).
    occupied, paths = _occupancy(1, 4, {0: [0, 1], 1: [1, 2], 2: [2, 3]})
    assert not _may_stand(occupied, paths, True, 3, 0, 0)
    # A swap: robot 0 goes 1 -> 0 while the replanned robot goes 0 -> 1.
    occupied, paths = _occupancy(1, 3, {0: [1, 0]})
    assert not _may_stand(occupied, paths, True, 0, 1, 0)


def _refinement(grid: Grid, searches: int, seed: int = 3, **kwargs) -> tuple[WindowedRefinement, PIBT]:
    return WindowedRefinement(grid, rotation=True, following=False, window=8, searches=searches, seed=seed,
                              **kwargs), PIBT(grid, rotation=True, following=False, seed=seed)


def _crowd(grid: Grid, robots: int, seed: int) -> tuple[list[int], list[int], list[int], list, list[float]]:
    rng = np.random.default_rng(seed)
    free = grid.free_cells()
    cells = rng.choice(free, robots, replace=False).tolist()
    goals = rng.choice(free, robots, replace=False).tolist()
    tables = [grid.distance_list(g, True, True) for g in goals]
    return cells, [int(h) for h in rng.integers(0, 4, robots)], goals, tables, rng.random(robots).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_search_lowers_the_cost_of_pibts_plan_and_keeps_the_occupancy_true(seed):
    grid = Grid.from_map(KIVA, street_penalty=4)
    cells, headings, goals, tables, priorities = _crowd(grid, 120, seed)
    plain, pibt = _refinement(grid, searches=0)
    plain.step(pibt, cells, headings, goals, tables, priorities, deadline=float("inf"))
    searched, pibt = _refinement(grid, searches=300)
    searched.step(pibt, cells, headings, goals, tables, priorities, deadline=float("inf"))
    goal = np.asarray(goals)

    def cost(r: WindowedRefinement) -> int:
        return int(_costs(r.paths, r.turns, goal, np.asarray([np.asarray(t) for t in tables]), True).sum())

    assert searched.improvements > 0
    assert cost(searched) < cost(plain)
    assert (searched.paths[:, 0] == cells).all()
    expected = np.full_like(searched.occupied, -1)
    for t in range(searched.window + 1):
        expected[t, searched.paths[:, t]] = np.arange(len(cells))
    assert (searched.occupied == expected).all()


def test_pinned_and_frozen_robots_keep_what_pibt_planned_for_them():
    grid = Grid.from_map(KIVA, street_penalty=4)
    cells, headings, goals, tables, priorities = _crowd(grid, 120, 5)
    fixed, frozen = {0: cells[0], 1: cells[1]}, [2, 3, 4]
    plain, pibt = _refinement(grid, searches=0)
    plain.step(pibt, cells, headings, goals, tables, priorities, float("inf"), fixed=fixed, frozen=frozen)
    searched, pibt = _refinement(grid, searches=300)
    searched.step(pibt, cells, headings, goals, tables, priorities, float("inf"), fixed=fixed, frozen=frozen)
    assert searched.improvements > 0
    assert (searched.paths[:2] == np.asarray(cells[:2])[:, None]).all()  # pinned: on their cells throughout
    assert (searched.paths[2:5] == plain.paths[2:5]).all()
    assert (searched.paths[5:] != plain.paths[5:]).any()


@pytest.mark.parametrize("rotation", [False, True])
@pytest.mark.parametrize("following", [False, True])
@pytest.mark.parametrize("guidance", ["shortest", "flow"])
def test_lifelong_runs_with_the_window_never_collide(rotation, following, guidance):
    report = run_lifelong(WAREHOUSE, 12, 150, rotation=rotation, following=following, seed=2, guidance=guidance,
                          window=5, window_searches=30, window_ms=1e6)
    assert report["collisions"] == 0, report["conflicts"]
    assert report["tasks_finished"] > 0
    assert report["window_searches"]["kept"] > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), robots=st.integers(2, 18), rotation=st.booleans(), following=st.booleans(),
       window=st.integers(1, 6), searches=st.integers(0, 40))
def test_random_windowed_runs_never_collide(seed, robots, rotation, following, window, searches):
    report = run_lifelong(WAREHOUSE, robots, 80, rotation=rotation, following=following, seed=seed,
                          window=window, window_searches=searches, window_ms=1e6)
    assert report["collisions"] == 0, report["conflicts"]
    assert report["tasks_finished"] > 0


def test_the_window_finishes_more_tasks_than_pibt_alone_on_kiva():
    common = dict(rotation=True, endpoints=read_cells("benchmarks/data/kiva-endpoints.txt", KIVA),
                  starts=read_cells("benchmarks/data/kiva-homes.txt", KIVA), seed=0, street_penalty=4,
                  guidance="flow")
    plain = run_lifelong(KIVA, 100, 150, **common)
    searched = run_lifelong(KIVA, 100, 150, window=8, window_searches=150, window_ms=1e6, **common)
    assert searched["collisions"] == 0
    assert searched["tasks_finished"] > plain["tasks_finished"] * 1.05


def test_a_stopped_robot_stays_put_and_a_loaded_one_keeps_off_shelves():
    shelves = floor(
        ".......",
        ".SS.SS.",
        ".......",
        ".SS.SS.",
        ".......",
    )
    grid = Grid.from_map(shelves)
    shelf_cells = {grid.index(Cell(x, y)) for x, y in ((1, 1), (2, 1), (4, 1), (5, 1), (1, 3), (2, 3), (4, 3), (5, 3))}
    planner = LifelongPlanner(grid, rotation=True, shelf_cells=shelf_cells, window=4, window_ms=1e6)
    cells = [grid.index(Cell(0, 0)), grid.index(Cell(6, 4)), grid.index(Cell(3, 2)), grid.index(Cell(0, 4))]
    goals = [grid.index(Cell(6, 4)), grid.index(Cell(0, 0)), grid.index(Cell(6, 0)), grid.index(Cell(3, 0))]
    headings = [0, 2, 0, 1]
    loaded, stopped = [0], [2]
    for _ in range(40):
        plan = planner.plan(cells, headings, goals, stopped=stopped, loaded=loaded)
        assert plan.cells[2] == cells[2]
        assert plan.cells[0] not in shelf_cells
        assert len(set(plan.cells)) == len(cells)
        cells, headings = plan.cells, plan.headings
    assert cells[0] == goals[0] and cells[1] == goals[1] and cells[3] == goals[3]


def test_a_window_of_no_steps_is_refused():
    with pytest.raises(ValueError, match="window must be at least 1 step"):
        run_lifelong(WAREHOUSE, 2, 5, window=0)
    with pytest.raises(ValueError, match="searches must be 0 or more"):
        LifelongPlanner(Grid.from_map(WAREHOUSE), window=3, window_searches=-1)


def test_a_fleet_whose_tables_would_not_fit_is_refused_with_the_reason(monkeypatch):
    monkeypatch.setattr("fleet.traffic.window.TABLE_BYTES", 1000)
    with pytest.raises(ValueError, match=r"12 robots on this floor need .* GB"):
        run_lifelong(WAREHOUSE, 12, 5, rotation=True, window=3)


def test_a_robot_loaded_since_the_last_step_leaves_the_path_it_had_under_shelves():
    shelves = floor(
        "..........",
        ".SSSSSSSS.",
        "..........",
    )
    grid = Grid.from_map(shelves)
    shelf_cells = {grid.index(Cell(x, 1)) for x in range(1, 9)}
    planner = LifelongPlanner(grid, rotation=True, shelf_cells=shelf_cells, window=6, window_ms=1e6)
    cells, headings, goals = [grid.index(Cell(4, 0))], [int(Heading.EAST)], [grid.index(Cell(4, 2))]
    plan = planner.plan(cells, headings, goals)  # unloaded: it turns to drive under the shelf
    assert plan.cells == cells and plan.headings == [int(Heading.SOUTH)]
    cells, headings = plan.cells, plan.headings
    for _ in range(30):
        plan = planner.plan(cells, headings, goals, loaded=[0])  # it has lifted a shelf meanwhile
        assert plan.cells[0] not in shelf_cells
        cells, headings = plan.cells, plan.headings
    assert cells == goals


def test_a_robot_pinned_after_its_path_was_planned_stays_put():
    # The kept plan has the robot driving on; pinned now (lifting, say), it must not move,
    # nor may anyone be planned into its cell.
    planner = LifelongPlanner(Grid.from_map(WAREHOUSE), window=5, window_ms=1e6)
    grid = planner.floor
    cells = [grid.index(Cell(0, 0)), grid.index(Cell(0, 2))]
    goals = [grid.index(Cell(10, 0)), grid.index(Cell(10, 0))]
    plan = planner.plan(cells, [0, 0], goals)
    assert plan.cells[0] == grid.index(Cell(1, 0))  # under way along row 0
    cells = plan.cells
    for _ in range(3):
        plan = planner.plan(cells, [0, 0], goals, pinned=[0])
        assert plan.cells[0] == cells[0]
        assert plan.cells[1] != cells[0]
        cells = plan.cells
