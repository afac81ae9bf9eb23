"""Traffic control as the single authority: exclusive cells, progress under delays.

The executor here moves robots one granted cell at a time with random delays, as real
robots would be late, and checks the physical rule on every move: nobody enters a cell
another robot stands on or holds. Liveness: every robot reaches every goal it is given.
"""

import random
from typing import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from fleet.traffic.control import TrafficControl, TrafficError
from fleet.traffic.grid import Grid
from maps import Cell, CellKind, Heading, parse_map
from traffic_kit import floor

RING = """name = "ring"
layout = '''
#########
#.......#
#.#####.#
#.......#
#W#######
'''
[[stations]]
id = "p"
kind = "pick"
working = [1, 4]
queue = []
operator_side = "south"
"""


def _run(tc: TrafficControl, goals: dict[str, list[Cell]], rng: random.Random, p_move: float,
         max_rounds: int, stalled: dict[str, tuple[int, int]] | None = None,
         watch: Callable[[str, Cell, Cell], None] | None = None) -> dict[str, int]:
    """Drive robots through their goal lists; returns rounds each needed; asserts safety.
    `watch(robot, from, to)` sees every move."""
    pending = {r: list(g) for r, g in goals.items()}
    for r, g in pending.items():
        tc.set_goal(r, g.pop(0))
    done_at: dict[str, int] = {}
    for rnd in range(max_rounds):
        for robot_id, (start, end) in (stalled or {}).items():
            tc.set_stopped(robot_id, start <= rnd < end)
        tc.plan()
        for r in sorted(pending, key=lambda _: rng.random()):
            held = tc.held_cells(r)
            if tc.robot(r).stopped or len(held) < 2 or rng.random() > p_move:
                continue
            cell = held[1]
            holder = tc.holder(cell)
            assert holder == r, f"{r} entering {cell} held by {holder}"
            for other in goals:
                if other != r:
                    assert tc.position(other) != cell, f"{r} drove into {other} at {cell}"
            if watch:
                watch(r, held[0], cell)
            tc.reached(r, cell, Heading.between(held[0], cell))
        for r in list(pending):
            if tc.arrived(r):
                if pending[r]:
                    tc.set_goal(r, pending[r].pop(0))
                elif r not in done_at:
                    done_at[r] = rnd
        if len(done_at) == len(goals):
            return done_at
    raise AssertionError(f"not everyone arrived in {max_rounds} rounds: {sorted(set(goals) - set(done_at))}")


def test_head_on_in_a_one_wide_ring_resolves():
    wmap = parse_map(RING)
    tc = TrafficControl(wmap, rotation=True, window=3, max_ahead=3)
    tc.add_robot("a", Cell(1, 1), Heading.EAST)
    tc.add_robot("b", Cell(7, 1), Heading.WEST)
    _run(tc, {"a": [Cell(7, 1)], "b": [Cell(1, 1)]}, random.Random(0), 1.0, 200)


def test_cycle_of_four_robots_around_a_block_resolves():
    wmap = parse_map(RING)
    tc = TrafficControl(wmap, rotation=False, window=3, max_ahead=2)
    corners = [Cell(1, 1), Cell(7, 1), Cell(7, 3), Cell(1, 3)]
    for i, c in enumerate(corners):
        tc.add_robot(f"r{i}", c, Heading.EAST)
    goals = {f"r{i}": [corners[(i + 2) % 4]] for i in range(4)}
    _run(tc, goals, random.Random(1), 0.7, 400)


def test_a_stopped_robot_keeps_its_cells_and_others_route_around():
    wmap = parse_map(RING)
    tc = TrafficControl(wmap, rotation=False, window=3, max_ahead=3)
    tc.add_robot("faulty", Cell(4, 1), Heading.EAST)
    tc.add_robot("b", Cell(2, 1), Heading.EAST)
    tc.set_stopped("faulty", True)
    _run(tc, {"faulty": [Cell(4, 1)], "b": [Cell(6, 1)]}, random.Random(2), 1.0, 200)
    assert tc.holder(Cell(4, 1)) == "faulty"
    assert tc.position("b") == Cell(6, 1)


def test_unreachable_goal_is_reported_with_a_reason():
    wmap = parse_map(RING)
    tc = TrafficControl(wmap, rotation=False)
    tc.add_robot("a", Cell(1, 1), Heading.EAST)
    tc.block([Cell(7, 3)])
    tc.set_goal("a", Cell(7, 3))
    tc.plan()
    assert "blocked by the operator" in tc.robot("a").blocked_reason
    assert list(tc.blocked()) == ["a"]


def test_a_loaded_robot_sent_onto_a_standing_shelf_is_blocked_until_it_is_lifted():
    """Traffic control keeps a loaded robot out of shelf cells but its goal; a goal with
    another shelf on it would be granted and never entered (a scheduler's mistake that
    gridlocked the medium floor once): it is reported instead."""
    tc = TrafficControl(floor("#######", "#.....#", "#.SSS.#", "#.....#", "#######"), rotation=False)
    tc.add_robot("loaded", Cell(1, 1), Heading.EAST)
    tc.add_robot("empty", Cell(5, 3), Heading.WEST)
    tc.set_loaded("loaded", True)
    tc.shelf_set_down(Cell(3, 2))
    for robot in ("loaded", "empty"):
        tc.set_goal(robot, Cell(3, 2))
    tc.plan()
    assert "another shelf standing on it" in tc.robot("loaded").blocked_reason
    assert tc.held_cells("loaded") == [Cell(1, 1)]
    assert tc.robot("empty").blocked_reason == ""  # it drives under the shelf
    tc.set_goal("empty", Cell(5, 3))
    tc.shelf_lifted(Cell(3, 2))
    tc.plan()
    assert tc.robot("loaded").blocked_reason == "" and len(tc.held_cells("loaded")) > 1


def test_misuse_is_refused_clearly():
    wmap = parse_map(RING)
    tc = TrafficControl(wmap)
    tc.add_robot("a", Cell(1, 1), Heading.EAST)
    with pytest.raises(TrafficError, match="reserved by"):
        tc.add_robot("b", Cell(1, 1), Heading.EAST)
    with pytest.raises(TrafficError, match="unknown robot"):
        tc.set_goal("ghost", Cell(1, 1))
    with pytest.raises(TrafficError, match="not traversable"):
        tc.set_goal("a", Cell(0, 0))
    with pytest.raises(TrafficError, match="outside"):
        tc.set_goal("a", Cell(99, 1))
    with pytest.raises(TrafficError, match="not granted"):
        tc.reached("a", Cell(5, 3), Heading.EAST)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), robots=st.integers(4, 14), p_move=st.floats(0.3, 1.0),
       rotation=st.booleans())
@example(seed=4181, robots=12, p_move=0.9663703562148023, rotation=False)  # a detour let go too soon, r0 never arrived
def test_random_errands_with_random_delays_never_collide_and_always_finish(seed, robots, p_move, rotation):
    wmap = _small_warehouse()
    rng = random.Random(seed)
    free = [c for c in wmap.cells() if wmap.traversable(c)]
    starts = rng.sample(free, robots)
    tc = TrafficControl(wmap, rotation=rotation, window=3, max_ahead=3, seed=seed)
    for i, c in enumerate(starts):
        tc.add_robot(f"r{i}", c, Heading(rng.randrange(4)))
    # distinct goals: the scheduler never sends two robots to rest on one cell
    cells = rng.sample(free, 3 * robots)
    goals = {f"r{i}": cells[3 * i: 3 * i + 3] for i in range(robots)}
    stalled = {"r0": (5, 25)}  # one robot stops for a while mid-run
    _run(tc, goals, rng, p_move, 3000, stalled)


AISLES = """name = "aisles"
layout = '''
###########
#.........#
#.SSSSSSS.#
#.........#
#.SSSSSSS.#
#.........#
#.SSSSSSS.#
#.........#
#W........#
###########
'''
[[stations]]
id = "p"
kind = "pick"
working = [1, 8]
queue = []
operator_side = "south"
"""


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), p_move=st.floats(0.5, 1.0))
def test_loaded_robots_drive_the_aisles_between_shelves_one_way_only(seed, p_move):
    """Two loaded robots head-on in a one-wide aisle cannot pass (shelves beside them,
    queues behind them): the aisles run one way for loaded robots, alternating."""
    wmap = parse_map(AISLES)
    grid = Grid.from_map(wmap)
    storage = wmap.cells_of(CellKind.STORAGE)
    lanes = grid.without([grid.index(c) for c in storage]).lanes
    rng = random.Random(seed)
    tc = TrafficControl(wmap, rotation=True, window=3, max_ahead=3, seed=seed)
    robots = [f"r{i}" for i in range(6)]
    free = [c for c in wmap.cells() if wmap.kind(c) == CellKind.AISLE]
    for r, c in zip(robots, rng.sample(free, len(robots))):
        tc.add_robot(r, c, Heading(rng.randrange(4)))
        tc.set_loaded(r, True)
    targets = rng.sample(storage, 3 * len(robots))  # shelves are set down on storage cells
    against: list[str] = []

    def watch(robot: str, here: Cell, there: Cell) -> None:
        way = int(Heading.between(here, there))
        for cell in (here, there):
            lane = lanes[grid.index(cell)]
            if lane >= 0 and lane == (way + 2) % 4:
                against.append(f"{robot} {here}->{there} against the aisle's {Heading(lane).name}")

    _run(tc, {r: targets[3 * i: 3 * i + 3] for i, r in enumerate(robots)}, rng, p_move, 3000, watch=watch)
    assert len({int(lanes[grid.index(Cell(x, 3))]) for x in range(2, 9)}) == 1  # one direction per aisle
    assert against == []


def _small_warehouse():
    return parse_map(SMALL)


SMALL = """name = "small"
layout = '''
############
#..........#
#.SS.SS.SS.#
#..........#
#.SS.SS.SS.#
#..........#
#W.........#
############
'''
[[stations]]
id = "p"
kind = "pick"
working = [1, 6]
queue = []
operator_side = "south"
"""


@pytest.mark.parametrize("seed", range(6))
def test_a_robot_is_never_granted_cells_past_the_goal_it_reaches(seed):
    """Reaching its goal inside the planning window, a robot became the one to push aside
    and was granted cells beyond it: it drove over its goal without stopping (its errand,
    a lift, never ran), back and forth, for good (medium map, 120 robots)."""
    wmap = _small_warehouse()
    rng = random.Random(seed)
    free = [c for c in wmap.cells() if wmap.traversable(c)]
    tc = TrafficControl(wmap, rotation=True, window=3, max_ahead=3, seed=seed)
    robots = [f"r{i}" for i in range(14)]
    for r, c in zip(robots, rng.sample(free, len(robots))):
        tc.add_robot(r, c, Heading.EAST)
    for r in robots:
        tc.set_goal(r, rng.choice(free))
    passed = []
    for _ in range(150):
        tc.plan()
        for r in robots:
            held, goal = tc.held_cells(r), tc.robot(r).goal
            if goal in held[1:] and held[-1] != goal:
                passed.append((r, held, goal))
            if len(held) > 1 and rng.random() < 0.8:
                tc.reached(r, held[1], Heading.between(held[0], held[1]))
            elif tc.arrived(r):
                tc.set_goal(r, rng.choice([c for c in free if tc.holder(c) is None]))
    assert not passed, f"granted past the goal: {passed[:3]}"


def test_the_way_ahead_keeps_a_loaded_robot_off_shelf_cells():
    """The horizon a link announces follows the floor the robot is planned on: an empty
    robot drives straight under the shelves, a loaded one around them."""
    wmap = parse_map(AISLES)
    storage = set(wmap.cells_of(CellKind.STORAGE))
    tc = TrafficControl(wmap, rotation=True, seed=0)
    tc.add_robot("a", Cell(5, 1), Heading.SOUTH)
    tc.set_goal("a", Cell(5, 7))
    under = tc.way_ahead("a", 6)
    assert under[:6] == [Cell(5, y) for y in range(2, 8)]  # straight down, under three shelves
    tc.set_loaded("a", True)
    around = tc.way_ahead("a", 20)
    assert around and around[-1] == Cell(5, 7) and not storage & set(around)
    assert len(tc.way_ahead("a", 3)) <= 3
