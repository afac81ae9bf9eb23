"""A mixed fleet: robots on serial lines (emulated, over real pseudo-terminals) and robots
in-process share one map under ONE motion control and traffic control, through one
FleetLink. The emulator, an independent witness, counts collisions and laser stops.

The wire lives in real time, so the world's simulated clock is advanced in step with the
wall clock (sped up: the protocol's timers stay real, only the robots move faster)."""

from __future__ import annotations

import random
import threading
import time
from typing import Sequence

import pytest

from drivers.commands import ActionKind, CellAction, InstantCommand, Job, Step
from drivers.events import RobotEvent, StatusReport
from drivers.fleet_link import FleetLink
from drivers.inprocess import InProcessLink
from drivers.link import RobotLink, UnknownRobot
from drivers.serial.link import LinkSettings, SerialLink, SerialRobot
from drivers.serial.port import PortSettings
from firmware_emulator.serial_front import SerialFloor, SerialLines
from firmware_emulator.world import World
from fleet.clock import SimulatedClock
from fleet.motion import Errand, MotionControl, Outcome
from fleet.traffic.control import TrafficControl
from maps import CellKind, Heading, shipped_map

#: Simulated seconds per wall second.
SPEED = 6.0
#: The protocol's timers, doubled for lost and watchdog: on a shared, loaded machine a
#: process can be starved for a second, and a robot presumed lost mid-errand is another
#: test (tests/test_serial_emulator.py) than this one.
PATIENT = LinkSettings(watchdog=2.0, lost_after=2.0)


class LockedLink(RobotLink):
    """Commands to in-process robots under the world's lock: the world steps on this
    thread, but the serial robots' ports apply their commands from their own threads."""

    def __init__(self, link: RobotLink, lock: threading.RLock) -> None:
        self.link, self.lock = link, lock

    def robot_ids(self) -> list[str]:
        return self.link.robot_ids()

    def send_job(self, robot_id: str, job: Job) -> None:
        with self.lock:
            self.link.send_job(robot_id, job)

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        with self.lock:
            self.link.extend_job(robot_id, job_id, steps)

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        with self.lock:
            self.link.instant(robot_id, command)

    def drain(self) -> list[RobotEvent]:
        with self.lock:
            return self.link.drain()
SERIAL = ["s0", "s1"]
INPROCESS = ["p0", "p1"]


def test_serial_and_in_process_robots_move_shelves_under_one_traffic_control() -> None:
    wmap = shipped_map("demo")
    clock = SimulatedClock()
    world = World(wmap, clock, seed=7)
    robots = SERIAL + INPROCESS
    for robot_id, cell in zip(robots, wmap.cells_of(CellKind.PARKING)):
        world.add_robot(robot_id, cell, Heading.NORTH)
    lines = SerialLines("pty", SERIAL)
    floor = SerialFloor(world, lines.robot_ports)
    floor.start()
    serial_link = SerialLink([SerialRobot(r, PortSettings(lines.master_urls[r])) for r in SERIAL], clock, PATIENT)
    inprocess = LockedLink(InProcessLink(world), floor.lock)
    link = FleetLink({**{r: serial_link for r in SERIAL}, **{r: inprocess for r in INPROCESS}})
    motion = MotionControl(link, TrafficControl(wmap, rotation=True, seed=7))
    for robot_id in robots:
        unit = world.robots[robot_id]
        motion.add_robot(robot_id, unit.cell, Heading.NORTH)

    rng = random.Random(7)
    homes = rng.sample(wmap.cells_of(CellKind.STORAGE), len(robots))
    stations = [s.working for s in wmap.stations]
    queue = {}
    for i, (robot_id, home) in enumerate(zip(robots, homes)):
        shelf = world.stored_shelf_at(home)
        queue[robot_id] = [
            Errand(f"fetch-{robot_id}", home, (CellAction(f"lift-{robot_id}", ActionKind.LIFT, shelf),)),
            Errand(f"present-{robot_id}", stations[i % len(stations)], (CellAction(f"pick-{robot_id}", ActionKind.WAIT, duration=2.0),)),
            Errand(f"return-{robot_id}", home, (CellAction(f"lower-{robot_id}", ActionKind.LOWER, shelf),)),
        ]
    reports = []
    seen_on_serial = set()
    try:
        deadline = time.monotonic() + 10
        while not all(serial_link.online(r) for r in SERIAL):
            assert time.monotonic() < deadline, "serial robots did not come online"
            time.sleep(0.01)
        for robot_id in robots:
            motion.assign(robot_id, queue[robot_id].pop(0))
        start = time.monotonic()
        while any(queue.values()) or any(m.errand for m in motion.robots.values()):
            assert clock.now() < 600, f"{len(reports)} of 12 errands by t={clock.now():.0f}"
            time.sleep(0.02)
            with floor.lock:  # the world is not thread-safe; its lock is held only to step it
                clock.advance_to(max(clock.now(), (time.monotonic() - start) * SPEED))
            for report in motion.tick(clock.now()):
                reports.append(report)
                if queue[report.robot_id]:
                    motion.assign(report.robot_id, queue[report.robot_id].pop(0))
            seen_on_serial |= {r for r in SERIAL if motion.robots[r].phase.value != "idle"}
    finally:
        link.close()
        floor.close()
        lines.close()

    assert [r for r in reports if r.outcome is not Outcome.DONE] == []
    assert sorted(r.errand_id for r in reports) == sorted(
        f"{kind}-{r}" for r in robots for kind in ("fetch", "present", "return"))
    assert world.collisions == []
    assert world.laser_stops == 0
    for robot_id, home in zip(robots, homes):
        assert world.stored_shelf_at(home) is not None, f"shelf of {robot_id} is not back home"
        assert motion.robots[robot_id].cell == home
    assert serial_link.counters("s0")["delivered"] > 0  # the serial robots' events came over the wire


def test_fleet_link_routes_commands_and_keeps_each_link_to_its_own_robots() -> None:
    wmap = shipped_map("demo")
    world = World(wmap, SimulatedClock(), seed=1)
    for robot_id, cell in zip(["a", "b"], wmap.cells_of(CellKind.PARKING)):
        world.add_robot(robot_id, cell, Heading.NORTH)
    first, second = InProcessLink(world), InProcessLink(world)
    link = FleetLink({"a": first, "b": second})
    world.robots["a"].report_status()
    world.robots["b"].report_status()
    drained = link.drain()
    # Both in-process links hear both robots; each speaks only for its own.
    assert sorted(e.robot_id for e in drained if isinstance(e, StatusReport)) == ["a", "b"]
    assert link.robot_ids() == ["a", "b"]
    with pytest.raises(UnknownRobot):
        link.link_of("c")
    with pytest.raises(ValueError, match="does not know it"):
        FleetLink({"c": first})
    with pytest.raises(ValueError, match="at least one robot"):
        FleetLink({})
