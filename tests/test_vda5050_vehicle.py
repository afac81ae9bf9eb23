"""Conformance of the emulated VDA 5050 vehicle (firmware_emulator/vda5050_vehicle.py).

One test per rule of the order acceptance flow (section 6.6.2) and per predefined action
we support. Each test talks to the vehicle only through a real Mosquitto broker, as a
master would: a raw MQTT client publishes orders and instant actions and reads states.
The world runs paced to a sped-up wall clock, since the broker lives in wall time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import pytest

from drivers.vda5050.messages import (
    Action,
    ActionParameter,
    ActionStatus,
    BlockingType,
    Connection,
    ConnectionState,
    Edge,
    ErrorLevel,
    Factsheet,
    InstantActions,
    Node,
    NodePosition,
    Order,
    State,
    Visualization,
)
from drivers.vda5050.mqtt import FROM_VEHICLE, MqttLink, Received, Topic
from firmware_emulator.faults import CommunicationLoss, LaserObstacle, MotorStall
from firmware_emulator.profile import DEFAULT_PROFILE
from firmware_emulator.vda5050_vehicle import MANUFACTURER, MqttFloor
from firmware_emulator.world import World
from fleet.clock import WallClock
from maps import Heading, load_map
from maps.model import Cell

from shared_data import REPO_ROOT

SPEED = 4.0  # the world runs four times faster than the wall
STAMP = "2026-01-01T00:00:00.000Z"


class Master:
    """A bare master: publishes what a test gives it, records what the vehicles say."""

    def __init__(self, url: str) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.link = MqttLink(url, subscriptions=sorted(FROM_VEHICLE), on_message=self._on)
        assert self.link.start(10)

    def _on(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def messages(self, kind: type, serial: str) -> list:
        with self._lock:
            return [r.message for r in self.received
                    if isinstance(r.message, kind) and r.vehicle.serial_number == serial]

    def wait(self, kind: type, serial: str, check: Callable[[object], bool], timeout: float = 8.0,
             earlier: bool = False):
        """The first message of `kind` from the vehicle, from now on (or `earlier` too), that
        passes `check`."""
        start = 0 if earlier else len(self.messages(kind, serial))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages(kind, serial)[start:]:
                if check(message):
                    return message
            time.sleep(0.02)
        last = self.messages(kind, serial)[-1:] or None
        raise AssertionError(f"no matching {kind.__name__} from {serial} in {timeout} s; last: {last}")

    def send(self, message: Order | InstantActions, topic: Topic) -> None:
        assert self.link.publish(message, topic)

    def close(self) -> None:
        self.link.close()


@pytest.fixture
def floor(mqtt_url: str, request) -> Iterator[tuple[MqttFloor, Master, World]]:
    wmap = load_map(REPO_ROOT / "tests" / "data" / "tiny.toml")
    world = World(wmap, WallClock(SPEED), seed=1)
    start = getattr(request.function, "start", Cell(2, 1))
    profile = getattr(request.function, "profile", DEFAULT_PROFILE)
    world.add_robot(f"v{request.node.name[-20:]}", start, Heading.EAST, profile)
    master = Master(mqtt_url)
    floor = MqttFloor(world, mqtt_url, state_interval=10.0)
    assert floor.start(10)
    stop = threading.Event()
    runner = threading.Thread(target=floor.run, kwargs={"stop": stop}, daemon=True)
    runner.start()
    yield floor, master, world
    stop.set()
    runner.join(5)
    floor.close()
    master.close()


def starting_at(cell: Cell):
    """Where the test's robot stands when the world starts (default: code (2, 1))."""
    def mark(test):
        test.start = cell
        return test
    return mark


def lifting_for(seconds: float):
    """The test's robot takes this long (world time) to lift a shelf."""
    def mark(test):
        test.profile = DEFAULT_PROFILE.model_copy(update={"lift_time": seconds})
        return test
    return mark


def _serial(world: World) -> str:
    return next(iter(world.robots))


def _node(wmap, cell: Cell, seq: int, released: bool = True, actions=(), theta=None) -> Node:
    x, y = wmap.position(cell)
    return Node(node_id=wmap.qr_id(cell), sequence_id=seq, released=released, actions=list(actions),
                node_position=NodePosition(x=x, y=y, theta=theta, map_id=wmap.name))


def _order(world: World, order_id: str, update: int, cells: list[Cell], first_seq: int = 0,
           released: int | None = None, actions: dict[int, list[Action]] | None = None) -> Order:
    wmap = world.map
    released = len(cells) if released is None else released
    nodes = [_node(wmap, c, first_seq + 2 * i, i < released, (actions or {}).get(i, ()))
             for i, c in enumerate(cells)]
    edges = [Edge(edge_id=f"e{first_seq + 2 * i + 1}", sequence_id=first_seq + 2 * i + 1,
                  released=i + 1 < released, start_node_id=nodes[i].node_id, end_node_id=nodes[i + 1].node_id,
                  actions=[]) for i in range(len(cells) - 1)]
    return Order(header_id=0, timestamp=STAMP, version="2.1.0", manufacturer=MANUFACTURER,
                 serial_number=_serial(world), order_id=order_id, order_update_id=update, nodes=nodes, edges=edges)


def _instant(world: World, action_type: str, action_id: str, parameters=None) -> InstantActions:
    action = Action(action_type=action_type, action_id=action_id, blocking_type=BlockingType.HARD,
                    action_parameters=parameters)
    return InstantActions(header_id=0, timestamp=STAMP, version="2.1.0", manufacturer=MANUFACTURER,
                          serial_number=_serial(world), actions=[action])


def _row(y: int, xs) -> list[Cell]:
    return [Cell(x, y) for x in xs]


def _error(state: State, error_type: str):
    return next((e for e in state.errors if e.error_type == error_type), None)


def _action(state: State, action_id: str):
    return next((a for a in state.action_states if a.action_id == action_id), None)


def test_vehicle_announces_itself_online_with_a_retained_factsheet_and_a_state(floor):
    _, master, world = floor
    serial = _serial(world)
    master.wait(Connection, serial, lambda c: c.connection_state is ConnectionState.ONLINE, earlier=True)
    sheet = master.wait(Factsheet, serial, lambda f: True, earlier=True)
    assert sheet.type_specification.agv_kinematic == "DIFF"
    assert sheet.type_specification.localization_types == ["GRID"]
    assert {"pick", "drop", "cancelOrder", "startPause", "initPosition"} <= {
        a.action_type for a in sheet.protocol_features.agv_actions}
    state = master.wait(State, serial, lambda s: True, earlier=True)
    assert state.last_node_id == world.map.qr_id(Cell(2, 1))
    assert state.agv_position is not None and state.agv_position.position_initialized


def test_accepts_a_new_order_and_drives_its_base_to_the_end(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(1, range(2, 6))
    master.send(_order(world, "o1", 0, cells), Topic.ORDER)
    accepted = master.wait(State, serial, lambda s: s.order_id == "o1")
    assert [n.node_id for n in accepted.node_states] == [world.map.qr_id(c) for c in cells[1:]]
    done = master.wait(State, serial, lambda s: s.order_id == "o1" and not s.node_states and not s.driving)
    assert done.last_node_id == world.map.qr_id(cells[-1]) and done.last_node_sequence_id == 6
    assert world.robots[serial].cell == cells[-1]


def test_stops_at_the_decision_point_and_asks_for_a_new_base(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(1, range(2, 7))
    master.send(_order(world, "o1", 0, cells, released=2), Topic.ORDER)
    waiting = master.wait(State, serial, lambda s: s.last_node_sequence_id == 2 and not s.driving)
    assert waiting.new_base_request is True
    assert [n.released for n in waiting.node_states] == [False, False, False]
    time.sleep(1.0)
    assert world.robots[serial].cell == cells[1], "drove past the decision point into the horizon"


def test_accepts_a_valid_stitched_update_and_drives_on(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(1, range(2, 7))
    master.send(_order(world, "o1", 0, cells[:3]), Topic.ORDER)
    master.send(_order(world, "o1", 1, cells[2:], first_seq=4), Topic.ORDER)
    done = master.wait(State, serial, lambda s: s.order_update_id == 1 and s.last_node_sequence_id == 8
                       and not s.driving, timeout=10)
    assert done.errors == [] and done.node_states == []
    assert world.robots[serial].cell == cells[-1]


def test_ignores_a_duplicate_update(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(1, range(2, 5))
    order = _order(world, "o1", 0, cells)
    master.send(order, Topic.ORDER)
    master.wait(State, serial, lambda s: s.order_id == "o1" and not s.node_states and not s.driving)
    master.send(order, Topic.ORDER)  # the same orderUpdateId again: a resend
    after = master.wait(State, serial, lambda s: True)
    time.sleep(0.3)
    assert after.errors == [] and after.node_states == [] and after.order_update_id == 0
    assert world.robots[serial].cell == cells[-1]


def test_rejects_a_deprecated_update_with_order_update_error(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(1, range(2, 5))
    master.send(_order(world, "o1", 0, cells[:2]), Topic.ORDER)
    master.send(_order(world, "o1", 3, cells[1:], first_seq=2), Topic.ORDER)
    master.wait(State, serial, lambda s: s.order_update_id == 3)
    master.send(_order(world, "o1", 2, cells[1:], first_seq=2), Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "orderUpdateError") is not None)
    error = _error(state, "orderUpdateError")
    assert error.error_level is ErrorLevel.WARNING
    assert {(r.reference_key, r.reference_value) for r in error.error_references} >= {
        ("orderId", "o1"), ("orderUpdateId", "2")}
    assert state.order_update_id == 3, "the previous order must stay in the buffer"


def test_rejects_an_update_that_does_not_stitch_on_the_decision_point(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(1, range(2, 7))
    master.send(_order(world, "o1", 0, cells, released=3), Topic.ORDER)
    master.wait(State, serial, lambda s: s.order_id == "o1")
    # starts at the second node (sequence 2), but the decision point is the third (4)
    master.send(_order(world, "o1", 1, cells[1:], first_seq=2), Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "orderUpdateError") is not None)
    assert "decision point" in _error(state, "orderUpdateError").error_description
    assert state.order_update_id == 0


def test_rejects_a_new_order_while_busy(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_order(world, "o1", 0, _row(1, range(2, 7)), released=2), Topic.ORDER)
    master.wait(State, serial, lambda s: s.order_id == "o1")
    master.send(_order(world, "o2", 0, _row(1, range(2, 4))), Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "orderError") is not None)
    assert state.order_id == "o1"
    assert "still executing" in _error(state, "orderError").error_description


def test_rejects_a_new_order_whose_first_node_is_not_where_it_stands(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_order(world, "o1", 0, _row(3, range(2, 5))), Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "noRouteError") is not None)
    assert state.order_id == "" and world.robots[serial].cell == Cell(2, 1)


def test_rejects_a_malformed_order_with_validation_error(floor):
    _, master, world = floor
    serial = _serial(world)
    order = _order(world, "o1", 0, _row(1, range(2, 5)))
    broken = order.model_copy(update={"edges": order.edges[:1]})  # three nodes, one edge
    master.send(broken, Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "validationError") is not None)
    assert "edges" in _error(state, "validationError").error_description
    # the warning lasts until an order is accepted
    master.send(order, Topic.ORDER)
    cleared = master.wait(State, serial, lambda s: s.order_id == "o1")
    assert _error(cleared, "validationError") is None


def test_rejects_an_action_it_cannot_do_with_order_error(floor):
    _, master, world = floor
    serial = _serial(world)
    weld = Action(action_type="weld", action_id="a1", blocking_type=BlockingType.HARD)
    master.send(_order(world, "o1", 0, _row(1, range(2, 4)), actions={1: [weld]}), Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "orderError") is not None)
    assert ("actionId", "a1") in {(r.reference_key, r.reference_value) for r in _error(state, "orderError").error_references}


def test_cancel_with_no_order_fails_with_no_order_to_cancel(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_instant(world, "cancelOrder", "c1"), Topic.INSTANT_ACTIONS)
    state = master.wait(State, serial, lambda s: _action(s, "c1") is not None)
    assert _action(state, "c1").action_status is ActionStatus.FAILED
    error = _error(state, "noOrderToCancel")
    assert error.error_level is ErrorLevel.WARNING
    assert [(r.reference_key, r.reference_value) for r in error.error_references] == [("actionId", "c1")]


@starting_at(Cell(1, 3))
def test_cancel_stops_on_a_node_fails_waiting_actions_and_keeps_the_order_id(floor):
    _, master, world = floor
    serial = _serial(world)
    wait = Action(action_type="wait", action_id="w1", blocking_type=BlockingType.HARD,
                  action_parameters=[ActionParameter(key="duration", value=1.0)])
    # Along row 3 and back along row 1 (15 cells, two turns): a cancel delayed on a loaded
    # machine must still reach the robot before it is at the end of its order.
    cells = _row(3, range(1, 8)) + [Cell(7, 2)] + _row(1, range(7, 0, -1))
    master.send(_order(world, "o1", 0, cells, actions={len(cells) - 1: [wait]}), Topic.ORDER)
    master.wait(State, serial, lambda s: s.order_id == "o1" and s.driving)
    master.send(_instant(world, "cancelOrder", "c1"), Topic.INSTANT_ACTIONS)
    done = master.wait(State, serial, lambda s: (a := _action(s, "c1")) is not None
                       and a.action_status is ActionStatus.FINISHED)
    assert done.node_states == [] and done.edge_states == [] and not done.driving
    assert done.order_id == "o1"
    assert _action(done, "w1").action_status is ActionStatus.FAILED
    unit = world.robots[serial]
    assert unit.cell != cells[-1] and done.last_node_id == world.map.qr_id(unit.cell)


@lifting_for(16.0)  # 4 s of wall time: the cancel surely arrives while it lifts
def test_cancel_during_a_lift_lets_the_lift_finish_and_then_finishes_the_cancel(floor):
    """Section 6.6.3: an action that cannot be interrupted reports RUNNING, then how it
    ended, never FAILED first; the cancel stays RUNNING until it has ended."""
    _, master, world = floor
    serial = _serial(world)
    shelf_cell = Cell(2, 2)
    shelf = world.stored_shelf_at(shelf_cell)
    params = [ActionParameter(key="stationType", value="floor"), ActionParameter(key="loadType", value="shelf"),
              ActionParameter(key="loadId", value=shelf)]
    pick = Action(action_type="pick", action_id="pk", blocking_type=BlockingType.HARD, action_parameters=params)
    master.send(_order(world, "o1", 0, [Cell(2, 1), shelf_cell], actions={1: [pick]}), Topic.ORDER)
    master.wait(State, serial, lambda s: world.robots[serial].activity == "lifting", timeout=10, earlier=True)
    before = len(master.messages(State, serial))
    master.send(_instant(world, "cancelOrder", "c1"), Topic.INSTANT_ACTIONS)
    done = master.wait(State, serial, lambda s: (a := _action(s, "c1")) is not None
                       and a.action_status is ActionStatus.FINISHED, timeout=10)
    after = [s for s in master.messages(State, serial)[before:] if _action(s, "c1") is not None]
    assert after[0].errors == [] and _action(after[0], "c1").action_status is ActionStatus.RUNNING
    for state in after:
        lift, cancel = _action(state, "pk").action_status, _action(state, "c1").action_status
        assert lift in (ActionStatus.RUNNING, ActionStatus.FINISHED), f"the lift reported {lift} after the cancel"
        assert cancel is ActionStatus.RUNNING or lift is ActionStatus.FINISHED, "cancel finished before the lift"
    assert [load.load_id for load in done.loads] == [shelf]
    assert done.order_id == "o1" and done.node_states == []


def test_refuses_a_node_action_asked_to_run_while_driving(floor):
    """blockingType NONE would let the robot drive during a lift; it cannot, so it says so
    rather than quietly lifting standing still."""
    _, master, world = floor
    serial = _serial(world)
    params = [ActionParameter(key="stationType", value="floor"), ActionParameter(key="loadType", value="shelf")]
    pick = Action(action_type="pick", action_id="pk", blocking_type=BlockingType.NONE, action_parameters=params)
    master.send(_order(world, "o1", 0, [Cell(2, 1), Cell(2, 2)], actions={1: [pick]}), Topic.ORDER)
    state = master.wait(State, serial, lambda s: _error(s, "orderError") is not None)
    error = _error(state, "orderError")
    assert "blockingType NONE" in error.error_description
    assert ("actionId", "pk") in {(r.reference_key, r.reference_value) for r in error.error_references}
    assert state.order_id == "" and world.robots[serial].cell == Cell(2, 1)


@starting_at(Cell(1, 3))
def test_pause_holds_the_robot_and_stop_pause_lets_it_finish(floor):
    _, master, world = floor
    serial = _serial(world)
    cells = _row(3, range(1, 8))
    master.send(_order(world, "o1", 0, cells), Topic.ORDER)
    master.wait(State, serial, lambda s: s.driving)
    master.send(_instant(world, "startPause", "p1"), Topic.INSTANT_ACTIONS)
    paused = master.wait(State, serial, lambda s: s.paused and _action(s, "p1") is not None)
    assert _action(paused, "p1").action_status is ActionStatus.FINISHED
    time.sleep(1.0)
    held = world.robots[serial].status()
    assert held.speed < 1e-9 and held.cell != cells[-1]
    master.send(_instant(world, "stopPause", "p2"), Topic.INSTANT_ACTIONS)
    done = master.wait(State, serial, lambda s: not s.paused and not s.node_states and not s.driving, timeout=10)
    assert _action(done, "p2").action_status is ActionStatus.FINISHED
    assert world.robots[serial].cell == cells[-1]


def test_pick_and_drop_move_the_shelf_named_by_load_id(floor):
    _, master, world = floor
    serial = _serial(world)
    shelf_cell = Cell(2, 2)
    shelf = world.stored_shelf_at(shelf_cell)
    params = [ActionParameter(key="stationType", value="floor"), ActionParameter(key="loadType", value="shelf"),
              ActionParameter(key="loadId", value=shelf)]
    pick = Action(action_type="pick", action_id="pk", blocking_type=BlockingType.HARD, action_parameters=params)
    drop = Action(action_type="drop", action_id="dr", blocking_type=BlockingType.HARD, action_parameters=params)
    master.send(_order(world, "o1", 0, [Cell(2, 1), shelf_cell], actions={1: [pick]}), Topic.ORDER)
    loaded = master.wait(State, serial, lambda s: (a := _action(s, "pk")) is not None
                         and a.action_status is ActionStatus.FINISHED, timeout=10)
    assert [load.load_id for load in loaded.loads] == [shelf]
    master.send(_order(world, "o2", 0, [shelf_cell], actions={0: [drop]}), Topic.ORDER)
    dropped = master.wait(State, serial, lambda s: (a := _action(s, "dr")) is not None
                          and a.action_status is ActionStatus.FINISHED, timeout=10)
    assert dropped.loads == [] and world.stored_shelf_at(shelf_cell) == shelf


def test_pick_of_the_wrong_shelf_fails_with_its_reason(floor):
    _, master, world = floor
    serial = _serial(world)
    params = [ActionParameter(key="stationType", value="floor"), ActionParameter(key="loadType", value="shelf"),
              ActionParameter(key="loadId", value="no-such-shelf")]
    pick = Action(action_type="pick", action_id="pk", blocking_type=BlockingType.HARD, action_parameters=params)
    master.send(_order(world, "o1", 0, [Cell(2, 1), Cell(2, 2)], actions={1: [pick]}), Topic.ORDER)
    state = master.wait(State, serial, lambda s: (a := _action(s, "pk")) is not None
                        and a.action_status is ActionStatus.FAILED, timeout=10)
    assert "expected shelf no-such-shelf" in _action(state, "pk").result_description
    assert state.node_states == [] and state.loads == []


def test_state_request_and_factsheet_request_are_answered(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_instant(world, "stateRequest", "s1"), Topic.INSTANT_ACTIONS)
    state = master.wait(State, serial, lambda s: _action(s, "s1") is not None)
    assert _action(state, "s1").action_status is ActionStatus.FINISHED
    before = len(master.messages(Factsheet, serial))
    master.send(_instant(world, "factsheetRequest", "f1"), Topic.INSTANT_ACTIONS)
    master.wait(Factsheet, serial, lambda f: True)
    assert len(master.messages(Factsheet, serial)) > before


def test_init_position_localises_a_robot_and_rejects_a_wrong_code(floor):
    _, master, world = floor
    serial = _serial(world)
    unit = world.robots[serial]
    unit.lose_localisation()
    lost = master.wait(State, serial, lambda s: _error(s, "localisation_lost") is not None)
    assert _error(lost, "localisation_lost").error_level is ErrorLevel.FATAL
    wrong = [ActionParameter(key="lastNodeId", value=world.map.qr_id(Cell(5, 1))),
             ActionParameter(key="mapId", value=world.map.name)]
    master.send(_instant(world, "initPosition", "i1", wrong), Topic.INSTANT_ACTIONS)
    failed = master.wait(State, serial, lambda s: _action(s, "i1") is not None)
    assert _action(failed, "i1").action_status is ActionStatus.FAILED
    right = [ActionParameter(key="lastNodeId", value=world.map.qr_id(Cell(2, 1))),
             ActionParameter(key="mapId", value=world.map.name), ActionParameter(key="theta", value=0.0)]
    master.send(_instant(world, "initPosition", "i2", right), Topic.INSTANT_ACTIONS)
    fixed = master.wait(State, serial, lambda s: _action(s, "i2") is not None)
    assert _action(fixed, "i2").action_status is ActionStatus.FINISHED
    assert _error(fixed, "localisation_lost") is None and fixed.agv_position.position_initialized


@starting_at(Cell(7, 1))
def test_start_and_stop_charging_on_a_charger(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_instant(world, "startCharging", "ch1"), Topic.INSTANT_ACTIONS)
    charging = master.wait(State, serial, lambda s: s.battery_state.charging)
    master.send(_instant(world, "stopCharging", "ch2"), Topic.INSTANT_ACTIONS)
    stopped = master.wait(State, serial, lambda s: not s.battery_state.charging
                          and (a := _action(s, "ch2")) is not None and a.action_status is ActionStatus.FINISHED)
    assert _action(stopped, "ch1").action_status is ActionStatus.FINISHED
    assert charging.battery_state.charging


def test_communication_loss_publishes_the_last_will_and_the_vehicle_comes_back_online(floor):
    _, master, world = floor
    serial = _serial(world)
    master.wait(State, serial, lambda s: True, timeout=12)
    world.inject(CommunicationLoss(serial, duration=2.0 * SPEED))
    master.wait(Connection, serial, lambda c: c.connection_state is ConnectionState.CONNECTIONBROKEN)
    master.wait(Connection, serial, lambda c: c.connection_state is ConnectionState.ONLINE, timeout=10)
    master.wait(State, serial, lambda s: True)


def test_graceful_close_says_offline(mqtt_url):
    wmap = load_map(REPO_ROOT / "tests" / "data" / "tiny.toml")
    world = World(wmap, WallClock(SPEED), seed=1)
    world.add_robot("closer", Cell(2, 1), Heading.EAST)
    master = Master(mqtt_url)
    floor = MqttFloor(world, mqtt_url)
    try:
        assert floor.start(10)
        master.wait(Connection, "closer", lambda c: c.connection_state is ConnectionState.ONLINE, earlier=True)
        floor.close()
        master.wait(Connection, "closer", lambda c: c.connection_state is ConnectionState.OFFLINE, earlier=True)
        assert all(c.connection_state is not ConnectionState.CONNECTIONBROKEN
                   for c in master.messages(Connection, "closer"))
    finally:
        floor.close()
        master.close()


def test_bad_options_are_refused_clearly(mqtt_url):
    wmap = load_map(REPO_ROOT / "tests" / "data" / "tiny.toml")
    world = World(wmap, WallClock(), seed=1)
    world.add_robot("r", Cell(2, 1))
    with pytest.raises(ValueError, match="no robot ghost"):
        MqttFloor(world, mqtt_url, robot_ids=["ghost"])
    with pytest.raises(ValueError, match="state interval"):
        MqttFloor(world, mqtt_url, state_interval=60.0)


@starting_at(Cell(1, 3))
def test_a_motor_stall_is_a_fatal_error_that_stop_pause_clears_once_it_is_over(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_order(world, "o1", 0, _row(3, range(1, 8))), Topic.ORDER)
    master.wait(State, serial, lambda s: s.driving)
    world.inject(MotorStall(serial, duration=0.5 * SPEED))
    stalled = master.wait(State, serial, lambda s: _error(s, "motor_stall") is not None)
    assert _error(stalled, "motor_stall").error_level is ErrorLevel.FATAL
    time.sleep(0.7)
    master.send(_instant(world, "stopPause", "reset"), Topic.INSTANT_ACTIONS)
    done = master.wait(State, serial, lambda s: _error(s, "motor_stall") is None and not s.node_states
                       and not s.driving, timeout=10)
    assert done.last_node_id == world.map.qr_id(Cell(7, 3))


@starting_at(Cell(1, 3))
def test_an_obstacle_in_the_laser_field_is_a_field_violation_warning(floor):
    _, master, world = floor
    serial = _serial(world)
    master.send(_order(world, "o1", 0, _row(3, range(1, 8))), Topic.ORDER)
    master.wait(State, serial, lambda s: s.driving)
    world.inject(LaserObstacle(serial, distance=0.5, duration=1.0 * SPEED))
    held = master.wait(State, serial, lambda s: s.safety_state.field_violation)
    assert _error(held, "obstacle").error_level is ErrorLevel.WARNING
    clear = master.wait(State, serial, lambda s: not s.safety_state.field_violation and not s.node_states
                        and not s.driving, timeout=10)
    assert _error(clear, "obstacle") is None


def test_visualization_is_published_at_the_set_rate(mqtt_url):
    wmap = load_map(REPO_ROOT / "tests" / "data" / "tiny.toml")
    world = World(wmap, WallClock(), seed=1)
    world.add_robot("viewer", Cell(2, 1), Heading.EAST)
    master = Master(mqtt_url)
    floor = MqttFloor(world, mqtt_url, visualization_interval=0.2)
    try:
        assert floor.start(10)
        floor.run(until=world.now() + 1.5)
        shown = master.messages(Visualization, "viewer")
        assert 5 <= len(shown) <= 9, len(shown)
        assert shown[-1].agv_position.map_id == "tiny"
    finally:
        floor.close()
        master.close()
