"""The classic deadlock scenarios, each run by the lifelong planner on a small floor and
replayed by the independent checker: nobody collides and everyone gets where it is going
(or, where the floor makes that impossible, is told why)."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.traffic.checker import check_paths
from fleet.traffic.grid import Grid
from fleet.traffic.planner import UNJAM_AFTER, Detour, LifelongPlanner
from maps.model import Cell, Heading, Station, StationKind
from traffic_kit import floor


def drive(wmap, starts, errands, steps, stopped=(), rotation=False, seed=0):
    """Run the planner; robot i works through errands[i] (a list of goal cells) in order
    and then stays on its last goal. Returns (reached, blocked, conflicts, final cells):
    reached[i] is the step robot i reached its last goal."""
    grid = Grid.from_map(wmap)
    planner = LifelongPlanner(grid, rotation=rotation, seed=seed)
    cells = [grid.index(c) for c in starts]
    headings = [0] * len(cells)
    todo = [[grid.index(c) for c in e] for e in errands]
    reached = [None] * len(cells)
    blocked = {}
    history = [list(cells)]
    heads = [list(headings)]
    for t in range(steps):
        goals = [todo[i][0] for i in range(len(cells))]
        plan = planner.plan(cells, headings, goals, stopped)
        blocked.update(plan.blocked)
        cells, headings = plan.cells, plan.headings
        for i, c in enumerate(cells):
            if c == todo[i][0]:
                if len(todo[i]) > 1:
                    todo[i].pop(0)
                elif reached[i] is None:
                    reached[i] = t + 1
            elif len(todo[i]) == 1:
                reached[i] = None  # pushed off its goal again: not there yet
        history.append(list(cells))
        heads.append(list(headings))
    flat = np.array(history)
    xy = np.stack((flat % grid.width, flat // grid.width), axis=-1)
    conflicts = check_paths(wmap, xy, np.array(heads) if rotation else None)
    return reached, blocked, conflicts, [grid.cell(c) for c in cells]


AISLE = floor(
    "..#####..",
    ".........",
    "..#####..",
)


@pytest.mark.parametrize("rotation", [False, True])
def test_head_on_in_a_one_wide_aisle(rotation):
    reached, _, conflicts, final = drive(
        AISLE, [Cell(2, 1), Cell(6, 1)], [[Cell(7, 1)], [Cell(1, 1)]], steps=60, rotation=rotation)
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0
    assert final == [Cell(7, 1), Cell(1, 1)]
    assert all(r is not None and r <= 40 for r in reached)


def test_cycle_of_four_robots_around_a_block():
    ring = floor(
        "...",
        ".#.",
        "...",
    )
    starts = [Cell(1, 0), Cell(2, 1), Cell(1, 2), Cell(0, 1)]
    goals = [[starts[(i + 1) % 4]] for i in range(4)]  # each wants the next one's cell
    reached, _, conflicts, final = drive(ring, starts, goals, steps=60)
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0
    assert final == [g[0] for g in goals]
    assert all(r is not None for r in reached)


def test_robot_parked_on_anothers_goal():
    bay = floor(
        "#.####",
        "......",
    )
    parked, arriving = Cell(1, 0), Cell(5, 1)
    # The parked robot's only errand is to be where it is; the other must visit the bay.
    reached, _, conflicts, final = drive(
        bay, [parked, arriving], [[parked], [parked, arriving]], steps=60)
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0
    assert final == [parked, arriving]  # the visitor got in, and both are home again
    assert all(r is not None for r in reached)


def test_full_station_queue_moves_up_and_takes_a_newcomer():
    station = floor(
        "#......#",
        "#.####.#",
        "#......#",
        "########",
    )
    # Queue (2,2) (3,2) (4,2) -> working cell (5,2); the robot at work leaves to (1,0),
    # everyone moves up one, and a newcomer joins at the back.
    starts = [Cell(5, 2), Cell(4, 2), Cell(3, 2), Cell(2, 2), Cell(3, 0)]
    errands = [[Cell(1, 0)], [Cell(5, 2)], [Cell(4, 2)], [Cell(3, 2)], [Cell(2, 2)]]
    reached, _, conflicts, final = drive(station, starts, errands, steps=80)
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0
    assert final == [e[-1] for e in errands]
    assert all(r is not None for r in reached)


@pytest.mark.parametrize("seed", range(8))
def test_a_robot_leaving_a_working_cell_and_one_going_through_its_way_both_get_there(seed):
    """The leaver outranks the robot in front (LEAVING_WORKING_CELL) until it has stepped
    off the working cell; the one waiting then outranks it and pushes it back on. Made to
    make way, it stepped aside onto the working cell and, let go at once, straight back:
    both went to and fro for good (found by the random-delays property test)."""
    port = Station("p", StationKind.PICK, (Cell(0, 1),), ((),), Heading.SOUTH)
    front = floor("....", "W...", stations=(port,))
    resting = Cell(1, 0)  # keeps the leaver's way aside to the working cell
    reached, _, conflicts, final = drive(
        front, [Cell(2, 1), Cell(0, 1), resting], [[Cell(1, 1)], [Cell(3, 1)], [resting]], steps=80, seed=seed)
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0
    assert final == [Cell(1, 1), Cell(3, 1), resting]
    assert all(r is not None and r <= 40 for r in reached)


def test_faulted_robot_in_the_only_aisle_is_reported_not_waited_on_forever():
    corridor = floor(
        "#########",
        ".........",
        "#########",
    )
    # Robot 0 has faulted in the middle of the only aisle; robot 1 must get past it.
    reached, blocked, conflicts, final = drive(
        corridor, [Cell(4, 1), Cell(0, 1)], [[Cell(4, 1)], [Cell(8, 1)]], steps=20, stopped={0})
    assert conflicts.collisions == 0
    assert 1 in blocked and "cut off" in blocked[1] and "stopped robots" in blocked[1]
    assert final[0] == Cell(4, 1)  # the faulted robot keeps its cell


def test_faulted_robot_on_the_goal_names_the_robot():
    corridor = floor(".....")
    _, blocked, _, _ = drive(corridor, [Cell(4, 0), Cell(0, 0)], [[Cell(4, 0)], [Cell(4, 0)]], steps=3,
                             stopped={0})
    assert blocked[1] == "goal (4, 0) is occupied by stopped robot 0"


def test_faulted_robot_in_an_aisle_is_driven_round_when_there_is_another_way():
    blocks = floor(
        ".........",
        ".#######.",
        ".........",
    )
    reached, blocked, conflicts, final = drive(
        blocks, [Cell(4, 0), Cell(0, 0)], [[Cell(4, 0)], [Cell(8, 0)]], steps=30, stopped={0})
    assert conflicts.collisions == 0 and not blocked
    assert final == [Cell(4, 0), Cell(8, 0)]
    assert reached[1] == 12  # the long way round: down, along row 2, up


def test_operator_block_reroutes_and_reports_a_blocked_goal_until_unblocked():
    blocks = floor(
        ".........",
        ".#######.",
        ".........",
    )
    grid = Grid.from_map(blocks)
    planner = LifelongPlanner(grid)
    cells, goals = [grid.index(Cell(0, 0))], [grid.index(Cell(8, 0))]
    planner.block([Cell(4, 0)])  # the short way along row 0 is closed
    seen = []
    for _ in range(14):
        plan = planner.plan(cells, [0], goals)
        assert not plan.blocked
        cells = plan.cells
        seen.append(grid.cell(cells[0]))
    assert Cell(4, 0) not in seen and seen[-1] == Cell(8, 0)  # round by row 2: 12 steps
    planner.block([Cell(0, 0)])
    plan = planner.plan(cells, [0], [grid.index(Cell(0, 0))])
    assert plan.blocked == {0: "goal (0, 0) is blocked by the operator"}
    assert plan.cells == cells  # holds position instead of pushing in vain
    planner.unblock([Cell(0, 0), Cell(4, 0)])
    assert not planner.plan(cells, [0], [grid.index(Cell(0, 0))]).blocked


def test_loaded_and_unloaded_head_on_between_shelves_the_unloaded_one_ducks_under_a_shelf():
    """A loaded robot may not leave the one-wide aisle between two rows of shelves; an
    unloaded one coming the other way gets out of its way only by turning and ducking under
    a shelf. (The FCFS gridlock on the medium floor that UNJAM_AFTER breaks had this pair
    at its heart, in a crowd this small floor does not reproduce: two robots alone are
    sorted out by PIBT's pushing, with or without that rule.)"""
    wmap = floor(
        ".......",
        ".......",
        ".......",
    )
    grid = Grid.from_map(wmap)
    shelves = [grid.index(Cell(x, y)) for y in (0, 2) for x in range(7)]
    planner = LifelongPlanner(grid, rotation=True, seed=0, shelf_cells=shelves)
    cells = [grid.index(Cell(1, 1)), grid.index(Cell(5, 1))]
    headings = [int(Heading.EAST), int(Heading.WEST)]
    goals = [grid.index(Cell(6, 1)), grid.index(Cell(0, 1))]
    history, heads, reached = [list(cells)], [list(headings)], [None, None]
    for t in range(200):
        plan = planner.plan(cells, headings, goals, loaded=[0])
        cells, headings = plan.cells, plan.headings
        history.append(list(cells))
        heads.append(list(headings))
        for i in range(2):
            if cells[i] == goals[i] and reached[i] is None:
                reached[i] = t + 1
        assert cells[0] not in shelves, f"step {t}: the loaded robot drove under a shelf"
    flat = np.array(history)
    conflicts = check_paths(wmap, np.stack((flat % grid.width, flat // grid.width), axis=-1), np.array(heads))
    assert conflicts.collisions == 0 and conflicts.illegal_moves == 0
    assert cells == goals, f"stuck at {[grid.cell(c) for c in cells]}"
    assert reached[0] is not None and reached[0] <= 100


def test_a_robot_aside_for_a_waiter_stays_until_it_moves_but_not_for_good():
    """A robot sent aside waits there for the waiter to move; if the waiter cannot (here
    its goal is blocked by the operator after the robot stepped aside), the robot goes
    about its own errand after UNJAM_AFTER steps instead of standing aside for good."""
    wmap = floor(".......", ".......", ".......")
    grid = Grid.from_map(wmap)
    planner = LifelongPlanner(grid, seed=0)
    aside, errand, waiter, goal = (grid.index(c) for c in (Cell(1, 0), Cell(6, 2), Cell(1, 2), Cell(5, 2)))
    cells, headings, goals = [aside, waiter], [0, 0], [errand, goal]
    planner.plan(cells, headings, goals)  # both robots known to the planner
    planner.block([grid.cell(goal)])
    planner._detours[0] = Detour(aside, 1, goal, waiter, 0)  # as _make_way leaves it once robot 0 is aside
    track = []
    for _ in range(UNJAM_AFTER + 20):
        step = planner.plan(cells, headings, goals)
        assert "blocked by the operator" in step.blocked[1]
        cells, headings = step.cells, step.headings
        track.append(cells[0])
    assert track[:UNJAM_AFTER - 1] == [aside] * (UNJAM_AFTER - 1)  # held aside for the waiter
    assert track[-1] == errand  # then let go: it got to its own goal
