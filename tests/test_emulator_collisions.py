"""The world as an independent witness: collisions on true geometry, the turntable, the laser."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.commands import ActionKind, InstantCommand, InstantKind
from drivers.events import ErrorCleared, ErrorRaised, JobFinished
from emulator_kit import Bench, act, job, line
from firmware_emulator.geometry import close_pairs, rectangles_overlap
from firmware_emulator.profile import RobotProfile
from maps import Cell, Heading

NO_LASER = RobotProfile(laser_range_m=0.0)


def test_two_robots_commanded_into_the_same_cell_collide_and_stop() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("a", Cell(2, 2), Heading.EAST)
    world.add_robot("b", Cell(5, 5), Heading.NORTH)
    world.send_job("a", job("ja", line(2, 2, 5, 2)))
    world.send_job("b", job("jb", line(5, 5, 5, 2)))
    bench.run(10)
    assert len(world.collisions) == 1
    hit = world.collisions[0]
    assert hit.kind == "robot" and set(hit.robots) == {"a", "b"}
    assert hit.cell in (Cell(5, 2), Cell(4, 2), Cell(5, 3), Cell(4, 3))
    for robot_id in "ab":
        unit = world.robot(robot_id)
        assert world.v[unit.index] == 0.0
        assert "collision" in [e.code for e in unit.status().errors]
    assert not bench.of(JobFinished)
    # the contact lasts but is one collision, not one per step
    bench.run(5)
    assert len(world.collisions) == 1


def test_an_unloaded_robot_drives_under_stored_shelves_without_collision() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(1, 4), Heading.EAST)
    world.send_job("r", job("j", line(1, 4, 10, 4)))  # under the six shelves of row 4
    bench.run(15)
    assert bench.last(JobFinished, "r") is not None
    assert world.collisions == [] and world.laser_stops == 0


def test_a_loaded_robot_is_stopped_by_its_laser_before_a_stored_shelf() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(8, 4), Heading.WEST)
    world.send_job("r", job("j", [Cell(8, 4), Cell(9, 4)], actions={0: [act(ActionKind.LIFT, "up")]}))
    bench.run(8)
    assert world.shelf("shelf-8-4").carried_by == "r" and world.robot("r").cell == Cell(9, 4)
    world.send_job("r", job("k", line(9, 4, 5, 4)))  # through (7, 4) where a shelf stands
    bench.run(15)
    assert world.collisions == []
    assert world.laser_stops == 1
    assert "obstacle" in [e.code for e in world.robot("r").status().errors]
    assert bench.last(JobFinished, "r").job_id == "j"
    # the carried shelf stopped short of the stored one by about the laser stand-off
    carried, stored = world.shelf("shelf-8-4"), world.shelf("shelf-7-4")
    gap = carried.x - stored.x - 0.96
    assert 0.0 < gap <= 0.2


@pytest.mark.parametrize("counter_rotation", [True, False])
def test_turning_a_loaded_robot_between_stored_shelves(counter_rotation: bool) -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("r", Cell(5, 4), Heading.EAST, RobotProfile(counter_rotation=counter_rotation))
    # lift the middle shelf of the row, then turn north in place: shelves stand east and west
    world.send_job("r", job("j", [Cell(5, 4), Cell(5, 4)], actions={0: [act(ActionKind.LIFT, "up")]},
                            headings={1: Heading.NORTH}))
    bench.run(6)
    shelf = world.shelf("shelf-5-4")
    if counter_rotation:
        assert world.robot("r").heading is Heading.NORTH
        # the body turned, the shelf stood still: no sweep into the neighbours
        assert shelf.theta == pytest.approx(0.0)
        assert world.collisions == []
        assert bench.last(JobFinished, "r") is not None
    else:
        # the shelf turned with the body; its corners (0.68 m from the centre) swept into
        # the shelves 1 m away east and west before the robot stopped
        assert shelf.theta != pytest.approx(0.0)
        assert len(world.collisions) >= 1
        assert all(c.kind == "shelf" and "shelf-5-4" in c.shelves for c in world.collisions)
        assert {s for c in world.collisions for s in c.shelves} & {"shelf-4-4", "shelf-6-4"}
        assert bench.last(JobFinished, "r") is None  # the collision stopped it mid-turn
        assert 0 < abs(float(world.theta[0])) < math.pi / 2


PILLAR = """
#########
#.......#
#...#...#
#.......#
#W......#
#########
"""


@pytest.mark.parametrize("start, end, heading", [
    (Cell(1, 2), Cell(7, 2), Heading.EAST), (Cell(7, 2), Cell(1, 2), Heading.WEST),
    (Cell(4, 4), Cell(4, 1), Heading.NORTH), (Cell(4, 1), Cell(4, 4), Heading.SOUTH),
])
@pytest.mark.parametrize("profile, collides", [(RobotProfile(), False), (NO_LASER, True)])
def test_driving_at_a_blocked_cell(profile: RobotProfile, collides: bool, start: Cell, end: Cell,
                                   heading: Heading) -> None:
    bench = Bench(PILLAR)
    world = bench.world
    world.add_robot("r", start, heading, profile)
    world.send_job("r", job("j", line(*start, *end)))  # straight through the pillar at (4, 2)
    bench.run(10)
    if collides:
        assert [c.kind for c in world.collisions] == ["blocked"]
        assert world.collisions[0].cell == Cell(4, 2) and world.collisions[0].robots == ("r",)
        assert "collision" in [e.code for e in world.robot("r").status().errors]
    else:
        assert world.collisions == [] and world.laser_stops == 1
        # stands off the pillar's face by about the laser stand-off
        px, py = bench.map.position(Cell(4, 2))
        gap = math.hypot(px - float(world.x[0]), py - float(world.y[0])) - 0.5 - 0.4
        assert 0.0 < gap <= 0.2


@pytest.mark.parametrize("standing, path, aside", [
    (Cell(6, 2), line(1, 2, 9, 2), Cell(6, 1)),     # b drives east, a steps north
    (Cell(10, 4), line(10, 1, 10, 6), Cell(11, 4)),  # b drives south, a steps east
])
def test_laser_stops_behind_a_standing_robot_and_resumes_when_it_leaves(standing: Cell, path: list[Cell],
                                                                        aside: Cell) -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("a", standing, Heading.between(standing, aside))  # side-on to b, ready to leave
    world.add_robot("b", path[0], Heading.between(path[0], path[1]))
    world.send_job("b", job("jb", path))
    bench.run(8)
    assert world.laser_stops == 1 and world.v[1] == 0.0
    centres = math.hypot(float(world.x[0] - world.x[1]), float(world.y[0] - world.y[1]))
    gap = centres - 0.4 - 0.3  # b's front (0.4 from its centre) to a's side (0.3)
    assert 0.0 < gap <= 0.2
    raised = bench.last(ErrorRaised, "b")
    assert raised.code == "obstacle"
    world.send_job("a", job("ja", [standing, aside]))  # step aside
    bench.run(10)
    assert bench.last(JobFinished, "b") is not None
    assert bench.last(ErrorCleared, "b").code == "obstacle"
    assert world.collisions == [] and world.laser_stops == 1


def test_a_follower_keeps_its_distance_without_stopping() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("lead", Cell(3, 2), Heading.EAST)
    world.add_robot("follow", Cell(1, 2), Heading.EAST)
    world.send_job("lead", job("jl", line(3, 2, 12, 2)))
    world.send_job("follow", job("jf", line(1, 2, 10, 2)))
    bench.run(15)
    assert world.collisions == []
    assert bench.last(JobFinished, "lead") and bench.last(JobFinished, "follow")


def test_a_collision_needs_a_reset_and_is_counted_once() -> None:
    bench = Bench()
    world = bench.world
    world.add_robot("a", Cell(2, 2), Heading.EAST, NO_LASER)
    world.add_robot("b", Cell(6, 2), Heading.WEST, NO_LASER)
    world.send_job("a", job("ja", line(2, 2, 5, 2)))
    world.send_job("b", job("jb", line(6, 2, 3, 2)))
    bench.run(6)
    assert len(world.collisions) == 1
    world.instant("a", InstantCommand(InstantKind.RESET))
    assert "collision" not in [e.code for e in world.robot("a").status().errors]
    assert "collision" in [e.code for e in world.robot("b").status().errors]


def test_close_pairs_finds_exactly_the_close_pairs() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 30, 400), rng.uniform(-5, 20, 400)
    a, b = close_pairs(x, y, 1.4)
    found = set(zip(a.tolist(), b.tolist()))
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    expected = {(i, j) for i, j in zip(*np.nonzero(d < 1.4)) if i < j}
    assert found == expected and len(found) > 50


def test_rectangle_overlap_on_known_cases() -> None:
    one = np.array([1.0])
    half = np.array([0.48])
    # two shelves at adjacent cell centres: 4 cm apart, no overlap
    assert not rectangles_overlap(0 * one, 0 * one, half, half, 0 * one, one, 0 * one, half, half, 0 * one)[0]
    # the same, one turned by 45 degrees: its corner reaches 0.68 m, into the neighbour
    assert rectangles_overlap(0 * one, 0 * one, half, half, one * math.pi / 4, one, 0 * one, half, half, 0 * one)[0]
    # a robot body (0.4 x 0.3) turning at a cell centre never reaches a body in the next cell
    for angle in np.linspace(0, math.pi / 2, 19):
        assert not rectangles_overlap(0 * one, 0 * one, one * 0.4, one * 0.3, one * angle,
                                      one, 0 * one, one * 0.4, one * 0.3, 0 * one)[0]


TWO_ROWS = """
############
#..........#
#S.........#
#S.........#
#..........#
#W.........#
############
"""


def test_loaded_robots_in_adjacent_lanes_pass_each_other_untouched() -> None:
    """Carried shelves in neighbouring lanes are 4 cm apart: neither laser nor witness may react."""
    bench = Bench(TWO_ROWS)
    world = bench.world
    world.add_robot("a", Cell(1, 2), Heading.EAST)
    world.add_robot("b", Cell(1, 3), Heading.EAST)
    world.send_job("a", job("ja", line(1, 2, 10, 2), actions={0: [act(ActionKind.LIFT, "up")]}))
    world.send_job("b", job("jb", line(1, 3, 10, 3), actions={0: [act(ActionKind.LIFT, "up"),
                                                                  act(ActionKind.WAIT, "w", duration=0.7)]}))
    bench.run(20)
    assert bench.last(JobFinished, "a") and bench.last(JobFinished, "b")
    assert world.collisions == [] and world.laser_stops == 0
    gap = world.shelf("shelf-1-2").y - world.shelf("shelf-1-3").y - 0.96
    assert gap == pytest.approx(0.04)
