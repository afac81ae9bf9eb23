"""The planner's view of the floor: indices, moves, one-way lanes, distance tables."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from fleet.traffic.grid import UNREACHABLE, Grid
from maps.model import Cell, Heading
from traffic_kit import floor

ROOM = floor(
    "......",
    ".##.#.",
    "......",
    "#.##..",
)


def _digraph(grid: Grid) -> nx.DiGraph:
    g = nx.DiGraph()
    for c in grid.free_cells():
        g.add_node(int(c))
        for _, cell in grid.map.neighbours(grid.cell(c)):
            g.add_edge(int(c), grid.index(cell))
    return g


def test_index_and_cell_are_inverse_and_reject_outside_cells():
    grid = Grid.from_map(ROOM)
    for c in range(grid.size):
        assert grid.index(grid.cell(c)) == c
    with pytest.raises(ValueError, match="outside map"):
        grid.index(Cell(6, 0))


def test_moves_match_the_map_neighbours():
    grid = Grid.from_map(ROOM)
    for cell in ROOM.cells():
        if not ROOM.traversable(cell):
            continue
        expected = sorted((int(h), grid.index(n)) for h, n in ROOM.neighbours(cell))
        assert sorted(grid.moves[grid.index(cell)]) == expected


def test_distances_equal_networkx_shortest_paths_to_every_goal():
    grid = Grid.from_map(ROOM, lane_penalty=1, street_penalty=1)
    g = _digraph(grid)
    for goal in grid.free_cells():
        truth = nx.single_target_shortest_path_length(g, int(goal))
        table = grid.distances(int(goal))
        truth = dict(truth)
        for c in grid.free_cells():
            assert table[c] == truth.get(int(c), UNREACHABLE)
    assert grid.distances(grid.index(Cell(1, 1)))[0] == UNREACHABLE  # a blocked goal


def test_one_way_lane_makes_distance_to_differ_from_distance_from():
    ring = floor(
        ">>>>v",
        "^##.v",
        "^<<<<",
    )
    grid = Grid.from_map(ring)
    a, b = grid.index(Cell(0, 0)), grid.index(Cell(4, 0))
    assert grid.distances(b)[a] == 4  # along the arrows
    assert grid.distances(a)[b] == 8  # all the way round


def test_oriented_distances_count_turns_as_steps():
    line = floor(".....")
    grid = Grid.from_map(line)
    goal = grid.index(Cell(4, 0))
    table = grid.distances(goal, oriented=True)
    start = grid.index(Cell(0, 0))
    assert table[start, Heading.EAST] == 4
    assert table[start, Heading.NORTH] == 5  # one turn, then four moves
    assert table[start, Heading.WEST] == 6  # two turns
    assert table[goal].tolist() == [0, 0, 0, 0]


def test_without_takes_cells_out_of_the_floor():
    grid = Grid.from_map(ROOM)
    shelves = [Cell(0, 1)]
    loaded = grid.without(shelves)
    goal = grid.index(Cell(0, 2))
    assert grid.distances(goal)[grid.index(Cell(0, 0))] == 2
    assert loaded.distances(goal)[grid.index(Cell(0, 0))] == 8  # round the block via column 3
    assert not loaded.passable[grid.index(Cell(0, 1))]
    assert grid.passable[grid.index(Cell(0, 1))]  # the original floor is untouched


def test_corridors_get_alternating_lanes_that_guidance_prefers():
    blocks = floor(
        ".......",
        "#.#.#.#",
        "#.#.#.#",
        ".......",
    )
    grid = Grid.from_map(blocks, lane_penalty=5, street_penalty=1)
    lanes = {x: grid.lanes[grid.index(Cell(x, 1))] for x in (1, 3, 5)}
    assert lanes == {1: Heading.NORTH, 3: Heading.SOUTH, 5: Heading.NORTH}
    goal = grid.index(Cell(1, 3))
    start = grid.index(Cell(1, 0))
    assert grid.distances(goal)[start] == 3  # straight down corridor 1...
    assert grid.distances(goal, guided=True)[start] == 7  # ...is dearer than via southbound corridor 3
    assert np.all(grid.distances(goal, guided=True)[grid.free_cells()] < UNREACHABLE)


def test_lane_penalty_below_one_is_rejected():
    with pytest.raises(ValueError, match="lane_penalty"):
        Grid.from_map(ROOM, lane_penalty=0)


def test_streets_make_the_wrong_way_along_a_row_or_column_dearer():
    open_floor = floor("....", "....", "....", "....")
    grid = Grid.from_map(open_floor, street_penalty=3)
    west, east = grid.index(Cell(0, 0)), grid.index(Cell(3, 0))
    # Row 0 runs east: east is cheap, west costs the penalty per step.
    assert grid.distances(east, guided=True)[west] == 3
    # Back west: three penalised steps along row 0, or down column 3 (north-bound) and
    # up column 0 (south-bound) against their streets round west-bound row 1: 9 either way.
    assert grid.distances(west, guided=True)[east] == 9
    assert grid.distances(west)[east] == 3  # true distance ignores streets
    with pytest.raises(ValueError, match="street_penalty"):
        Grid.from_map(open_floor, street_penalty=0)


def test_a_port_queue_is_entered_at_its_entry_and_driven_one_way_to_the_working_cell():
    """A robot leaving the working cell used to take the queue back out, pushing every
    waiting robot back with it, and passers-by cut into the middle of the line."""
    from maps import shipped_map

    wmap = shipped_map("medium")
    station = next(s for s in wmap.stations if s.id == "pick-1")
    assert station.working == (Cell(7, 59), Cell(8, 59))
    assert [q[0] for q in station.queues] == [Cell(3, 59), Cell(12, 59)]
    grid = Grid.from_map(wmap)

    def targets(cell: Cell) -> set[Cell]:
        return {grid.cell(t) for t in grid.ahead[grid.index(cell)] if t >= 0}

    # each working cell is left away from its queue, never into the other working cell
    assert targets(Cell(7, 59)) == {Cell(7, 58)} and targets(Cell(8, 59)) == {Cell(8, 58)}
    assert targets(Cell(5, 59)) == {Cell(6, 59), Cell(5, 58)}  # up the line, or out sideways
    assert targets(Cell(10, 59)) == {Cell(9, 59), Cell(10, 58)}  # the mirrored line runs west
    assert Cell(5, 59) not in targets(Cell(5, 58))  # no cutting in
    assert Cell(7, 59) not in targets(Cell(7, 58))  # the working cell only from the line
    assert Cell(3, 59) in targets(Cell(3, 58)) and Cell(12, 59) in targets(Cell(12, 58))  # the entries
    # so the way from the aisle above the working cell onto it runs through the whole line
    d = grid.distances(grid.index(Cell(7, 59)), guided=False)
    assert d[grid.index(Cell(7, 58))] >= 1 + 4 + 1  # at least: down to the entry, along the line


@pytest.mark.parametrize("one_way", [False, True])
def test_at_a_station_with_two_working_cells_each_line_is_its_own_one_way_conveyor(one_way: bool):
    """Neither working cell may be left into the other (a shelf would cut into the other
    line's head), and each line is entered only at its entry, the mirrored one too."""
    from maps.generator import LayoutSpec, generate_layout

    ring = {"ring_width": 2, "one_way": True, "queue_length": 3} if one_way else {}
    wmap = generate_layout(LayoutSpec(working_cells=2, block_columns=4, **ring))
    grid = Grid.from_map(wmap)

    def targets(cell: Cell) -> set[Cell]:
        return {grid.cell(t) for t in grid.ahead[grid.index(cell)] if t >= 0}

    def sources(cell: Cell) -> set[Cell]:
        around = (Cell(cell.x + dx, cell.y + dy) for dx, dy in (h.step for h in Heading))
        return {c for c in around if wmap.in_bounds(c) and cell in targets(c)}

    for station in wmap.stations:
        dx, dy = station.operator_side.step
        inward = {c: Cell(c.x - dx, c.y - dy) for c in station.cells}  # the grid side of a station cell
        first, second = station.working
        assert second not in targets(first) and first not in targets(second), station.id
        for working, queue in zip(station.working, station.queues):
            line = (*queue, working)
            assert sources(queue[0]) == {inward[queue[0]]}, f"{station.id}: entered only at the entry {queue[0]}"
            for behind, cell in zip(line, line[1:]):
                assert sources(cell) == {behind}, f"{station.id}: {cell} entered from elsewhere than {behind}"
            assert targets(working) == {inward[working]}, f"{station.id}: {working} is left only into the grid"
            for cell in queue:  # up the line, or out sideways (a faulted robot ahead does not lock it in)
                assert targets(cell) == {line[line.index(cell) + 1], inward[cell]}, f"{station.id}: {cell}"


@pytest.mark.parametrize("oriented", [False, True])
def test_prefetch_searches_the_tables_one_search_at_a_time_would(oriented: bool):
    alone, batched = Grid.from_map(ROOM), Grid.from_map(ROOM)
    goals = [int(g) for g in alone.free_cells()]
    batched.prefetch(goals + [goals[0]], oriented, guided=True)
    assert len(batched._tables) == len(goals)  # searched in the batch, not left to `distances`
    for goal in goals:
        assert np.array_equal(batched.distances(goal, oriented, guided=True), alone.distances(goal, oriented, guided=True))
    # A blocked goal is left to `distances`, which knows it unreachable.
    wall = batched.index(Cell(1, 1))
    batched.prefetch([0, wall], oriented, guided=True)
    assert (batched.distances(wall, oriented) == UNREACHABLE).all()


def test_the_table_cache_stays_under_its_cap_with_what_was_derived_from_the_tables():
    one = Grid.from_map(ROOM).distances(0, oriented=True, guided=True).nbytes
    grid = Grid(ROOM, Grid.from_map(ROOM).passable, cache_bytes=3 * one)
    for goal in grid.free_cells():
        grid.reaches(int(goal), oriented=True)
        grid.cell_distance_list(int(goal), oriented=True, guided=True)
        assert grid._cached_bytes <= 3 * one + one
        # What was derived from a table goes with it.
        assert grid._reach.keys() <= grid._tables.keys() and grid._cell_tables.keys() <= grid._tables.keys()
    last = int(grid.free_cells()[-1])
    # What is still cached answers as a fresh search would.
    assert list(grid.cell_distance_list(last, True, True)) == Grid.from_map(ROOM).distances(last, True, True).min(axis=1).tolist()


def test_search_from_seeds_takes_the_cheapest_seed_plus_its_offset():
    line = floor(".......")
    grid = Grid.from_map(line)
    cost = np.full((grid.size, 4), 2, dtype=np.int32)
    table = grid.search([1, 5], [0, 3], cost, oriented=False)
    assert table.tolist() == [2, 0, 2, 4, 5, 3, 5]  # cell 4: seed 1 costs 6, seed 5 costs 2 + 3
    states = grid.search([5 * 4 + Heading.WEST], [1], cost, oriented=True)
    assert states[6, Heading.WEST] == 3 and states[6, Heading.EAST] == 5  # two turns, then one move
    assert grid.search([], [], cost, oriented=False).min() == UNREACHABLE


def test_prefetch_from_several_threads_at_once_keeps_the_process_and_the_tables():
    """Each fleet runtime plans in its own thread. numba's workqueue threading layer (its
    choice where OpenMP and TBB are missing) kills the process when two parallel searches
    start at once, so they must take turns: run under that layer, in a process of its own."""
    script = textwrap.dedent("""
        import threading
        import numpy as np
        from maps import load_map
        from fleet.traffic.grid import Grid
        kiva = load_map("maps/kiva.toml")
        grids = [Grid.from_map(kiva) for _ in range(4)]
        goals = [int(g) for g in grids[0].free_cells()[::3]]
        threads = [threading.Thread(target=g.prefetch, args=(goals, True, True)) for g in grids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(len(g._tables) == len(goals) for g in grids)  # each searched its batch
        alone = Grid.from_map(kiva)
        for goal in goals[::10]:
            expected = alone.distances(goal, True, True)
            assert all(np.array_equal(g.distances(goal, True, True), expected) for g in grids)
        print("tables agree")
    """)
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120,
                          env=os.environ | {"NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": str(root)})
    assert done.returncode == 0 and "tables agree" in done.stdout, done.stderr[-2000:]


def test_two_lane_roads_keep_right_and_leave_one_wide_aisles_their_lanes():
    road = floor(
        "#########",
        ".........",
        ".........",
        "####.####",
        "####.####",
        ".........",
    )
    grid = Grid.from_map(road)
    lanes = grid.two_lane_roads().reshape(road.height, road.width)
    off_the_junction = [1, 2, 3, 5, 6, 7]  # where the aisle joins (x = 4) traffic turns both ways
    assert set(lanes[1, off_the_junction]) == {int(Heading.WEST)}
    assert set(lanes[2, off_the_junction]) == {int(Heading.EAST)}
    assert lanes[3, 4] == grid.lanes[grid.index(Cell(4, 3))] >= 0  # the one-wide aisle keeps its lane
    driven = grid.one_way((), grid.two_lane_roads())
    upper, lower = grid.index(Cell(3, 1)), grid.index(Cell(3, 2))
    assert {h for h, _ in driven.moves[upper]} == {Heading.WEST, Heading.SOUTH}  # on, or over to the other lane
    assert {h for h, _ in driven.moves[lower]} == {Heading.EAST, Heading.NORTH}
