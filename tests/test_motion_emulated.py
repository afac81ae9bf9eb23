"""Motion control end to end: traffic control drives emulated robots over the in-process
link, and the emulator, an independent witness, counts collisions and laser stops."""

import random

import pytest

from drivers.commands import ActionKind, CellAction
from drivers.inprocess import InProcessLink
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from fleet.motion import Errand, MotionControl, Outcome
from fleet.traffic.control import TrafficControl
from maps import Cell, CellKind, Heading, shipped_map


def _fleet(robots: int, seed: int):
    wmap = shipped_map("demo")
    clock = SimulatedClock()
    world = World(wmap, clock, seed=seed)
    link = InProcessLink(world)
    motion = MotionControl(link, TrafficControl(wmap, rotation=True, seed=seed))
    for i, cell in enumerate(wmap.cells_of(CellKind.PARKING)[:robots]):
        world.add_robot(f"r{i}", cell, Heading.NORTH)
        motion.add_robot(f"r{i}", cell, Heading.NORTH)
    return wmap, clock, world, motion


def _run(clock, motion, errands, limit, period=0.25):
    """Give each robot its errands one after the other; returns every report."""
    queue = {r: list(e) for r, e in errands.items()}
    for r, e in queue.items():
        if e:
            motion.assign(r, e.pop(0))
    reports = []
    while clock.now() < limit and (any(queue.values()) or any(m.errand for m in motion.robots.values())):
        clock.advance(period)
        for report in motion.tick(clock.now()):
            reports.append(report)
            if queue[report.robot_id]:
                motion.assign(report.robot_id, queue[report.robot_id].pop(0))
    return reports


def test_robots_run_random_errands_without_collision_or_laser_stop():
    wmap, clock, world, motion = _fleet(robots=12, seed=3)
    rng = random.Random(3)
    aisles = wmap.cells_of(CellKind.AISLE)
    goals = rng.sample(aisles, 12 * 3)
    errands = {f"r{i}": [Errand(f"e{i}-{k}", goals[3 * i + k]) for k in range(3)] for i in range(12)}
    reports = _run(clock, motion, errands, limit=900.0)
    assert [r for r in reports if r.outcome is not Outcome.DONE] == []
    assert len(reports) == 36, f"only {len(reports)} of 36 errands finished by t={clock.now()}"
    assert world.collisions == []
    assert world.laser_stops == 0
    for i in range(12):
        assert motion.robots[f"r{i}"].cell == goals[3 * i + 2]


def test_errand_actions_run_at_the_goal_and_the_robot_lifts_the_shelf():
    wmap, clock, world, motion = _fleet(robots=1, seed=1)
    shelf_cell = wmap.cells_of(CellKind.STORAGE)[0]
    shelf_id = world.stored_shelf_at(shelf_cell)
    lift = CellAction("lift-1", ActionKind.LIFT, shelf_id=shelf_id)
    reports = _run(clock, motion, {"r0": [Errand("fetch", shelf_cell, (lift,))]}, limit=300.0)
    assert [(r.errand_id, r.outcome) for r in reports] == [("fetch", Outcome.DONE)]
    assert motion.robots["r0"].shelf_id == shelf_id
    assert world.collisions == []


def test_a_driving_robot_can_be_redirected_and_ends_at_the_new_goal():
    wmap, clock, world, motion = _fleet(robots=1, seed=2)
    aisles = wmap.cells_of(CellKind.AISLE)
    first, second = aisles[-1], aisles[len(aisles) // 2]
    motion.assign("r0", Errand("go", first))
    for _ in range(8):
        clock.advance(0.25)
        motion.tick(clock.now())
    motion.redirect("r0", second)
    reports = _run(clock, motion, {"r0": []}, limit=300.0)
    assert [(r.errand_id, r.outcome) for r in reports] == [("go", Outcome.DONE)]
    assert motion.robots["r0"].cell == second


def test_loaded_robots_carry_shelves_to_stations_and_back_through_free_aisles():
    """Six robots each take a shelf from deep inside the storage blocks to a station and
    back home. Unloaded they may drive under shelves; loaded they must not, and the
    emulator would see it (laser stop in front of a shelf, or a collision)."""
    wmap, clock, world, motion = _fleet(robots=6, seed=5)
    rng = random.Random(5)
    shelves = rng.sample(wmap.cells_of(CellKind.STORAGE), 6)
    stations = [c for s in wmap.stations for c in s.working]
    errands = {}
    for i, home in enumerate(shelves):
        shelf_id = world.stored_shelf_at(home)
        errands[f"r{i}"] = [
            Errand(f"fetch{i}", home, (CellAction(f"lift{i}", ActionKind.LIFT, shelf_id=shelf_id),)),
            Errand(f"present{i}", stations[i % len(stations)], (CellAction(f"pick{i}", ActionKind.WAIT, duration=3.0),)),
            Errand(f"return{i}", home, (CellAction(f"lower{i}", ActionKind.LOWER, shelf_id=shelf_id),)),
        ]
    reports = _run(clock, motion, errands, limit=1200.0)
    assert [r for r in reports if r.outcome is not Outcome.DONE] == []
    assert len(reports) == 18, f"{len(reports)} of 18 errands by t={clock.now()}"
    assert world.collisions == []
    assert world.laser_stops == 0
    for i, home in enumerate(shelves):
        assert world.stored_shelf_at(home) is not None, f"shelf of r{i} is not back home"
        assert motion.robots[f"r{i}"].shelf_id is None


def test_a_paused_robot_keeps_its_cells_and_is_granted_no_more():
    from drivers.commands import InstantCommand, InstantKind

    wmap, clock, world, motion = _fleet(robots=1, seed=4)
    motion.assign("r0", Errand("far", wmap.cells_of(CellKind.AISLE)[-1]))
    for _ in range(6):
        clock.advance(0.25)
        motion.tick(clock.now())
    motion.link.instant("r0", InstantCommand(InstantKind.PAUSE))
    motion.robots["r0"].paused = True
    clock.advance(0.25)
    motion.tick(clock.now())
    held = motion.traffic.held_cells("r0")
    for _ in range(40):
        clock.advance(0.25)
        motion.tick(clock.now())
        assert set(motion.traffic.held_cells("r0")) <= set(held), "a paused robot was granted more cells"
    motion.link.instant("r0", InstantCommand(InstantKind.RESUME))
    motion.robots["r0"].paused = False
    reports = _run(clock, motion, {"r0": []}, limit=clock.now() + 300.0)
    assert [(r.errand_id, r.outcome) for r in reports] == [("far", Outcome.DONE)]


def _straight(wmap):
    """An aisle cell with two aisle cells on either side of it along its row."""
    aisles = set(wmap.cells_of(CellKind.AISLE))
    return next(c for c in wmap.cells_of(CellKind.AISLE)
                if all(Cell(c.x + dx, c.y) in aisles for dx in (-2, -1, 1, 2)))


@pytest.mark.parametrize("held", [True, False])
def test_a_held_robot_is_not_pushed_aside_by_one_passing(held):
    """Between errands a robot rests on its goal with the lowest priority, and one passing
    pushes it aside. Held (a shelf being worked at a port, a robot on a charger) it stays
    put, pinned like a robot busy lifting: the other waits, and passes once the hold is
    released. Unheld, the same run pushes it at once: the test can tell the two apart."""
    wmap, clock, world, motion = _fleet(robots=0, seed=4)
    middle = _straight(wmap)
    for robot_id, cell in (("resting", middle), ("passing", Cell(middle.x - 2, middle.y))):
        world.add_robot(robot_id, cell, Heading.EAST)
        motion.add_robot(robot_id, cell, Heading.EAST)
    motion.hold("resting", held)
    goal = Cell(middle.x + 2, middle.y)
    motion.assign("passing", Errand("pass", goal))

    def run(until: float) -> set:
        cells = set()
        while motion.robots["passing"].errand is not None and clock.now() < until:
            clock.advance(0.25)
            motion.tick(clock.now())
            cells.add(world.robot("resting").cell)
        return cells

    first = run(30.0)
    assert (first == {middle}) is held, first
    motion.hold("resting", False)
    run(150.0)
    assert motion.robots["passing"].cell == goal
    assert world.collisions == []


def test_a_robot_is_not_pushed_aside_in_the_cycle_its_errand_ends():
    """A robot presents a shelf on (10, 1) (a wait action) while another, on its way east,
    comes up behind it and waits: the one presenting is busy, so it stays put. When its
    errand ends, whoever gave it has not heard yet; hearing, it holds the robot there (the
    operator is still picking). In between lies one plan, in which the robot rests on its
    goal with the lowest priority there is: it must stay pinned for that plan too, or the
    one waiting behind pushes it off the cell before the hold comes."""
    wmap, clock, world, motion = _fleet(robots=0, seed=4)
    spot, behind = Cell(10, 1), Cell(9, 1)
    for robot_id, cell in (("presenting", spot), ("passing", Cell(4, 1))):
        world.add_robot(robot_id, cell, Heading.EAST)
        motion.add_robot(robot_id, cell, Heading.EAST)
    motion.assign("presenting", Errand("present", spot, (CellAction("pick", ActionKind.WAIT, duration=10.0),)))
    motion.assign("passing", Errand("pass", Cell(13, 1)))
    ended = None
    while ended is None and clock.now() < 30.0:
        clock.advance(0.25)
        for report in motion.tick(clock.now()):
            if report.robot_id == "presenting":
                ended = report
                motion.hold("presenting")
    assert ended is not None and ended.outcome is Outcome.DONE, ended
    assert world.robot("passing").cell == behind, "the test needs the other robot waiting right behind"
    assert motion.traffic.held_cells("presenting") == [spot], "granted a way off the cell it presents on"
    for _ in range(40):
        clock.advance(0.25)
        motion.tick(clock.now())
        assert world.robot("presenting").cell == spot
    assert world.collisions == []
