"""A mixed fleet: robots on MQTT (VDA 5050 vehicles through the master link and a real
Mosquitto broker), robots on serial lines (over real pseudo-terminals) and robots in
process share one map under ONE motion control and traffic control, through one
FleetLink. The emulator, an independent witness, counts collisions and laser stops.

All the robots live in one emulated world, on a wall clock sped up SPEED times (the
wires' timers stay real, only the robots drive faster); the fleet shares that clock, as
the world is stepped in wall time by its own thread, the way `fleet emulate` runs it.
"""

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
from drivers.vda5050.link import Vda5050Link
from drivers.vda5050.mqtt import TopicLayout, VehicleId
from firmware_emulator.serial_front import SerialFloor, SerialLines
from firmware_emulator.vda5050_vehicle import MANUFACTURER, MqttFloor
from firmware_emulator.world import World
from fleet.clock import SimulatedClock, WallClock
from fleet.motion import Errand, MotionControl, Outcome
from fleet.traffic.control import TrafficControl
from maps import CellKind, Heading, shipped_map

#: Robots' (and the fleet's) seconds per wall second.
SPEED = 6.0
#: The serial protocol's timers, doubled for lost and watchdog: on a shared, loaded
#: machine a process can be starved for a second, and a robot presumed lost mid-errand is
#: another test (tests/test_serial_emulator.py) than this one.
PATIENT = LinkSettings(watchdog=2.0, lost_after=2.0)
#: This test's own interface name on the session's broker: other tests' vehicles are not ours.
LAYOUT = TopicLayout(interface_name="mixedfleet")


class LockedLink(RobotLink):
    """Commands to in-process robots under the world's lock: the world steps on its own
    thread, and the serial and MQTT robots apply their commands from theirs."""

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


class Floor:
    """One world; its robots on MQTT, on serial lines or in process; one lock for all."""

    def __init__(self, mqtt_url: str, mqtt: list[str], serial: list[str], inprocess: list[str]) -> None:
        self.world = World(shipped_map("demo"), WallClock(SPEED), seed=7)
        for robot_id, cell in zip(mqtt + serial + inprocess, self.world.map.cells_of(CellKind.PARKING)):
            self.world.add_robot(robot_id, cell, Heading.NORTH)
        self.lines = SerialLines("pty", serial)
        self.serial = SerialFloor(self.world, self.lines.robot_ports)
        self.mqtt = MqttFloor(self.world, mqtt_url, robot_ids=mqtt, state_interval=2.0, layout=LAYOUT)
        self.lock = self.mqtt.lock = self.serial.lock  # one world: one lock, whatever wire a command came by
        self._stop = threading.Event()
        self._runner = threading.Thread(target=self.mqtt.run, kwargs={"stop": self._stop}, daemon=True)

    def start(self) -> None:
        self.serial.start()
        assert self.mqtt.start(10), "the vehicles did not connect to the broker"
        self._runner.start()

    def close(self) -> None:
        self._stop.set()
        if self._runner.is_alive():
            self._runner.join(5)
        self.mqtt.close()
        self.serial.close()
        self.lines.close()


MQTT = ["m0", "m1"]
SERIAL = ["s0", "s1"]
INPROCESS = ["p0", "p1"]


def test_mqtt_serial_and_in_process_robots_move_shelves_under_one_traffic_control(mqtt_url) -> None:
    floor = Floor(mqtt_url, MQTT, SERIAL, INPROCESS)
    world, wmap, clock = floor.world, floor.world.map, floor.world.clock
    robots = MQTT + SERIAL + INPROCESS
    links: list[RobotLink] = []
    try:
        floor.start()
        serial = SerialLink([SerialRobot(r, PortSettings(floor.lines.master_urls[r])) for r in SERIAL], clock, PATIENT)
        links.append(serial)
        vda = Vda5050Link(mqtt_url, wmap, vehicles=[VehicleId(MANUFACTURER, r) for r in MQTT], adopt=False,
                          clock=clock, layout=LAYOUT)
        links.append(vda)
        assert vda.start(10)
        inprocess = LockedLink(InProcessLink(world), floor.lock)
        links.append(inprocess)
        link = FleetLink({**{r: vda for r in MQTT}, **{r: serial for r in SERIAL}, **{r: inprocess for r in INPROCESS}})
        deadline = time.monotonic() + 10
        while not (all(serial.online(r) for r in SERIAL) and all(vda.session(r).cell is not None for r in MQTT)):
            assert time.monotonic() < deadline, "the serial robots or the vehicles did not report"
            link.drain()  # what they said on connecting, before motion control looks
            time.sleep(0.05)
        link.drain()
        motion = MotionControl(link, TrafficControl(wmap, rotation=True, seed=7))
        for robot_id in robots:
            unit = world.robots[robot_id]
            motion.add_robot(robot_id, unit.cell, Heading.NORTH)

        homes = random.Random(7).sample(wmap.cells_of(CellKind.STORAGE), len(robots))
        stations = [c for s in wmap.stations for c in s.working]
        queue = {}
        for i, (robot_id, home) in enumerate(zip(robots, homes)):
            shelf = world.stored_shelf_at(home)
            queue[robot_id] = [
                Errand(f"fetch-{robot_id}", home, (CellAction(f"lift-{robot_id}", ActionKind.LIFT, shelf),)),
                Errand(f"present-{robot_id}", stations[i % len(stations)],
                       (CellAction(f"pick-{robot_id}", ActionKind.WAIT, duration=2.0),)),
                Errand(f"return-{robot_id}", home, (CellAction(f"lower-{robot_id}", ActionKind.LOWER, shelf),)),
            ]
        for robot_id in robots:
            motion.assign(robot_id, queue[robot_id].pop(0))
        reports = []
        deadline = time.monotonic() + 35
        while any(queue.values()) or any(m.errand for m in motion.robots.values()):
            assert time.monotonic() < deadline, f"{len(reports)} of {3 * len(robots)} errands after 35 s"
            for report in motion.tick(clock.now()):
                reports.append(report)
                if queue[report.robot_id]:
                    motion.assign(report.robot_id, queue[report.robot_id].pop(0))
            time.sleep(0.05)
    finally:
        for opened in links:
            opened.close()
        floor.close()

    assert [r for r in reports if r.outcome is not Outcome.DONE] == []
    assert sorted(r.errand_id for r in reports) == sorted(
        f"{kind}-{r}" for r in robots for kind in ("fetch", "present", "return"))
    assert world.collisions == []
    assert world.laser_stops == 0
    for robot_id, home in zip(robots, homes):
        assert world.stored_shelf_at(home) is not None, f"shelf of {robot_id} is not back home"
        assert motion.robots[robot_id].cell == home
    # the robots' events came over their wires
    assert serial.counters("s0")["delivered"] > 0
    assert vda.mqtt.received > 0 and vda.mqtt.dropped == {}, vda.mqtt.last_drop


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
    with pytest.raises(ValueError, match="at least one link"):
        FleetLink({})


def test_a_robot_adopted_later_is_routed_to_its_link_and_no_other() -> None:
    """An MQTT link learns its vehicles as they come ONLINE: the fleet link starts with the
    link and no robot, and routes each robot once it is known; an id already carried by
    another link is refused."""
    wmap = shipped_map("demo")
    world = World(wmap, SimulatedClock(), seed=1)
    world.add_robot("a", wmap.cells_of(CellKind.PARKING)[0], Heading.NORTH)
    early, later = InProcessLink(world), InProcessLink(world)
    link = FleetLink({}, [later])
    world.robots["a"].report_status()
    assert link.drain() == []  # nobody routed: nobody's events
    link.route("a", later)
    world.robots["a"].report_status()
    assert [e.robot_id for e in link.drain()] == ["a"]
    assert link.link_of("a") is later
    link.route("a", later)  # again, to the same link: nothing changes
    with pytest.raises(ValueError, match="already routed to another link"):
        link.route("a", early)
