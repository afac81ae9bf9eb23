"""Who goes first: the lifelong planner's priority rules, each on a floor small enough to
follow by hand, where the wrong rule leaves a robot stuck or beaten by a newer one."""

from __future__ import annotations

import pytest

from fleet.traffic.grid import Grid
from fleet.traffic.lifelong import run_lifelong
from fleet.traffic.planner import LifelongPlanner
from maps import Cell, CellKind, parse_map
from maps.generator import LayoutSpec, generate_layout
from maps.model import Heading, Station, StationKind
from traffic_kit import floor

BLOCK = """name = "block"
layout = '''
#########
#.......#
#.SSSSS.#
#.SSSSS.#
#.......#
#W......#
#########
'''
[[stations]]
id = "p"
kind = "pick"
working = [1, 5]
queue = []
operator_side = "south"
"""


@pytest.mark.parametrize("rotation", [False, True])
def test_a_loaded_robot_on_a_shelf_cell_gets_out_past_an_older_robot_on_its_exit(rotation):
    """A robot lifts the shelf at (4, 2); loaded, its only way out is the aisle cell (4, 1)
    above it. An unloaded robot waits on (4, 1) all through the lift, to duck under the
    block straight to (4, 4), so by elapsed time it outranks the loaded one. It could step
    aside, but the stronger waits for the weaker to move, which cannot: both would wait
    for good. Standing on a shelf cell, the loaded robot outranks everyone instead."""
    wmap = parse_map(BLOCK)
    grid = Grid.from_map(wmap)
    planner = LifelongPlanner(grid, rotation=rotation, seed=0,
                              shelf_cells=[grid.index(c) for c in wmap.cells_of(CellKind.STORAGE)])
    shelf, exit_, under, away = (grid.index(c) for c in (Cell(4, 2), Cell(4, 1), Cell(4, 4), Cell(7, 5)))
    cells, headings = [shelf, exit_], [1, 3]
    for _ in range(5):  # lifting: pinned on its shelf cell, while the other waits
        step = planner.plan(cells, headings, [shelf, under], loaded=[0], pinned=[0])
        cells, headings = step.cells, step.headings
    assert cells == [shelf, exit_]
    out = arrived = None
    for t in range(1, 21):
        step = planner.plan(cells, headings, [away, under], loaded=[0])
        cells, headings = step.cells, step.headings
        assert cells[0] != cells[1]
        if out is None and cells[0] != shelf:
            out = t
        if cells == [away, under]:
            arrived = t
            break
    assert out is not None and out <= 3, f"the loaded robot is still on its shelf cell: {grid.cell(cells[0])}"
    assert arrived is not None, f"not both on their goals after 20 steps: {[grid.cell(c) for c in cells]}"


#: A road along the top; a spur off it at x = 4 where one robot rests.
MERGE = floor(
    "........",
    "####.###",
    "####.###",
)


@pytest.mark.parametrize("rotation", [False, True])
def test_a_robot_whose_goal_moves_on_keeps_its_priority_over_a_newer_one(rotation):
    """A robot drives east along the road towards (6, 0); as it reaches (3, 0) its goal
    moves on to (7, 0) (a port's queue moving up), and at once the robot resting on the
    spur at (4, 1) is sent to (6, 0). Both want (4, 0) next. The first has been on its way
    for longer, and a goal moved on the way does not restart its clock, so it goes first
    whatever the tie-break; restarted, the two would be equal and the tie-break would let
    the newcomer cut in (at every second seed or so)."""
    grid = Grid.from_map(MERGE)
    road, spur, merge = grid.index(Cell(3, 0)), grid.index(Cell(4, 1)), grid.index(Cell(4, 0))
    first_goal, moved_goal, newcomer_goal = (grid.index(Cell(x, 0)) for x in (6, 7, 6))
    for seed in range(8):
        planner = LifelongPlanner(grid, rotation=rotation, seed=seed)
        cells, headings = [grid.index(Cell(1, 0)), spur], [0, 1]
        goals = [first_goal, spur]
        while cells[0] != road:
            step = planner.plan(cells, headings, goals)
            cells, headings = step.cells, step.headings
            assert cells[1] == spur
        step = planner.plan(cells, headings, [moved_goal, newcomer_goal])
        assert step.cells == [merge, spur], f"seed {seed}: the newcomer cut in: {[grid.cell(c) for c in step.cells]}"


#: A road along the top; below it, a port whose working cell (3, 2) is entered from its
#: queue (1, 2), (2, 2) and left onto the road.
PORT = floor(
    "#######",
    "#.....#",
    "#QQW###",
    "#######",
    stations=(Station("p", StationKind.PICK, working=(Cell(3, 2),), queues=((Cell(1, 2), Cell(2, 2)),),
                      operator_side=Heading.SOUTH),),
)


@pytest.mark.parametrize("rotation", [False, True])
def test_a_robot_leaving_a_working_cell_goes_before_an_older_one_on_the_road(rotation):
    """A robot has been worked at the port (pinned on its working cell) while a robot on
    the road waited behind a third one standing on the exit (3, 1). When the exit frees,
    the robot on the road has waited far longer, so by elapsed time it would take (3, 1)
    first; but the port can serve no one while its working cell is taken, so the leaving
    robot goes first (medium floor, seeds 0 and 2: a port stood with a served robot on its
    working cell 9-13 % of the time without this rule, 3 % with it)."""
    grid = Grid.from_map(PORT)
    working, exit_, road, beyond, end = (grid.index(Cell(x, y)) for x, y in ((3, 2), (3, 1), (2, 1), (4, 1), (5, 1)))
    for seed in range(4):
        planner = LifelongPlanner(grid, rotation=rotation, seed=seed)
        cells, headings = [working, road, exit_], [1, 0, 0]
        for _ in range(6):  # the port works the shelf; the exit is taken; the road robot waits
            step = planner.plan(cells, headings, [working, beyond, exit_], pinned=[0, 2])
            cells, headings = step.cells, step.headings
        assert cells == [working, road, exit_]
        while cells[2] == exit_:  # the third robot drives on, east
            step = planner.plan(cells, headings, [exit_, beyond, end])
            cells, headings = step.cells, step.headings
            assert cells[0] == working
        assert cells[1] == road
        step = planner.plan(cells, headings, [exit_, beyond, end])
        assert step.cells[0] == exit_ and step.cells[1] == road, \
            f"seed {seed}: the robot on the road went first: {[grid.cell(c) for c in step.cells]}"


def test_a_robot_kept_off_its_way_gains_priority_over_robots_of_its_age():
    """300 robots on a 60 x 30 warehouse, all of one age until they reach their first
    goal: by age and a fixed tie-break, a robot pushed off its way stays ranked under the
    same robots for good. With lag_after, every step it gets no closer lifts it, and the
    longest any robot goes without getting closer to its goal shrinks (71 -> 24 steps
    when measured)."""
    wmap = generate_layout(LayoutSpec(name="small", width=60, height=30))
    runs = {lag: run_lifelong(wmap, 300, 300, rotation=True, following=True, lag_after=lag) for lag in (None, 0)}
    for report in runs.values():
        assert report["collisions"] == 0 and report["blocked_robot_steps"] == 0
    assert runs[0]["lag_after"] == 0 and runs[None]["lag_after"] is None
    assert runs[0]["max_wait_steps"] * 2 < runs[None]["max_wait_steps"]


def test_lag_after_must_be_a_number_of_steps():
    with pytest.raises(ValueError, match="lag_after must be a number of steps"):
        LifelongPlanner(Grid.from_map(parse_map(BLOCK)), lag_after=-1)


def test_the_lag_counts_steps_without_getting_closer_and_starts_again_with_a_new_goal():
    """The lag is what the rule adds priority for: it must not carry over from one goal to
    the next (a robot that waited long for its last goal would outrank everyone on its
    next), and it ends when the robot gets closer than it has been."""
    grid = Grid.from_map(parse_map(BLOCK))
    planner = LifelongPlanner(grid, lag_after=0)
    planner.plan([grid.index(Cell(1, 1))], [0], [grid.index(Cell(7, 4))])  # one robot known to the planner
    here, near, far, other = (grid.index(c) for c in (Cell(2, 1), Cell(7, 3), Cell(7, 4), Cell(1, 4)))
    lags = [planner._lag(0, here, 0, far, None) for _ in range(4)]
    assert lags == [0, 1, 2, 3]
    assert planner._lag(0, near, 0, far, None) == 0  # closer than ever: no lag
    assert planner._lag(0, here, 0, far, None) == 1  # farther again
    assert planner._lag(0, here, 0, other, None) == 0  # a new goal: counted afresh
