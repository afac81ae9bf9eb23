"""The VDA 5050 RobotLink through a real broker, with a scripted vehicle that publishes
hand-built states (the emulated vehicle side is tested elsewhere)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.commands import InstantCommand, InstantKind, Job, Step
from drivers.events import CellReached, ConnectionChanged, JobFinished, StatusReport
from drivers.link import UnknownRobot
from drivers.vda5050 import messages as m
from drivers.vda5050.link import Vda5050Link
from drivers.vda5050.mqtt import FROM_MASTER, Drop, MqttLink, Topic, VehicleId
from maps.loader import load_map
from maps.model import Cell
from drivers.vda5050.messages import encode
from test_vda5050_mqtt import Inbox, Raw, unique_layout, wait_until
from vda5050_samples import MANUFACTURER, header, state_minimal

WAREHOUSE = load_map(Path(__file__).parent / "data" / "tiny.toml")
A, B, C = Cell(2, 1), Cell(3, 1), Cell(4, 1)


class ScriptedVehicle:
    """A vehicle-side MQTT link whose states the test writes by hand."""

    def __init__(self, url: str, layout, serial: str, version: str = "2.1.0") -> None:
        self.inbox = Inbox()
        self.id = VehicleId(MANUFACTURER, serial)
        self.link = MqttLink(url, subscriptions=sorted(FROM_MASTER), on_message=self.inbox, layout=layout,
                             vehicle=self.id, version=version, reconnect_delay=(1, 2))
        self.version = version

    def start(self) -> "ScriptedVehicle":
        assert self.link.start(timeout=10)
        return self

    def report(self, node: Cell | None, seq: int = 0, order_id: str = "", update: int = 0, **fields) -> None:
        base = header(version=self.version, serial=self.id.serial_number) | {
            "order_id": order_id, "order_update_id": update, "last_node_sequence_id": seq,
            "last_node_id": WAREHOUSE.qr_id(node) if node else ""}
        assert self.link.publish(state_minimal(**(base | fields)), Topic.STATE)

    def orders(self) -> list[m.Order]:
        return [r.message for r in self.inbox.of(Topic.ORDER)]

    def instant_types(self) -> list[str]:
        return [a.action_type for r in self.inbox.of(Topic.INSTANT_ACTIONS) for a in r.message.actions]


class Master:
    """The link plus the events drained so far (drain() also drives resends)."""

    def __init__(self, url: str, layout, **options) -> None:
        self.link = Vda5050Link(url, WAREHOUSE, layout=layout, resend_interval=0.2, **options)
        self.events: list = []
        assert self.link.start(timeout=10)

    def pump_until(self, condition, timeout: float = 10.0, what: str = "condition") -> None:
        def drained() -> bool:
            self.events += self.link.drain()
            return condition()
        wait_until(drained, timeout, what)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def cleanup():
    closers = []
    yield closers.append
    for close in reversed(closers):
        close()


def test_a_vehicle_that_announces_itself_is_adopted_and_asked_for_state_and_factsheet(mqtt_url, cleanup):
    layout = unique_layout()
    master = Master(mqtt_url, layout)
    cleanup(master.link.close)
    vehicle = ScriptedVehicle(mqtt_url, layout, "AGV-101", version="2.0.0").start()
    cleanup(vehicle.link.close)
    time.sleep(0.2)
    assert master.link.robot_ids() == []  # ONLINE alone does not adopt
    vehicle.report(A)
    master.pump_until(lambda: master.link.robot_ids() == ["AGV-101"], what="adoption")
    master.pump_until(lambda: master.of(StatusReport), what="status")
    assert master.of(ConnectionChanged)[0].online is True
    assert master.of(StatusReport)[0].cell == A
    wait_until(lambda: vehicle.instant_types()[:2] == ["stateRequest", "factsheetRequest"], what="requests")
    assert {r.message.version for r in vehicle.inbox.of(Topic.INSTANT_ACTIONS)} == {"2.0.0"}
    with pytest.raises(UnknownRobot):
        master.link.send_job("AGV-999", Job("j", (Step(A),)))


def test_adoption_does_not_depend_on_online_arriving_before_the_state(mqtt_url, cleanup):
    """ONLINE (QoS 1) and state (QoS 0) may overtake each other on the way."""
    layout = unique_layout()
    master = Master(mqtt_url, layout)
    cleanup(master.link.close)
    raw = Raw(mqtt_url)
    cleanup(raw.close)
    agv = VehicleId(MANUFACTURER, "AGV-151")
    raw.send(layout.topic(agv, Topic.STATE), encode(state_minimal(**header(serial="AGV-151"),
                                                                  last_node_id=WAREHOUSE.qr_id(B))))
    master.pump_until(lambda: master.link.mqtt.received == 1, what="the state")
    assert master.link.robot_ids() == []
    raw.send(layout.topic(agv, Topic.CONNECTION),
             encode(m.Connection(**header(serial="AGV-151"), connection_state=m.ConnectionState.ONLINE)), qos=1)
    master.pump_until(lambda: master.link.robot_ids() == ["AGV-151"], what="adoption")
    master.pump_until(lambda: master.of(StatusReport), what="the held state, reported")
    assert master.of(StatusReport)[0].cell == B


def test_only_configured_vehicles_are_heard_when_adoption_is_off(mqtt_url, cleanup):
    layout = unique_layout()
    known = VehicleId(MANUFACTURER, "AGV-201")
    master = Master(mqtt_url, layout, vehicles=[known], adopt=False)
    cleanup(master.link.close)
    assert master.link.robot_ids() == ["AGV-201"]  # known before it is ever heard
    stranger = ScriptedVehicle(mqtt_url, layout, "AGV-666").start()
    cleanup(stranger.link.close)
    stranger.report(B)
    friend = ScriptedVehicle(mqtt_url, layout, "AGV-201").start()
    cleanup(friend.link.close)
    friend.report(A)
    master.pump_until(lambda: master.of(StatusReport), what="the configured vehicle's state")
    wait_until(lambda: master.link.mqtt.dropped[Drop.UNKNOWN_VEHICLE] >= 2, what="stranger dropped")
    assert master.link.robot_ids() == ["AGV-201"]
    assert {e.robot_id for e in master.events} == {"AGV-201"}


def test_job_resent_until_echoed_then_extended_by_a_stitched_update(mqtt_url, cleanup, record_broker,
                                                                   vda5050_schemas):
    layout = unique_layout()
    recorder = record_broker(mqtt_url, f"{layout.base}/#")
    master = Master(mqtt_url, layout)
    cleanup(master.link.close)
    vehicle = ScriptedVehicle(mqtt_url, layout, "AGV-301").start()
    cleanup(vehicle.link.close)
    vehicle.report(A)
    master.pump_until(lambda: master.link.robot_ids() == ["AGV-301"])
    master.link.send_job("AGV-301", Job("job-9", (Step(A), Step(B))))
    master.pump_until(lambda: len(vehicle.orders()) >= 3, what="resends of an unechoed order")
    first, second = vehicle.orders()[:2]
    assert second.model_copy(update={"header_id": 0, "timestamp": first.timestamp}) == first.model_copy(
        update={"header_id": 0})
    assert second.header_id > first.header_id
    vehicle.report(A, 0, order_id="job-9", update=0,
                   node_states=[m.NodeState(node_id=WAREHOUSE.qr_id(B), sequence_id=2, released=True)])
    master.link.extend_job("AGV-301", "job-9", [Step(C)])
    master.pump_until(lambda: any(o.order_update_id == 1 for o in vehicle.orders()), what="update 1")
    update = next(o for o in vehicle.orders() if o.order_update_id == 1)
    assert [(n.node_id, n.sequence_id) for n in update.nodes] == [(WAREHOUSE.qr_id(B), 2), (WAREHOUSE.qr_id(C), 4)]
    vehicle.report(B, 2, order_id="job-9", update=1,
                   node_states=[m.NodeState(node_id=WAREHOUSE.qr_id(C), sequence_id=4, released=True)])
    vehicle.report(C, 4, order_id="job-9", update=1)
    master.pump_until(lambda: master.of(JobFinished), what="job finished")
    assert [(e.cell, e.step_index) for e in master.of(CellReached) if e.job_id == "job-9"] == [(B, 1), (C, 2)]
    # Everything on the wire, both ways, as stamped by the links, is valid VDA 5050.
    seen = {(r.topic.rsplit("/", 1)[-1], r.qos, r.retain) for r in recorder.snapshot()}
    assert {("order", 0, False), ("instantActions", 0, False), ("state", 0, False),
            ("connection", 1, False)} <= seen
    assert recorder.problems(vda5050_schemas) == []


def test_broker_restart_mid_order_the_update_still_arrives(restartable_broker, cleanup):
    layout = unique_layout()
    url = restartable_broker.url
    master = Master(url, layout)
    cleanup(master.link.close)
    vehicle = ScriptedVehicle(url, layout, "AGV-401").start()
    cleanup(vehicle.link.close)
    vehicle.report(A)
    master.pump_until(lambda: master.link.robot_ids() == ["AGV-401"])
    master.link.send_job("AGV-401", Job("job-r", (Step(A), Step(B))))
    master.pump_until(lambda: vehicle.orders(), what="order")
    vehicle.report(A, 0, order_id="job-r", update=0)
    master.pump_until(lambda: not master.link.session("AGV-401").awaiting_echo, what="echo")

    restartable_broker.stop()
    master.link.extend_job("AGV-401", "job-r", [Step(C)])  # lost: nobody to send it to
    master.pump_until(lambda: master.link.session("AGV-401").awaiting_echo)
    restartable_broker.start()
    master.pump_until(lambda: any(o.order_update_id == 1 for o in vehicle.orders()), timeout=20,
                      what="update 1 after the restart")
    vehicle.report(B, 2, order_id="job-r", update=1)
    vehicle.report(C, 4, order_id="job-r", update=1)
    master.pump_until(lambda: master.of(JobFinished), what="job finished after the restart")
    assert master.link.session("AGV-401").online


def test_instant_commands_reach_the_vehicle(mqtt_url, cleanup):
    layout = unique_layout()
    master = Master(mqtt_url, layout)
    cleanup(master.link.close)
    vehicle = ScriptedVehicle(mqtt_url, layout, "AGV-501").start()
    cleanup(vehicle.link.close)
    vehicle.report(A)
    master.pump_until(lambda: master.link.robot_ids() == ["AGV-501"])
    master.link.instant("AGV-501", InstantCommand(InstantKind.PAUSE, command_id="p-1"))
    master.pump_until(lambda: "startPause" in vehicle.instant_types(), what="pause")
    [pause] = [a for r in vehicle.inbox.of(Topic.INSTANT_ACTIONS) for a in r.message.actions
               if a.action_type == "startPause"][:1]
    assert pause.action_id == "p-1"
