"""End to end over VDA 5050: the fleet's motion control and traffic control drive emulated
vehicles through the master RobotLink and a real Mosquitto broker.

Everything between the fleet and the robots is the wire: Vda5050Link (master) -> broker ->
MqttFloor (the emulated vehicles) -> drive units. The emulator's world is the independent
witness (collisions, laser stops); a recorder on the broker checks every message against
the official schemas. The world runs paced to a sped-up wall clock that the fleet shares.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import pytest

from drivers.commands import Job, Step
from drivers.events import JobFinished
from drivers.vda5050.link import Vda5050Link
from firmware_emulator.faults import CommunicationLoss
from firmware_emulator.vda5050_vehicle import MqttFloor
from firmware_emulator.world import World
from fleet.clock import WallClock
from fleet.motion import Errand, MotionControl, Outcome
from fleet.traffic.control import TrafficControl
from fleet.workloads import ShelfMoves, shelves_on
from maps import CellKind, Heading, shipped_map

SPEED = 6.0


@dataclass
class Fleet:
    world: World
    floor: MqttFloor
    link: Vda5050Link
    motion: MotionControl
    clock: WallClock
    stop: threading.Event
    runner: threading.Thread

    def freeze(self, wall_seconds: float) -> None:
        """Stop stepping the world (and so every state it would send) for a while; the
        vehicles' MQTT connections stay up: only the master's staleness check can tell."""
        self.stop.set()
        self.runner.join(5)
        self.stop.clear()
        time.sleep(wall_seconds)
        self.runner = threading.Thread(target=self.floor.run, kwargs={"stop": self.stop}, daemon=True)
        self.runner.start()

    def tick_until(self, done, wall_limit: float, period: float = 0.1, on_report=None) -> None:
        """Run the fleet's control loop (every `period` wall seconds) until done() or the limit."""
        deadline = time.monotonic() + wall_limit
        while not done():
            assert time.monotonic() < deadline, f"not done after {wall_limit} s of wall time"
            for report in self.motion.tick(self.clock.now()):
                if on_report is not None:
                    on_report(report)
            time.sleep(period)


def _fleet(url: str, robots: int, seed: int, prefix: str, state_timeout: float = 35.0,
           state_interval: float = 10.0) -> Iterator[Fleet]:
    wmap = shipped_map("demo")
    clock = WallClock(SPEED)
    world = World(wmap, clock, seed=seed)
    ids = []
    for i, cell in enumerate(wmap.cells_of(CellKind.PARKING)[:robots]):
        ids.append(f"{prefix}{i}")
        world.add_robot(ids[-1], cell, Heading.NORTH)
    floor = MqttFloor(world, url, state_interval=state_interval)
    link = Vda5050Link(url, wmap, adopt=True, clock=clock, resend_interval=1.0, state_timeout=state_timeout)
    assert link.start(10)
    assert floor.start(10)
    stop = threading.Event()
    runner = threading.Thread(target=floor.run, kwargs={"stop": stop}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 10
    while set(ids) - set(link.robot_ids()):
        assert time.monotonic() < deadline, f"not adopted: {set(ids) - set(link.robot_ids())}"
        link.drain()
        time.sleep(0.05)
    motion = MotionControl(link, TrafficControl(wmap, rotation=True, seed=seed))
    for robot_id in ids:
        unit = world.robots[robot_id]
        motion.add_robot(robot_id, unit.cell, unit.heading)
    link.drain()  # adoption events, before motion control looks
    fleet = Fleet(world, floor, link, motion, clock, stop, runner)
    try:
        yield fleet
    finally:
        stop.set()
        fleet.runner.join(5)
        floor.close()
        link.close()


@pytest.fixture
def fleet5(mqtt_url: str, request) -> Iterator[Fleet]:
    yield from _fleet(mqtt_url, 5, seed=4, prefix=f"e2e-{request.node.name[5:15]}-")


def test_five_vehicles_move_shelves_over_mqtt_with_valid_messages_and_no_collision(
        fleet5: Fleet, mqtt_url, record_broker, vda5050_schemas):
    fleet = fleet5
    recorder = record_broker(mqtt_url, "uagv/#")
    trips = ShelfMoves(fleet.world.map, fleet.motion, shelves_on(fleet.world.map, fleet.world.stored_shelf_at),
                       seed=4, present_s=2.0)
    for robot_id in fleet.motion.robots:
        trips.start(robot_id)
    trips.closing = True  # one trip each, then stop
    fleet.tick_until(lambda: trips.in_trip() == 0, wall_limit=50.0, on_report=trips.on_report)
    assert trips.failed == []
    assert trips.done == 5
    assert fleet.world.collisions == []
    assert fleet.world.laser_stops == 0
    messages = recorder.snapshot()
    topics = {m.topic.rsplit("/", 1)[-1] for m in messages}
    assert {"order", "state"} <= topics  # the rest went out at adoption, before recording began
    assert recorder.problems(vda5050_schemas) == []
    assert fleet.link.mqtt.dropped == {}, fleet.link.mqtt.last_drop
    for vehicle in fleet.floor.vehicles.values():
        assert vehicle.link.dropped == {}, vehicle.link.last_drop


def test_base_is_extended_before_the_decision_point_so_a_robot_drives_through(fleet5: Fleet):
    """A long straight run with nobody in the way: traffic control grants cells a few at a
    time, and each order update must arrive before the robot brakes for its decision
    point, so it passes every node without stopping."""
    fleet = fleet5
    robot_id = sorted(fleet.motion.robots)[0]
    unit = fleet.world.robots[robot_id]
    wmap = fleet.world.map
    row = [c for c in wmap.cells_of(CellKind.AISLE) if c.y == unit.cell.y - 1]
    goal = max(row, key=lambda c: c.x) if row else None
    assert goal is not None
    speeds: list[float] = []
    fleet.motion.assign(robot_id, Errand("long", goal))
    done: list = []
    deadline = time.monotonic() + 30
    while not done:
        assert time.monotonic() < deadline
        for report in fleet.motion.tick(fleet.clock.now()):
            done.append(report)
        speeds.append(unit.status().speed)
        time.sleep(0.05)
    assert [r.outcome for r in done] == [Outcome.DONE]
    cruise = max(speeds)
    assert cruise > 1.0
    first, last = speeds.index(cruise), len(speeds) - 1 - speeds[::-1].index(cruise)
    assert min(speeds[first:last + 1]) > 0.5 * cruise, "the robot braked between nodes: an update came late"


def test_lost_vehicle_keeps_its_cells_and_is_reconciled_when_it_returns(fleet5: Fleet):
    fleet = fleet5
    robot_id = sorted(fleet.motion.robots)[1]
    wmap = fleet.world.map
    goal = wmap.cells_of(CellKind.AISLE)[-1]
    fleet.motion.assign(robot_id, Errand("far", goal))
    fleet.tick_until(lambda: fleet.world.robots[robot_id].activity == "driving", wall_limit=10)
    fleet.world.inject(CommunicationLoss(robot_id, duration=3.0 * SPEED))
    fleet.tick_until(lambda: not fleet.motion.robots[robot_id].online, wall_limit=10)
    held = fleet.motion.traffic.held_cells(robot_id)
    assert len(held) >= 1
    # while it is away nobody else may be granted what it holds
    others = [r for r in fleet.motion.robots if r != robot_id]
    for other in others:
        assert not set(fleet.motion.traffic.held_cells(other)) & set(held)
    reports: list = []
    fleet.tick_until(lambda: bool(reports), wall_limit=40, on_report=reports.append)
    assert [(r.errand_id, r.outcome) for r in reports] == [("far", Outcome.DONE)]
    assert fleet.motion.robots[robot_id].online
    assert fleet.world.robots[robot_id].cell == goal
    assert fleet.world.collisions == []


def test_broker_restart_mid_order_loses_nothing(restartable_broker, record_broker):
    fleet_gen = _fleet(restartable_broker.url, 3, seed=6, prefix="restart-")
    fleet = next(fleet_gen)
    try:
        wmap = fleet.world.map
        goals = dict(zip(sorted(fleet.motion.robots), wmap.cells_of(CellKind.AISLE)[-3:]))
        for robot_id, goal in goals.items():
            fleet.motion.assign(robot_id, Errand(f"go-{robot_id}", goal))
        fleet.tick_until(lambda: any(u.activity == "driving" for u in fleet.world.units), wall_limit=10)
        restartable_broker.stop()
        time.sleep(1.0)
        restartable_broker.restart()
        reports: list = []
        fleet.tick_until(lambda: len(reports) == 3, wall_limit=45, on_report=reports.append)
        assert sorted((r.errand_id, r.outcome) for r in reports) == sorted(
            (f"go-{r}", Outcome.DONE) for r in goals)
        for robot_id, goal in goals.items():
            assert fleet.world.robots[robot_id].cell == goal
        assert fleet.world.collisions == []
        # The restarted broker kept nothing (no persistence): a retained ONLINE is a new one.
        recorder = record_broker(restartable_broker.url, "uagv/v2/+/+/connection")
        deadline = time.monotonic() + 5
        while True:
            online = {r.topic.split("/")[3] for r in recorder.snapshot()
                      if r.retain and json.loads(r.payload)["connectionState"] == "ONLINE"}
            if online == set(goals) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert online == set(goals)
    finally:
        fleet_gen.close()


def test_an_order_sent_while_the_vehicle_is_away_is_resent_until_echoed(mqtt_url):
    fleet_gen = _fleet(mqtt_url, 1, seed=8, prefix="resend-")
    fleet = next(fleet_gen)
    try:
        robot_id = next(iter(fleet.motion.robots))
        unit = fleet.world.robots[robot_id]
        start = unit.cell
        nxt = next(cell for _, cell in fleet.world.map.neighbours(start))
        fleet.world.inject(CommunicationLoss(robot_id, duration=2.0 * SPEED))
        time.sleep(0.3)  # the socket is dead: what the master sends now is lost
        fleet.link.send_job(robot_id, Job("away", (Step(start), Step(nxt))))
        sent = fleet.link.mqtt.received
        deadline = time.monotonic() + 15
        finished = []
        while not finished:
            assert time.monotonic() < deadline, "the order never reached the vehicle"
            finished += [e for e in fleet.link.drain() if isinstance(e, JobFinished)]
            time.sleep(0.05)
        assert [e.job_id for e in finished] == ["away"]
        assert unit.cell == nxt and fleet.link.mqtt.received > sent
        vehicle = fleet.floor.vehicles[robot_id]
        assert vehicle.order_id == "away" and vehicle.order_update_id == 0
    finally:
        fleet_gen.close()


def test_a_silent_vehicle_is_lost_by_staleness_keeps_its_cells_and_carries_on(mqtt_url):
    """Its connection stays ONLINE but no state comes for longer than the timeout."""
    fleet_gen = _fleet(mqtt_url, 2, seed=9, prefix="stale-", state_timeout=15.0, state_interval=4.0)
    fleet = next(fleet_gen)
    try:
        robot_id = sorted(fleet.motion.robots)[0]
        goal = fleet.world.map.cells_of(CellKind.AISLE)[-1]
        fleet.motion.assign(robot_id, Errand("far", goal))
        fleet.tick_until(lambda: fleet.world.robots[robot_id].activity == "driving", wall_limit=10)
        held = set(fleet.motion.traffic.held_cells(robot_id))
        frozen = threading.Thread(target=fleet.freeze, args=(4.0,))
        frozen.start()
        fleet.tick_until(lambda: not fleet.motion.robots[robot_id].online, wall_limit=10)
        assert fleet.floor.vehicles[robot_id].link.connected, "lost by staleness, not by its connection"
        assert held <= set(fleet.motion.traffic.held_cells(robot_id)) | {fleet.motion.traffic.position(robot_id)}
        frozen.join()
        reports: list = []
        fleet.tick_until(lambda: bool(reports), wall_limit=40, on_report=reports.append)
        assert [(r.errand_id, r.outcome) for r in reports] == [("far", Outcome.DONE)]
        assert fleet.motion.robots[robot_id].online
        assert fleet.world.collisions == []
    finally:
        fleet_gen.close()
