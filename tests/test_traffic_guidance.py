"""Traffic flow guidance: guide paths planned round the other robots' guide paths, and
lifelong runs that follow them, replayed by the independent checker."""

from __future__ import annotations

import pytest

from fleet.traffic.grid import UNREACHABLE, Grid
from fleet.traffic.guidance import GUIDE_FAR, TrafficFlow
from fleet.traffic.lifelong import run_lifelong
from fleet.traffic.planner import LifelongPlanner
from fleet.traffic.window import WindowedRefinement
from maps.model import Cell, Heading
from traffic_kit import WAREHOUSE, floor

# Two corridors between the same ends: the top one two moves shorter end to end.
LOOP = floor(
    "........",
    ".######.",
    "........",
)


def _loop() -> tuple[Grid, int, int, list[int], list[int]]:
    grid = Grid.from_map(LOOP, lane_penalty=1)  # no lanes: only the flow tells the corridors apart
    west, east = grid.index(Cell(0, 0)), grid.index(Cell(7, 0))
    top = [grid.index(Cell(x, 0)) for x in range(8)]
    bottom = [grid.index(Cell(x, 2)) for x in range(8)]
    return grid, west, east, top, bottom


def test_a_guide_path_takes_the_other_corridor_rather_than_meet_one_head_on():
    grid, west, east, top, bottom = _loop()
    alone = TrafficFlow(grid, rotation=False)
    alone.tables([east], [0], [west], robots=[0])
    assert alone.flow[top, Heading.WEST].sum() == 7  # on its own, the short way

    flow = TrafficFlow(grid, rotation=False)
    flow.tables([west, east], [0, 0], [east, west], robots=[0, 1])
    assert flow.flow[top, Heading.EAST].sum() == 7  # the first robot, the short way east
    assert flow.flow[top, Heading.WEST].sum() == 0  # the second does not meet it head-on
    assert flow.flow[bottom, Heading.WEST].sum() == 7


def test_a_table_leads_a_robot_down_its_guide_path():
    grid, west, east, top, bottom = _loop()
    flow = TrafficFlow(grid, rotation=True)
    tables = flow.tables([west, east], [Heading.EAST, Heading.WEST], [east, west], robots=[0, 1])
    table = tables[1]
    assert tables[0] is not None and table is not None
    below = grid.index(Cell(7, 1))
    # From its start facing west, the second robot's table is lower turning south (to the
    # bottom corridor) than driving straight on along the top one.
    assert table[east * 4 + Heading.SOUTH] < table[top[6] * 4 + Heading.WEST]
    assert table[below * 4 + Heading.SOUTH] < table[east * 4 + Heading.WEST]


def test_made_moves_stop_counting_and_a_new_goal_drops_the_old_path():
    grid, west, east, top, _ = _loop()
    flow = TrafficFlow(grid, rotation=False)
    flow.tables([west], [0], [east], robots=[0])
    assert flow.flow.sum() == 7 and flow.entering.sum() == 7
    flow.tables([top[3]], [0], [east], robots=[0])
    assert flow.flow.sum() == 4 and flow.flow[top[:3], Heading.EAST].sum() == 0
    flow.tables([top[3]], [0], [west], robots=[0])  # a new goal: three moves back west
    assert flow.flow.sum() == 3 and flow.flow[top[1:4], Heading.WEST].sum() == 3
    assert flow.entering.sum() == 3


@pytest.mark.parametrize("rotation", [False, True])
@pytest.mark.parametrize("following", [False, True])
def test_lifelong_run_with_flow_guidance_finishes_tasks_without_conflicts(rotation, following):
    report = run_lifelong(WAREHOUSE, agents=15, steps=150, rotation=rotation, seed=2, following=following,
                          guidance="flow")
    assert report["guidance"] == "flow"
    assert report["collisions"] == 0 and report["conflicts"]["illegal_moves"] == 0
    assert report["tasks_finished"] > 20
    assert report["max_wait_steps"] < 150


def test_unknown_guidance_is_refused():
    with pytest.raises(ValueError, match="guidance"):
        LifelongPlanner(Grid.from_map(WAREHOUSE), guidance="fastest")


def test_the_flow_weights_reach_the_guide_paths_and_outlive_a_floor_change():
    grid, west, east, top, bottom = _loop()
    planner = LifelongPlanner(grid, guidance="flow", contraflow=7, crowding=0)
    planner.block([Cell(3, 1)])
    planner.plan([west, east], [0, 0], [east, west])
    assert (planner._flow.contraflow, planner._flow.crowding) == (7, 0)
    # Heavy contraflow: the second robot's guide path avoids meeting the first one at all.
    assert planner._flow.flow[top, Heading.WEST].sum() == 0


def test_guide_tables_take_two_bytes_a_state_and_the_window_reads_their_out_of_reach_as_such():
    # East of the one-way cell nothing leads back west: the goal is out of reach there.
    grid = Grid.from_map(floor("..>."), lane_penalty=1, street_penalty=1)
    flow = TrafficFlow(grid, rotation=True)
    table = flow.tables([1], [Heading.WEST], [0], robots=[0])[0]
    assert table.itemsize == 2  # every robot keeps its own: 10,000 of them on 500 x 140
    assert table[1 * 4 + Heading.WEST] == 1 and table[3 * 4 + Heading.WEST] == GUIDE_FAR
    window = WindowedRefinement(grid, rotation=True, following=False)
    window._load_tables([table])
    assert window._tables[0, 1 * 4 + Heading.WEST] == 1
    assert window._tables[0, 3 * 4 + Heading.WEST] == UNREACHABLE  # not a cost of 65,535 steps
