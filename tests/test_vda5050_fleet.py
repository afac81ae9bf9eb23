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

from drivers.commands import InstantCommand, InstantKind, Job, Step
from drivers.events import JobFinished, JobRejected
from drivers.vda5050.link import Vda5050Link
from drivers.vda5050.messages import Order, decode
from drivers.vda5050.order_graph import graph_problems
from firmware_emulator.faults import CommunicationLoss
from firmware_emulator.vda5050_vehicle import MqttFloor
from firmware_emulator.world import World
from fleet.clock import WallClock
from fleet.motion import Errand, MotionControl, Outcome
from fleet.traffic.control import TrafficControl
from fleet.workloads import ShelfMoves, shelves_on
from maps import Cell, CellKind, Heading, shipped_map
from maps.model import WarehouseMap

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


def horizons(messages) -> tuple[int, list[str]]:
    """How many recorded orders carry a horizon, and every breach of the rules around it:
    an order whose graph is unsound (a horizon node before a base node, a released edge
    into the horizon), or a state whose last node was never released to the vehicle by an
    order recorded before it (it drove onto a horizon node)."""
    released: dict[tuple[str, str], set[tuple[str, int]]] = {}
    with_horizon, problems = 0, []
    for record in messages:
        serial, topic = record.topic.split("/")[3], record.topic.rsplit("/", 1)[-1]
        if topic == "order":
            order = decode(Order, record.payload)
            problems += [f"{serial} order {order.order_id}/{order.order_update_id}: {p}" for p in graph_problems(order)]
            with_horizon += any(not node.released for node in order.nodes)
            released.setdefault((serial, order.order_id), set()).update(
                (node.node_id, node.sequence_id) for node in order.nodes if node.released)
        elif topic == "state":
            state = json.loads(record.payload)
            node = (state["lastNodeId"], state["lastNodeSequenceId"])
            if state["orderId"] and node not in released.get((serial, state["orderId"]), set()):
                problems.append(f"{serial} reports node {node} of order {state['orderId']}, never released")
    return with_horizon, problems


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
    with_horizon, breaches = horizons(messages)
    assert with_horizon > 0 and breaches == []
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


def _straight_way(wmap: WarehouseMap, start: Cell, length: int) -> list[Cell]:
    """`length` cells from `start` in a straight line, breadth-first to the first cell
    from which one exists (the robot is first driven there as part of the way)."""
    came: dict[Cell, Cell | None] = {start: None}
    frontier = [start]
    while frontier:
        cell = frontier.pop(0)
        for heading, _ in wmap.neighbours(cell):
            line = [cell]
            while len(line) < length:
                line.append(next((n for h, n in wmap.neighbours(line[-1]) if h == heading), None))
                if line[-1] is None:
                    break
            if line[-1] is not None:
                way = line
                while came[way[0]] is not None:
                    way.insert(0, came[way[0]])
                return way
        for _, nxt in wmap.neighbours(cell):
            if nxt not in came:
                came[nxt] = cell
                frontier.append(nxt)
    raise AssertionError(f"no straight run of {length} cells on map {wmap.name!r}")


def test_a_horizon_is_never_driven_is_replaced_by_updates_and_withdrawn_when_the_job_ends(
        mqtt_url, record_broker, vda5050_schemas):
    """Through the broker to an emulated vehicle: the horizon goes out unreleased after the
    base, the vehicle stops at its decision point (newBaseRequest) without entering it, a
    new preview replaces it, the job finishes when the base is done, and the next job is
    accepted (the master withdrew the horizon the vehicle was waiting on)."""
    fleet_gen = _fleet(mqtt_url, 1, seed=3, prefix="horizon-")
    fleet = next(fleet_gen)
    try:
        robot_id = next(iter(fleet.motion.robots))
        unit, vehicle = fleet.world.robots[robot_id], fleet.floor.vehicles[robot_id]
        qr = fleet.world.map.qr_id
        recorder = record_broker(mqtt_url, f"uagv/v2/+/{robot_id}/#")
        way = _straight_way(fleet.world.map, unit.cell, 6)
        base, ahead = way[:-4], way[-4:]
        fleet.link.instant(robot_id, InstantCommand(InstantKind.PAUSE))  # holds it while the horizon changes
        fleet.link.send_job(robot_id, Job("h1", tuple(Step(c) for c in base)))
        fleet.link.preview(robot_id, "h1", ahead)
        events: list = []

        def until(done, limit: float = 15.0) -> None:
            deadline = time.monotonic() + limit
            while not done():
                assert time.monotonic() < deadline, f"timed out; events {events[-5:]}"
                events.extend(fleet.link.drain())
                time.sleep(0.05)

        until(lambda: [n.node_id for n in vehicle.horizon] == [qr(c) for c in ahead])
        fleet.link.preview(robot_id, "h1", ahead[:2])  # replanned: a shorter way
        until(lambda: [n.node_id for n in vehicle.horizon] == [qr(c) for c in ahead[:2]])
        fleet.link.instant(robot_id, InstantCommand(InstantKind.RESUME))
        until(lambda: any(isinstance(e, JobFinished) for e in events))
        assert unit.cell == base[-1]
        until(lambda: vehicle.horizon == [])  # the horizon it waited on is withdrawn
        fleet.link.send_job(robot_id, Job("h2", (Step(base[-1]), *(Step(c) for c in ahead))))
        until(lambda: [e.job_id for e in events if isinstance(e, JobFinished)] == ["h1", "h2"])
        assert unit.cell == ahead[-1]
        assert [e for e in events if isinstance(e, JobRejected)] == []
        messages = recorder.snapshot()
        states = [json.loads(r.payload) for r in messages if r.topic.endswith("/state")]
        assert any(s["newBaseRequest"] and s["lastNodeId"] == qr(base[-1]) and not s["driving"] for s in states), \
            "it never stood at its decision point asking for more"
        with_horizon, breaches = horizons(messages)
        assert with_horizon >= 2 and breaches == []
        assert recorder.problems(vda5050_schemas) == []
    finally:
        fleet_gen.close()


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
