"""The master-side session of one vehicle, driven by hand-built state messages (no broker)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from drivers.commands import ActionKind, CellAction, InstantCommand, InstantKind, Job, Step
from drivers.events import (
    ActionFailed,
    ActionFinished,
    BatteryReport,
    CellReached,
    ConnectionChanged,
    ErrorCleared,
    ErrorRaised,
    JobFinished,
    JobRejected,
    LoadChanged,
    Severity,
    StatusReport,
)
from drivers.vda5050 import messages as m
from drivers.vda5050.master import (
    EDGE_LENGTH,
    EDGE_ORIENTATION,
    EDGE_ORIENTATION_TYPE,
    EDGE_ROTATION_ALLOWED,
    NODE_POSITION,
    NODE_THETA,
    Capabilities,
    VehicleSession,
)
from drivers.vda5050.messages import encode
from drivers.vda5050.mqtt import Topic, VehicleId
from drivers.vda5050.order_graph import graph_problems
from maps.loader import load_map
from maps.model import Cell, Heading
from vda5050_samples import MANUFACTURER, SERIAL, connection, factsheet_minimal, header, state_minimal

WAREHOUSE = load_map(Path(__file__).parent / "data" / "tiny.toml")
A, B, C, D = Cell(2, 1), Cell(3, 1), Cell(4, 1), Cell(5, 1)
QR = {cell: WAREHOUSE.qr_id(cell) for cell in (A, B, C, D)}
EVERYTHING = Capabilities(
    actions=frozenset({"pick", "drop", "startCharging", "stopCharging", "wait"}),
    optional=frozenset({NODE_POSITION, NODE_THETA, EDGE_ORIENTATION, EDGE_ORIENTATION_TYPE,
                        EDGE_ROTATION_ALLOWED, EDGE_LENGTH}),
)


class Outbox:
    """The session's `send`: records what would go on the wire."""

    def __init__(self) -> None:
        self.sent: list[tuple[m.Wire, Topic]] = []

    def __call__(self, message: m.Wire, topic: Topic) -> bool:
        if isinstance(message, m.Order):
            assert graph_problems(message) == []  # every order the master builds is sound
        self.sent.append((message, topic))
        return True

    def orders(self) -> list[m.Order]:
        return [message for message, topic in self.sent if topic is Topic.ORDER]

    def instants(self) -> list[m.Action]:
        return [a for message, topic in self.sent if topic is Topic.INSTANT_ACTIONS for a in message.actions]


def session(capabilities: Capabilities = EVERYTHING) -> tuple[VehicleSession, Outbox]:
    outbox = Outbox()
    made = VehicleSession("R1", VehicleId(MANUFACTURER, SERIAL), WAREHOUSE, outbox, capabilities=capabilities)
    return made, outbox


def lift_job() -> Job:
    """A east to B, turn north on B and lift shelf-7 there, on to C."""
    return Job("job-1", (
        Step(A),
        Step(B),
        Step(B, heading=Heading.NORTH, actions=(CellAction("lift-1", ActionKind.LIFT, shelf_id="shelf-7"),)),
        Step(C),
    ))


def state(node: Cell | None = None, seq: int = 0, order_id: str = "job-1", update: int = 0,
          header_id: int = 0, **fields) -> m.State:
    base = {"order_id": order_id, "order_update_id": update,
            "last_node_id": QR[node] if node else "", "last_node_sequence_id": seq}
    return state_minimal(**(header(header_id) | base | fields))


def events_of(vehicle: VehicleSession, kind: type) -> list:
    return [event for event in vehicle.events if isinstance(event, kind)]


def as_json(message: m.Wire) -> dict:
    return orjson.loads(encode(message))


# --- orders out --------------------------------------------------------------------------------

def test_a_job_becomes_one_released_order_valid_against_the_schema(vda5050_schemas):
    vehicle, outbox = session()
    vehicle.send_job(lift_job(), now=0.0)
    [order] = outbox.orders()
    assert vda5050_schemas["order"].is_valid(as_json(order))
    assert (order.order_id, order.order_update_id) == ("job-1", 0)
    assert [(n.node_id, n.sequence_id, n.released) for n in order.nodes] == [
        (QR[A], 0, True), (QR[B], 2, True), (QR[B], 4, True), (QR[C], 6, True)]
    assert [(e.start_node_id, e.end_node_id, e.sequence_id, e.released) for e in order.edges] == [
        (QR[A], QR[B], 1, True), (QR[B], QR[B], 3, True), (QR[B], QR[C], 5, True)]
    first, _, lift_node, _ = order.nodes
    assert (first.node_position.x, first.node_position.y) == WAREHOUSE.position(A)
    assert first.node_position.map_id == "tiny" and first.node_position.theta is None
    assert lift_node.node_position.theta == Heading.NORTH.radians
    [pick] = lift_node.actions
    assert pick.action_type == "pick" and pick.blocking_type is m.BlockingType.HARD
    assert {p.key: p.value for p in pick.action_parameters} == {
        "loadId": "shelf-7", "stationType": "floor", "loadType": "shelf"}
    move, stay, _ = order.edges
    assert (move.orientation, move.orientation_type, move.rotation_allowed, move.length) == (
        Heading.EAST.radians, m.OrientationType.GLOBAL, False, WAREHOUSE.pitch)
    assert stay.orientation is None  # turning on the spot is the node's theta, not an edge


def test_without_a_factsheet_only_required_fields_are_sent(vda5050_schemas):
    vehicle, outbox = session(Capabilities())
    vehicle.send_job(lift_job(), now=0.0)
    payload = as_json(outbox.orders()[0])
    assert all("nodePosition" not in node for node in payload["nodes"])
    assert all(set(edge) == {"edgeId", "sequenceId", "released", "startNodeId", "endNodeId", "actions"}
               for edge in payload["edges"])
    assert vda5050_schemas["order"].is_valid(payload)


def test_tangential_orientation_when_the_vehicle_knows_orientation_but_not_its_type():
    vehicle, outbox = session(Capabilities(optional=frozenset({EDGE_ORIENTATION})))
    vehicle.send_job(Job("j", (Step(A), Step(B))), now=0.0)
    [edge] = outbox.orders()[0].edges
    assert (edge.orientation, edge.orientation_type) == (0.0, None)  # TANGENTIAL by default: forward


def test_capabilities_are_learnt_from_the_factsheet():
    sheet = factsheet_minimal().model_copy(update={"protocol_features": m.ProtocolFeatures(
        optional_parameters=[m.OptionalParameter(parameter=NODE_POSITION, support=m.Support.SUPPORTED)],
        agv_actions=[m.AgvAction(action_type="pick", action_scopes=[m.ActionScope.NODE])],
    )})
    vehicle, outbox = session(Capabilities())
    vehicle.on_factsheet(sheet, now=0.0)
    assert vehicle.capabilities == Capabilities(actions=frozenset({"pick"}), optional=frozenset({NODE_POSITION}))
    vehicle.send_job(lift_job(), now=0.0)
    assert outbox.orders()[0].nodes[2].node_position.theta is None  # theta not listed


def test_an_action_the_factsheet_does_not_list_is_refused_before_sending():
    vehicle, outbox = session(Capabilities(actions=frozenset({"pick", "drop"})))
    waiting = Job("j", (Step(A, actions=(CellAction("w", ActionKind.WAIT, duration=2.0),)),))
    vehicle.send_job(waiting, now=3.0)
    assert outbox.sent == []
    assert events_of(vehicle, JobRejected) == [
        JobRejected("R1", 3.0, job_id="j", reason="vehicle's factsheet lists no action wait")]
    vehicle.send_job(lift_job(), now=4.0)  # the refused job is over: a new one may start
    assert len(outbox.orders()) == 1


def test_an_order_is_resent_unchanged_until_a_state_echoes_it():
    vehicle, outbox = session()
    vehicle.send_job(lift_job(), now=0.0)
    vehicle.tick(0.5)
    assert len(outbox.orders()) == 1
    vehicle.tick(1.0)
    vehicle.tick(3.0)
    first, *again = outbox.orders()
    assert len(again) == 2 and all(resent == first for resent in again)
    vehicle.on_state(state(A, 0, update=0, node_states=[]), now=3.5)
    vehicle.tick(100.0)
    assert len(outbox.orders()) == 3


def test_resends_back_off_to_eight_intervals_for_a_vehicle_that_does_not_answer():
    vehicle, outbox = session()
    vehicle.send_job(lift_job(), now=0.0)
    vehicle.instant(InstantCommand(InstantKind.PAUSE), now=0.0)
    sent_at = {Topic.ORDER: [], Topic.INSTANT_ACTIONS: []}
    for tick in range(1, 61):
        before = len(outbox.sent)
        vehicle.tick(tick * 0.5)
        for message, topic in outbox.sent[before:]:
            sent_at[topic].append(tick * 0.5)
    assert sent_at[Topic.ORDER] == [1.0, 3.0, 7.0, 15.0, 23.0]
    assert sent_at[Topic.INSTANT_ACTIONS] == [1.0, 3.0, 7.0, 15.0, 23.0]


def test_a_state_of_another_order_is_not_an_echo():
    vehicle, outbox = session()
    vehicle.send_job(lift_job(), now=0.0)
    vehicle.on_state(state(A, 0, order_id="older-job", update=5), now=0.1)
    vehicle.tick(1.1)
    assert len(outbox.orders()) == 2


def test_an_extension_is_stitched_on_the_last_base_node(vda5050_schemas):
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.on_state(state(A, 0), now=0.1)
    vehicle.extend_job("job-1", [Step(C), Step(D)], now=0.2)
    first, update = outbox.orders()
    assert vda5050_schemas["order"].is_valid(as_json(update))
    assert (update.order_id, update.order_update_id) == ("job-1", 1)
    assert update.nodes[0] == first.nodes[-1]  # same nodeId, sequenceId and content
    assert [(n.node_id, n.sequence_id) for n in update.nodes] == [(QR[B], 2), (QR[C], 4), (QR[D], 6)]
    assert [(e.start_node_id, e.end_node_id, e.sequence_id) for e in update.edges] == [
        (QR[B], QR[C], 3), (QR[C], QR[D], 5)]


def test_only_one_update_is_in_flight_and_steps_added_meanwhile_go_out_together():
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.extend_job("job-1", [Step(C)], now=0.1)
    vehicle.extend_job("job-1", [Step(D)], now=0.2)
    assert [o.order_update_id for o in outbox.orders()] == [0]
    vehicle.on_state(state(A, 0, update=0), now=0.3)  # the echo releases the next update at once
    assert [o.order_update_id for o in outbox.orders()] == [0, 1]
    update = outbox.orders()[1]
    assert [n.node_id for n in update.nodes] == [QR[B], QR[C], QR[D]]
    vehicle.tick(1.3)
    assert [o.order_update_id for o in outbox.orders()] == [0, 1, 1]  # resent, same orderUpdateId


def test_extensions_must_continue_the_path_of_the_job():
    vehicle, _ = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    with pytest.raises(ValueError, match="not adjacent"):
        vehicle.extend_job("job-1", [Step(D)], now=0.1)
    # A command that crossed an event on the wire is refused by an event, never raised:
    vehicle.extend_job("other", [Step(C)], now=0.1)
    vehicle.send_job(Job("job-2", (Step(B),)), now=0.1)
    assert events_of(vehicle, JobRejected) == [
        JobRejected("R1", 0.1, job_id="other", reason="no job 'other' in progress to extend"),
        JobRejected("R1", 0.1, job_id="job-2", reason="job 'job-1' is still in progress; cannot start 'job-2'")]


def test_a_rejected_order_becomes_a_job_rejected_event_with_the_vehicles_words():
    vehicle, outbox = session()
    vehicle.send_job(lift_job(), now=0.0)
    refusal = m.VehicleError(
        error_type="noRouteError", error_level=m.ErrorLevel.WARNING,
        error_description="node 002001 is not reachable",
        error_references=[m.Reference(reference_key="orderId", reference_value="job-1")])
    vehicle.on_state(state(order_id="", errors=[refusal]), now=0.4)
    assert events_of(vehicle, JobRejected) == [
        JobRejected("R1", 0.4, job_id="job-1", reason="noRouteError: node 002001 is not reachable")]
    vehicle.tick(5.0)
    assert len(outbox.orders()) == 1  # no more resends
    vehicle.on_state(state(order_id="", errors=[refusal], header_id=1), now=5.1)
    assert len(events_of(vehicle, JobRejected)) == 1  # reported once, not per state


def test_a_rejection_of_another_order_is_not_ours():
    vehicle, _ = session()
    vehicle.send_job(lift_job(), now=0.0)
    other = m.VehicleError(error_type="validationError", error_level=m.ErrorLevel.WARNING,
                           error_references=[m.Reference(reference_key="orderId", reference_value="job-0")])
    vehicle.on_state(state(order_id="", errors=[other]), now=0.4)
    assert events_of(vehicle, JobRejected) == []


# --- the horizon ------------------------------------------------------------------------------

E, F = Cell(6, 1), Cell(7, 1)
QR |= {E: WAREHOUSE.qr_id(E), F: WAREHOUSE.qr_id(F)}


def horizon_of(order: m.Order) -> list[tuple[str, int]]:
    return [(n.node_id, n.sequence_id) for n in order.nodes if not n.released]


def test_a_preview_becomes_the_horizon_after_the_base(vda5050_schemas):
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.preview("job-1", [C, D], now=0.0)
    assert len(outbox.orders()) == 1  # the order in flight has no horizon; the preview waits for its echo
    vehicle.on_state(state(A, 0), now=0.1)
    update = outbox.orders()[1]
    assert vda5050_schemas["order"].is_valid(as_json(update))
    assert [(n.node_id, n.sequence_id, n.released) for n in update.nodes] == [
        (QR[B], 2, True), (QR[C], 4, False), (QR[D], 6, False)]
    assert [(e.start_node_id, e.end_node_id, e.sequence_id, e.released) for e in update.edges] == [
        (QR[B], QR[C], 3, False), (QR[C], QR[D], 5, False)]
    assert update.edges[0].orientation == Heading.EAST.radians  # the same optional fields as the base
    assert update.nodes[1].node_position.map_id == "tiny"


def test_an_extension_keeps_the_rest_of_the_horizon_and_a_longer_preview_waits_for_the_next():
    vehicle, outbox = session()
    driving = lambda *seqs: {"node_states": [m.NodeState(node_id="n", sequence_id=s, released=True) for s in seqs]}
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.on_state(state(A, 0, **driving(2)), now=0.1)
    vehicle.preview("job-1", [C, D], now=0.2)
    vehicle.on_state(state(A, 0, update=1, **driving(2)), now=0.3)
    vehicle.extend_job("job-1", [Step(C)], now=0.4)  # granted what was previewed
    update = outbox.orders()[-1]
    assert [(n.node_id, n.sequence_id, n.released) for n in update.nodes] == [
        (QR[B], 2, True), (QR[C], 4, True), (QR[D], 6, False)]  # D keeps its sequenceId
    vehicle.on_state(state(A, 0, update=2, **driving(2, 4)), now=0.5)
    vehicle.preview("job-1", [D, E, F], now=0.6)  # only longer: rides with the next extension
    assert len(outbox.orders()) == 3
    vehicle.extend_job("job-1", [Step(D)], now=0.7)
    assert horizon_of(outbox.orders()[-1]) == [(QR[E], 8), (QR[F], 10)]
    vehicle.on_state(state(B, 2, update=3, **driving(4, 6)), now=0.8)
    south = Cell(5, 2)
    vehicle.preview("job-1", [south], now=0.9)  # replanned: the horizon it holds is wrong
    changed = outbox.orders()[-1]
    assert changed.order_update_id == 4
    assert [(n.node_id, n.released) for n in changed.nodes] == [(QR[D], True), (WAREHOUSE.qr_id(south), False)]
    vehicle.on_state(state(B, 2, update=4, **driving(4, 6)), now=1.0)
    vehicle.preview("job-1", [], now=1.1)  # withdrawn
    assert outbox.orders()[-1].order_update_id == 5 and horizon_of(outbox.orders()[-1]) == []
    vehicle.on_state(state(B, 2, update=5, **driving(4, 6)), now=1.2)
    vehicle.preview("job-1", [], now=1.3)
    assert len(outbox.orders()) == 6  # nothing changed, nothing sent


def test_the_job_finishes_at_the_end_of_its_base_and_its_horizon_is_withdrawn_before_the_next_job():
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.on_state(state(A, 0), now=0.1)
    vehicle.preview("job-1", [C, D], now=0.2)
    horizon = [m.NodeState(node_id=QR[C], sequence_id=4, released=False),
               m.NodeState(node_id=QR[D], sequence_id=6, released=False)]
    vehicle.on_state(state(B, 2, update=1, node_states=horizon), now=1.0)  # waiting at its decision point
    assert events_of(vehicle, JobFinished) == [JobFinished("R1", 1.0, job_id="job-1")]
    withdrawal = outbox.orders()[-1]
    assert (withdrawal.order_id, withdrawal.order_update_id) == ("job-1", 2)
    assert [(n.node_id, n.sequence_id, n.released) for n in withdrawal.nodes] == [(QR[B], 2, True)]
    assert withdrawal.edges == []
    vehicle.send_job(Job("job-2", (Step(B), Step(C))), now=1.1)
    assert len(outbox.orders()) == 3  # the vehicle still waits for job-1's update: job-2 would be refused
    vehicle.tick(2.1)
    assert outbox.orders()[-1] == withdrawal  # resent until echoed
    vehicle.on_state(state(B, 2, update=2), now=2.2)
    assert [(o.order_id, o.order_update_id) for o in outbox.orders()[-1:]] == [("job-2", 0)]
    assert events_of(vehicle, JobFinished) == [JobFinished("R1", 1.0, job_id="job-1")]


def test_a_withdrawal_is_moot_once_the_vehicle_holds_nothing_of_the_order():
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.preview("job-1", [C], now=0.0)
    vehicle.on_state(state(A, 0, node_states=[m.NodeState(node_id=QR[B], sequence_id=2, released=True)]), now=0.1)
    horizon = [m.NodeState(node_id=QR[C], sequence_id=4, released=False)]
    vehicle.on_state(state(B, 2, update=1, node_states=horizon), now=0.3)
    assert events_of(vehicle, JobFinished) == [JobFinished("R1", 0.3, job_id="job-1")]
    vehicle.send_job(Job("job-2", (Step(B), Step(C))), now=0.4)
    vehicle.on_state(state(B, 2, update=1), now=0.5)  # cancelled meanwhile: no nodes left
    assert [(o.order_id, o.order_update_id) for o in outbox.orders()] == [
        ("job-1", 0), ("job-1", 1), ("job-1", 2), ("job-2", 0)]


def test_the_horizon_fits_the_factsheets_order_limits_and_none_goes_before_a_factsheet():
    vehicle, outbox = session(Capabilities())
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.on_state(state(A, 0), now=0.1)
    vehicle.preview("job-1", [C, D, E], now=0.2)
    assert len(outbox.orders()) == 1
    limits = m.MaxArrayLens(**{"order.nodes": 3, "order.edges": 10})
    sheet = factsheet_minimal()
    sheet = sheet.model_copy(update={"protocol_limits": sheet.protocol_limits.model_copy(
        update={"max_array_lens": limits})})
    vehicle.on_factsheet(sheet, now=0.3)
    assert (vehicle.capabilities.max_order_nodes, vehicle.capabilities.max_order_edges) == (3, 10)
    vehicle.extend_job("job-1", [Step(C)], now=0.4)
    assert [(n.node_id, n.released) for n in outbox.orders()[-1].nodes] == [
        (QR[B], True), (QR[C], True), (QR[D], False)]  # three nodes per order at most


def test_a_preview_must_continue_the_job_and_one_for_an_ended_job_is_ignored():
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    with pytest.raises(ValueError, match="not adjacent"):
        vehicle.preview("job-1", [D], now=0.1)
    with pytest.raises(ValueError, match="has no QR code"):
        vehicle.preview("job-1", [Cell(3, 0)], now=0.1)
    vehicle.preview("job-0", [C], now=0.1)  # crossed the end of that job on the wire: a hint, dropped
    assert len(outbox.orders()) == 1 and events_of(vehicle, JobRejected) == []


# --- states in ---------------------------------------------------------------------------------

def test_progress_through_a_job_becomes_fleet_events():
    vehicle, _ = session()
    vehicle.send_job(lift_job(), now=0.0)
    remaining = lambda *seqs: [m.NodeState(node_id="n", sequence_id=s, released=True) for s in seqs]
    pick = lambda status: [m.ActionState(action_id="lift-1", action_type="pick", action_status=status)]
    vehicle.on_state(state(A, 0, node_states=remaining(2, 4, 6), action_states=pick(m.ActionStatus.WAITING),
                           loads=[]), now=1.0)
    vehicle.on_state(state(B, 2, node_states=remaining(4, 6), action_states=pick(m.ActionStatus.WAITING),
                           loads=[]), now=2.0)
    vehicle.on_state(state(B, 4, node_states=remaining(6), action_states=pick(m.ActionStatus.RUNNING),
                           loads=[]), now=3.0)
    loaded = [m.Load(load_id="shelf-7", weight=120.0)]
    vehicle.on_state(state(B, 4, node_states=remaining(6), action_states=pick(m.ActionStatus.FINISHED),
                           loads=loaded), now=4.0)
    vehicle.on_state(state(C, 6, action_states=pick(m.ActionStatus.FINISHED), loads=loaded), now=5.0)
    reached = [(e.cell, e.heading, e.job_id, e.step_index, e.time) for e in events_of(vehicle, CellReached)]
    # No pose and no way into A yet: its heading is unknown, so A is only in the status.
    assert reached == [
        (B, Heading.EAST, "job-1", 1, 2.0), (B, Heading.NORTH, "job-1", 2, 3.0), (C, Heading.EAST, "job-1", 3, 5.0)]
    assert vehicle.ignored == {"cell reached with no known heading": 1}
    assert events_of(vehicle, ActionFinished) == [
        ActionFinished("R1", 4.0, job_id="job-1", action_id="lift-1", kind=ActionKind.LIFT)]
    assert events_of(vehicle, LoadChanged) == [LoadChanged("R1", 4.0, shelf_id="shelf-7", weight_kg=120.0)]
    assert events_of(vehicle, JobFinished) == [JobFinished("R1", 5.0, job_id="job-1")]
    assert len(events_of(vehicle, StatusReport)) == 5
    assert events_of(vehicle, StatusReport)[-1].shelf_id == "shelf-7"
    assert (vehicle.cell, vehicle.heading) == (C, Heading.EAST)


def test_the_pose_gives_the_heading_when_the_vehicle_reports_one():
    vehicle, _ = session()
    pose = m.AgvPosition(x=3.0, y=3.0, theta=3.1, map_id="tiny", position_initialized=True)
    vehicle.on_state(state(B, 0, order_id="", agv_position=pose), now=1.0)
    [reached] = events_of(vehicle, CellReached)
    assert (reached.cell, reached.heading, reached.job_id, reached.step_index) == (B, Heading.WEST, None, None)


def test_a_vehicle_without_qr_node_ids_is_localised_from_its_position():
    vehicle, _ = session()
    x, y = WAREHOUSE.position(D)
    pose = m.AgvPosition(x=x + 0.2, y=y - 0.1, theta=0.0, map_id="tiny", position_initialized=True)
    vehicle.on_state(state(None, order_id="", agv_position=pose, last_node_id="node-77"), now=1.0)
    assert vehicle.cell == D
    wrong_map = pose.model_copy(update={"map_id": "hall-9"})
    vehicle.on_state(state(None, order_id="", agv_position=wrong_map, header_id=1), now=2.0)
    assert vehicle.ignored == {"map id 'hall-9' is not 'tiny'": 1}
    assert vehicle.cell == D


def test_a_failed_action_carries_the_vehicles_reason():
    vehicle, _ = session()
    vehicle.send_job(lift_job(), now=0.0)
    error = m.VehicleError(error_type="pickFailed", error_level=m.ErrorLevel.WARNING,
                           error_description="no shelf above",
                           error_references=[m.Reference(reference_key="actionId", reference_value="lift-1")])
    failed = [m.ActionState(action_id="lift-1", action_status=m.ActionStatus.FAILED)]
    vehicle.on_state(state(B, 4, action_states=failed, errors=[error]), now=1.0)
    assert events_of(vehicle, ActionFailed) == [ActionFailed(
        "R1", 1.0, job_id="job-1", action_id="lift-1", kind=ActionKind.LIFT, reason="pickFailed: no shelf above")]


def test_errors_are_raised_and_cleared_once():
    vehicle, _ = session()
    fatal = m.VehicleError(error_type="laserContaminated", error_level=m.ErrorLevel.FATAL, error_hint="clean it")
    vehicle.on_state(state(A, order_id="", errors=[fatal]), now=1.0)
    vehicle.on_state(state(A, order_id="", errors=[fatal], header_id=1), now=2.0)
    vehicle.on_state(state(A, order_id="", errors=[], header_id=2), now=3.0)
    assert events_of(vehicle, ErrorRaised) == [
        ErrorRaised("R1", 1.0, code="laserContaminated", severity=Severity.FATAL, message="clean it")]
    assert events_of(vehicle, ErrorCleared) == [ErrorCleared("R1", 3.0, code="laserContaminated")]


def test_battery_is_reported_on_a_change_of_a_percent_or_of_charging():
    vehicle, _ = session()
    for now, charge, charging in ((1, 80.0, False), (2, 79.5, False), (3, 78.9, False), (4, 78.9, True)):
        vehicle.on_state(state(A, order_id="", battery_state=m.BatteryState(battery_charge=charge, charging=charging)),
                         now=float(now))
    assert [(e.time, e.charge, e.charging) for e in events_of(vehicle, BatteryReport)] == [
        (1.0, 0.8, False), (3.0, pytest.approx(0.789), False), (4.0, pytest.approx(0.789), True)]


# --- connection, staleness, reconciliation -------------------------------------------------------

def test_a_vehicle_with_a_stale_state_is_lost_though_its_connection_says_online():
    vehicle, _ = session()
    vehicle.on_connection(connection(m.ConnectionState.ONLINE), now=0.0)
    vehicle.on_state(state(A, order_id=""), now=0.0)
    vehicle.tick(35.0)
    assert [e.online for e in events_of(vehicle, ConnectionChanged)] == [True]
    vehicle.tick(35.5)
    assert events_of(vehicle, ConnectionChanged)[-1] == ConnectionChanged("R1", 35.5, online=False,
                                                                          reason="no state for 35 s")
    vehicle.on_state(state(A, order_id="", header_id=1), now=40.0)
    assert events_of(vehicle, ConnectionChanged)[-1] == ConnectionChanged("R1", 40.0, online=True,
                                                                          reason="state received")


def test_last_will_makes_the_vehicle_lost_and_online_asks_for_state_and_factsheet():
    vehicle, outbox = session()
    vehicle.on_state(state(A, order_id=""), now=0.0)
    vehicle.on_connection(connection(m.ConnectionState.CONNECTIONBROKEN), now=1.0)
    assert events_of(vehicle, ConnectionChanged)[-1] == ConnectionChanged("R1", 1.0, online=False,
                                                                          reason="CONNECTIONBROKEN")
    vehicle.on_connection(connection(m.ConnectionState.ONLINE), now=2.0)
    assert [a.action_type for a in outbox.instants()] == ["stateRequest", "factsheetRequest"]


def test_a_lost_vehicle_keeps_its_job_and_reconciles_when_it_returns():
    vehicle, outbox = session()
    vehicle.send_job(Job("job-1", (Step(A), Step(B))), now=0.0)
    vehicle.on_state(state(A, 0, update=0), now=0.1)
    vehicle.extend_job("job-1", [Step(C)], now=0.2)  # update 1 goes out ...
    vehicle.on_connection(connection(m.ConnectionState.CONNECTIONBROKEN), now=0.3)  # ... into the void
    vehicle.tick(60.0)
    vehicle.extend_job("job-1", [Step(D)], now=60.0)  # the job is still ours to extend
    # Back: the vehicle finished its base (B) and never got update 1.
    vehicle.on_connection(connection(m.ConnectionState.ONLINE), now=61.0)
    vehicle.on_state(state(B, 2, update=0, header_id=1), now=61.1)
    vehicle.tick(62.0)
    updates = [o.order_update_id for o in outbox.orders()]
    assert updates[-1] == 1 and 2 not in updates  # update 1 again, not a new one over it
    vehicle.on_state(state(B, 2, update=1, header_id=2), now=62.1)
    last = outbox.orders()[-1]
    assert last.order_update_id == 2 and [n.node_id for n in last.nodes] == [QR[C], QR[D]]


def test_instant_actions_are_resent_until_they_appear_in_action_states(vda5050_schemas):
    vehicle, outbox = session()
    action_id = vehicle.instant(InstantCommand(InstantKind.INIT_POSITION, cell=C, heading=Heading.SOUTH), now=0.0)
    vehicle.tick(1.0)
    first, again = outbox.instants()
    assert first == again and first.action_type == "initPosition"
    assert {p.key: p.value for p in first.action_parameters} == {
        "x": WAREHOUSE.position(C)[0], "y": WAREHOUSE.position(C)[1], "theta": Heading.SOUTH.radians,
        "mapId": "tiny", "lastNodeId": QR[C]}
    message = outbox.sent[0][0]
    assert vda5050_schemas["instantActions"].is_valid(as_json(message))
    done = [m.ActionState(action_id=action_id, action_status=m.ActionStatus.FINISHED)]
    vehicle.on_state(state(C, order_id="", action_states=done), now=1.5)
    vehicle.tick(5.0)
    assert len(outbox.instants()) == 2


@pytest.mark.parametrize(("kind", "action_type"), [
    (InstantKind.PAUSE, "startPause"), (InstantKind.RESUME, "stopPause"), (InstantKind.CANCEL, "cancelOrder"),
    (InstantKind.STATUS, "stateRequest"), (InstantKind.STOP, "startPause"), (InstantKind.RESET, "stopPause")])
def test_instant_commands_map_to_predefined_actions(kind, action_type):
    vehicle, outbox = session()
    vehicle.instant(InstantCommand(kind), now=0.0)
    assert [a.action_type for a in outbox.instants()] == [action_type]


@pytest.mark.parametrize(("kind", "blocking"), [
    (InstantKind.PAUSE, "SOFT"), (InstantKind.RESUME, "NONE"), (InstantKind.CANCEL, "HARD"),
    (InstantKind.STATUS, "NONE")])
def test_instant_actions_block_as_section_6_12_says(kind, blocking):
    """A pause stops driving but lets actions go on (SOFT); its end and a state request
    block nothing; a cancel is the only thing the vehicle does at that time."""
    vehicle, outbox = session()
    vehicle.instant(InstantCommand(kind), now=0.0)
    assert [a.blocking_type for a in outbox.instants()] == [m.BlockingType(blocking)]


def test_node_actions_block_as_section_6_12_says():
    """Lifting, lowering and waiting stand and run alone (HARD); charging stands but
    blocks no other action (SOFT)."""
    vehicle, outbox = session()
    kinds = [ActionKind.LIFT, ActionKind.LOWER, ActionKind.WAIT, ActionKind.START_CHARGING, ActionKind.STOP_CHARGING]
    actions = tuple(CellAction(f"a{i}", kind, shelf_id="shelf-7" if kind in (ActionKind.LIFT, ActionKind.LOWER) else None,
                               duration=1.0) for i, kind in enumerate(kinds))
    vehicle.send_job(Job("job-1", (Step(A), Step(B, actions=actions))), now=0.0)
    [order] = outbox.orders()
    assert [(a.action_type, a.blocking_type.value) for a in order.nodes[1].actions] == [
        ("pick", "HARD"), ("drop", "HARD"), ("wait", "HARD"), ("startCharging", "SOFT"), ("stopCharging", "SOFT")]


def test_orders_speak_the_vehicles_protocol_version():
    vehicle, outbox = session()
    vehicle.on_state(state(A, order_id="").model_copy(update={"version": "2.0.0"}), now=0.0)
    vehicle.send_job(Job("j", (Step(A), Step(B))), now=1.0)
    assert outbox.orders()[0].version == "2.0.0"


# --- property: whatever schema-valid states a vehicle sends, the session never breaks ---------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NODE_IDS = st.sampled_from([QR[A], QR[B], QR[C], QR[D], "", "node-77", "ÿ", WAREHOUSE.qr_id(Cell(1, 1))])
STATUSES = st.sampled_from(list(m.ActionStatus))
ACTION_IDS = st.sampled_from(["lift-1", "R1-i1", "R1-i2", "other", ""])


POSES = st.none() | st.builds(
    lambda x, y, theta, map_id, ok: m.AgvPosition(x=x, y=y, theta=theta, map_id=map_id, position_initialized=ok),
    st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-10, 10), st.sampled_from(["tiny", "other"]),
    st.booleans())
REFERENCES = st.none() | st.lists(st.builds(
    lambda k, v: m.Reference(reference_key=k, reference_value=v),
    st.sampled_from(["orderId", "orderUpdateId", "actionId", "x"]),
    st.sampled_from(["job-1", "0", "1", "lift-1", ""])), max_size=3)
ERRORS = st.lists(st.builds(
    lambda kind, level, refs: m.VehicleError(error_type=kind, error_level=level, error_references=refs),
    st.sampled_from(["noRouteError", "orderUpdateError", "validationError", "laser", ""]),
    st.sampled_from(list(m.ErrorLevel)), REFERENCES), max_size=3)
NODE_STATES = st.lists(st.builds(lambda n, s: m.NodeState(node_id=n, sequence_id=s, released=True),
                                 NODE_IDS, st.integers(0, 20)), max_size=3)
ACTION_STATES = st.lists(st.builds(lambda a, s: m.ActionState(action_id=a, action_status=s),
                                   ACTION_IDS, STATUSES), max_size=4)
LOADS = st.none() | st.lists(st.builds(lambda i, w: m.Load(load_id=i, weight=w),
                                       st.none() | st.sampled_from(["shelf-7", "", "ÿ"]),
                                       st.none() | st.floats(0, 1e4)), max_size=2)
UINT32 = st.integers(0, 2**32 - 1)


def make_state(header_id, version, order_id, update, node, seq, node_states, action_states, loads, charge,
               charging, errors, pose, vx, paused) -> m.State:
    return state_minimal(
        **header(header_id, version=version), order_id=order_id, order_update_id=update, last_node_id=node,
        last_node_sequence_id=seq, node_states=node_states, action_states=action_states, loads=loads,
        battery_state=m.BatteryState(battery_charge=charge, charging=charging), errors=errors,
        agv_position=pose, velocity=None if vx is None else m.Velocity(vx=vx), paused=paused)


VEHICLE_STATES = st.builds(
    make_state, UINT32, st.sampled_from(m.SUPPORTED_VERSIONS), st.sampled_from(["job-1", "", "job-x"]),
    UINT32, NODE_IDS, UINT32, NODE_STATES, ACTION_STATES, LOADS, st.floats(-1e3, 1e3), st.booleans(),
    ERRORS, POSES, st.none() | st.floats(-1e3, 1e3), st.none() | st.booleans())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["state", "tick", "extend", "instant", "broken", "online"]),
                          VEHICLE_STATES), min_size=1, max_size=12))
def test_no_sequence_of_valid_states_breaks_the_session(script):
    vehicle, outbox = session()
    vehicle.send_job(lift_job(), now=0.0)
    now = 0.0
    for step, (what, message) in enumerate(script):
        now += 0.7
        if what == "state":
            vehicle.on_state(message, now)
        elif what == "tick":
            now += 40  # past the state timeout
            vehicle.tick(now)
        elif what == "extend":
            try:
                vehicle.extend_job("job-1", [Step(D)] if step % 2 else [Step(C)], now)
            except ValueError:
                pass  # job over, or not adjacent to the last step: refused in words, as it should
        elif what == "instant":
            vehicle.instant(InstantCommand(InstantKind.STATUS), now)
        else:
            state_of = m.ConnectionState.CONNECTIONBROKEN if what == "broken" else m.ConnectionState.ONLINE
            vehicle.on_connection(connection(state_of), now)
    finished = [e.job_id for e in events_of(vehicle, JobFinished)]
    assert len(finished) == len(set(finished))  # a job finishes at most once
    assert all(event.robot_id == "R1" for event in vehicle.events)
    assert all(earlier.time <= later.time for earlier, later in zip(vehicle.events, vehicle.events[1:]))
    for message, topic in outbox.sent:
        assert isinstance(message, m.Order if topic is Topic.ORDER else m.InstantActions)
