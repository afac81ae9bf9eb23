"""The emulated robots as VDA 5050 2.1.0 vehicles: each drive unit's firmware behind MQTT.

A real vehicle's controller runs the VDA 5050 order logic on top of its own motion
firmware. This module is that layer for the emulator: a `Vehicle` takes orders and
instant actions off the wire, applies the acceptance flow of section 6.6.2 (new order or
update, busy, first node reachable, deprecated or duplicate update, stitching), turns the
released base into a job for its DriveUnit (the firmware interface the serial front end
uses too) and reports the DriveUnit's events back as state messages. A master cannot tell
it from a vehicle: it only ever sees the broker.

What a node is: a QR code of the map (nodeId = WarehouseMap.qr_id). The robot localises
on codes, so a new order must start on the code it stands on. The base runs as one job;
the robot stops at the last released node (the decision point) and raises newBaseRequest
when a horizon is waiting and two or fewer base nodes lie ahead.

Threads meet here as in serial_front.py: every vehicle's MQTT client has a network
thread, the world is stepped by another, and one lock (`MqttFloor.lock`) serialises
them. Connection changes (a CommunicationLoss fault) run on a worker thread, because
stopping a client's network thread while holding the lock could wait on a message
handler that waits on the lock.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping

from drivers.commands import ActionKind, CellAction, InstantCommand, InstantKind, Job, Step, check_path
from drivers.events import (
    ActionFailed,
    ActionFinished,
    CellReached,
    ConnectionChanged,
    JobRejected,
    RobotEvent,
    Severity,
    StatusReport,
)
from drivers.vda5050.messages import (
    LATEST_VERSION,
    UNSTAMPED,
    Action,
    ActionParameterSpec,
    ActionScope,
    ActionState,
    ActionStatus,
    AgvAction,
    AgvClass,
    AgvGeometry,
    AgvKinematic,
    AgvPosition,
    BatteryState,
    BlockingType,
    Edge,
    EdgeState,
    ErrorLevel,
    EStop,
    Factsheet,
    InstantActions,
    Load,
    LoadSet,
    LoadSpecification,
    LocalizationType,
    MapStatus,
    MaxArrayLens,
    MaxStringLens,
    NavigationType,
    Node,
    NodeState,
    OperatingMode,
    OptionalParameter,
    Order,
    PhysicalParameters,
    PredefinedAction,
    ProtocolFeatures,
    ProtocolLimits,
    Reference,
    SafetyState,
    State,
    Support,
    Timing,
    TypeSpecification,
    ValueDataType,
    VehicleError,
    VehicleMap,
    Velocity,
    Visualization,
)
from drivers.vda5050.mqtt import FROM_MASTER, BrokerConfig, MqttLink, Received, Topic, TopicLayout, VehicleId
from drivers.vda5050.order_graph import graph_problems
from firmware_emulator.drive_unit import EMERGENCY_STOP, OBSTACLE, DriveUnit, Status
from firmware_emulator.pacing import PacedFloor
from firmware_emulator.world import World
from maps.model import Heading, WarehouseMap

MANUFACTURER = "agv-emulator"
WAIT = "wait"  # our own action type: stand still `duration` seconds (a station visit)
STATE_INTERVAL = 30.0  # s: section 6.10, a state at the latest every 30 s
#: How close (m) nodePosition must be to the code's own position: one code is one node.
POSITION_TOLERANCE = 0.1

NODE_ACTIONS: dict[str, ActionKind] = {
    PredefinedAction.PICK: ActionKind.LIFT,
    PredefinedAction.DROP: ActionKind.LOWER,
    PredefinedAction.START_CHARGING: ActionKind.START_CHARGING,
    PredefinedAction.STOP_CHARGING: ActionKind.STOP_CHARGING,
    WAIT: ActionKind.WAIT,
}
TERMINAL = (ActionStatus.FINISHED, ActionStatus.FAILED)
#: The order errors of section 6.6.4; each lasts until the vehicle accepts a new order.
ORDER_ERRORS = ("validationError", "orderError", "orderUpdateError", "noRouteError")


class Refusal(Exception):
    """An order the acceptance flow refuses: the error the vehicle reports for it."""

    def __init__(self, error_type: str, description: str, references: Mapping[str, str] = {}) -> None:
        super().__init__(description)
        self.error_type = error_type
        self.description = description
        self.references = dict(references)


@dataclass
class _Tracked:
    """An action the vehicle holds, from an order or an instant action."""

    action: Action
    status: ActionStatus = ActionStatus.WAITING
    result: str | None = None

    def state(self) -> ActionState:
        return ActionState(action_id=self.action.action_id, action_type=self.action.action_type,
                           action_status=self.status, result_description=self.result)


class Vehicle:
    """One drive unit as a VDA 5050 vehicle. Every method runs under the floor's lock."""

    def __init__(self, floor: "MqttFloor", unit: DriveUnit, vehicle: VehicleId) -> None:
        self.floor = floor
        self.unit = unit
        self.id = vehicle
        self.map: WarehouseMap = floor.world.map
        self.order_id = ""
        self.order_update_id = 0
        self._jobs = 0
        self.job_id: str | None = None  # the DriveUnit job running the current base
        self.base: list[Node] = []  # released nodes; base[k] is step k of the job
        self.base_edges: list[Edge] = []  # base_edges[k] joins base[k] and base[k + 1]
        self.horizon: list[Node] = []
        self.horizon_edges: list[Edge] = []
        self.at = 0  # index in `base` of the last node traversed
        self.last_node_id = self.map.qr_id(unit.cell) if unit.cell is not None else ""
        self.last_node_sequence_id = 0
        self.actions: dict[str, _Tracked] = {}
        self.errors: dict[str, VehicleError] = {}  # the vehicle's own (order) errors by type
        self._cancel: _Tracked | None = None  # a cancelOrder still running
        self._charging: dict[str, str] = {}  # job id -> instant charging action id
        self.dirty = False  # a state is due
        self.next_state_at = 0.0
        self.next_visualization_at = 0.0
        self.link = MqttLink(
            floor.broker, subscriptions=sorted(FROM_MASTER), on_message=self._receive, vehicle=vehicle,
            version=LATEST_VERSION, layout=floor.layout, on_connect=self._connected, clock=floor.world.clock,
        )

    # --- the wire --------------------------------------------------------------------------

    def _receive(self, received: Received) -> None:
        with self.floor.lock:
            if not self.unit.online or self.unit.booting:
                return  # a robot whose radio is down or that is booting hears nothing
            if isinstance(received.message, Order):
                self.on_order(received.message)
            elif isinstance(received.message, InstantActions):
                for action in received.message.actions:
                    self.on_instant(action)
            self.publish_state()

    def _connected(self) -> None:
        """After every (re)connect: the factsheet (retained; a restarted broker lost it) and
        a state, so that the master can reconcile at once."""
        with self.floor.lock:
            self.publish_factsheet()
            self.publish_state()

    def publish_state(self) -> None:
        self.dirty = False
        self.next_state_at = self.floor.world.now() + self.floor.state_interval
        self.link.publish(self.state(), Topic.STATE)

    def publish_factsheet(self) -> None:
        self.link.publish(factsheet(self.unit, self.id, self.floor.world.dt), Topic.FACTSHEET)

    def publish_visualization(self) -> None:
        position, velocity = self._pose()
        self.link.publish(Visualization(header_id=0, timestamp=UNSTAMPED, version=LATEST_VERSION,
                                        manufacturer=self.id.manufacturer, serial_number=self.id.serial_number,
                                        agv_position=position, velocity=velocity), Topic.VISUALIZATION)

    # --- orders (section 6.6.2) ------------------------------------------------------------

    def on_order(self, order: Order) -> None:
        try:
            steps = self._validate(order)
            if order.order_id != self.order_id:
                self._accept_new(order, steps)
            elif order.order_update_id < self.order_update_id:
                raise Refusal("orderUpdateError", f"orderUpdateId {order.order_update_id} is older than "
                              f"{self.order_update_id}, which I hold", _order_refs(order))
            elif order.order_update_id == self.order_update_id:
                return  # a resend of what I hold: ignored (6.6.4.3)
            else:
                self._accept_update(order, steps)
        except Refusal as refusal:
            self.errors[refusal.error_type] = VehicleError(
                error_type=refusal.error_type, error_level=ErrorLevel.WARNING,
                error_description=refusal.description,
                error_references=[Reference(reference_key=k, reference_value=v)
                                  for k, v in {"topic": "order", **_order_refs(order), **refusal.references}.items()],
            )

    def _validate(self, order: Order) -> list[Step]:
        """Steps for the order's released nodes; raises Refusal (validationError, noRouteError,
        orderError) for an order the vehicle cannot take."""
        problems = graph_problems(order)
        if problems:
            raise Refusal("validationError", "; ".join(problems))
        cells = []
        for node in order.nodes:
            if not self.map.has_qr(node.node_id):
                raise Refusal("noRouteError", f"node {node.node_id!r} is not a code of map {self.map.name!r}",
                              {"nodeId": node.node_id})
            cell = self.map.cell_of_qr(node.node_id)
            position = node.node_position
            if position is not None:
                x, y = self.map.position(cell)
                if position.map_id != self.map.name:
                    raise Refusal("validationError", f"node {node.node_id!r} is on map {position.map_id!r}, "
                                  f"I drive on {self.map.name!r}", {"nodeId": node.node_id})
                if math.hypot(position.x - x, position.y - y) > POSITION_TOLERANCE:
                    raise Refusal("validationError", f"node {node.node_id!r} at ({position.x}, {position.y}) "
                                  f"is not where its code is ({x:.3f}, {y:.3f})", {"nodeId": node.node_id})
            cells.append(cell)
        try:
            check_path([Step(c) for c in cells], f"order {order.order_id!r}")
        except ValueError as exc:
            raise Refusal("noRouteError", f"{exc}: I drive from code to adjacent code") from None
        for edge in order.edges:
            if edge.actions:
                raise Refusal("orderError", f"edge {edge.edge_id!r} has actions; I act only on nodes",
                              {"edgeId": edge.edge_id})
            if edge.trajectory is not None or edge.corridor is not None:
                raise Refusal("orderError", f"edge {edge.edge_id!r} has a trajectory or corridor; "
                              "I follow the straight line between codes", {"edgeId": edge.edge_id})
        steps = []
        for node, cell in zip(order.nodes, cells):
            if not node.released:
                break
            actions = tuple(self._cell_action(action) for action in node.actions)
            theta = node.node_position.theta if node.node_position is not None else None
            steps.append(Step(cell, Heading.from_radians(theta) if theta is not None else None, actions))
        return steps

    def _cell_action(self, action: Action) -> CellAction:
        kind = NODE_ACTIONS.get(action.action_type)
        if kind is None:
            raise Refusal("orderError", f"I cannot do action type {action.action_type!r} on a node",
                          {"actionId": action.action_id})
        if action.blocking_type is BlockingType.NONE:
            # Every node action of this robot stands still (the lift and the charger contacts
            # need it): an action asked to run while driving is refused, not run standing.
            raise Refusal("orderError", f"action {action.action_id!r} ({action.action_type}) cannot run while "
                          "driving: blockingType NONE is not supported, use SOFT or HARD",
                          {"actionId": action.action_id})
        parameters = {p.key: p.value for p in action.action_parameters or ()}
        shelf = parameters.get("loadId")
        if kind is ActionKind.WAIT:
            duration = parameters.get("duration")
            if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
                raise Refusal("orderError", f"action {action.action_id!r}: wait needs a duration >= 0 seconds",
                              {"actionId": action.action_id, "actionParameter": "duration"})
            return CellAction(action.action_id, kind, duration=float(duration))
        if shelf is not None and not isinstance(shelf, str):
            raise Refusal("orderError", f"action {action.action_id!r}: loadId must be a string",
                          {"actionId": action.action_id, "actionParameter": "loadId"})
        return CellAction(action.action_id, kind, shelf_id=shelf)

    def busy(self, besides: _Tracked | None = None) -> bool:
        """Rule 3: executing an order or waiting for an update (`besides`: the instant
        action asking, which is itself running)."""
        return bool(self._node_states()) or any(
            t.status not in TERMINAL for t in self.actions.values() if t is not besides)

    def _accept_new(self, order: Order, steps: list[Step]) -> None:
        if self.busy():
            raise Refusal("orderError", f"still executing order {self.order_id!r}: cancel it first")
        if not steps:
            raise Refusal("validationError", "an order needs a released first node")
        if self.unit.cell != steps[0].cell or not self.unit.localised:
            raise Refusal("noRouteError", f"order starts at node {order.nodes[0].node_id!r} but I stand on "
                          f"{self.last_node_id!r}", {"nodeId": order.nodes[0].node_id})
        job_id = self._next_job_id(order.order_id)
        rejection = self._run(lambda: self.unit.send_job(Job(job_id, tuple(steps))), job_id)
        if rejection is not None:
            raise Refusal("orderError", rejection)
        self.actions = {}
        for error_type in (*ORDER_ERRORS, "noOrderToCancel"):
            self.errors.pop(error_type, None)
        self.order_id, self.order_update_id = order.order_id, order.order_update_id
        self.job_id = job_id
        released = len(steps)
        self.base, self.base_edges = list(order.nodes[:released]), list(order.edges[: released - 1])
        self.horizon, self.horizon_edges = list(order.nodes[released:]), list(order.edges[released - 1:])
        self.at = 0
        self.last_node_id, self.last_node_sequence_id = self.base[0].node_id, self.base[0].sequence_id
        self._track_actions(order.nodes)

    def _accept_update(self, order: Order, steps: list[Step]) -> None:
        first = order.nodes[0]
        running = self.busy()
        if running:
            stitch = self.base[-1] if self.base else None
            if stitch is None or (first.node_id, first.sequence_id) != (stitch.node_id, stitch.sequence_id):
                where = f"{stitch.node_id!r}/{stitch.sequence_id}" if stitch else "none"
                raise Refusal("orderUpdateError", f"update starts at {first.node_id!r}/{first.sequence_id}, "
                              f"not at my decision point {where}", _order_refs(order))
        elif (first.node_id, first.sequence_id) != (self.last_node_id, self.last_node_sequence_id):
            raise Refusal("orderUpdateError", f"update starts at {first.node_id!r}/{first.sequence_id}, not at "
                          f"my last node {self.last_node_id!r}/{self.last_node_sequence_id}", _order_refs(order))
        if not steps:
            raise Refusal("orderUpdateError", "the stitching node must be released", _order_refs(order))
        new_steps = steps[1:]
        known = {a.action_id for n in self.base for a in n.actions}
        fresh_actions = [a for a in first.actions if a.action_id not in known]
        if fresh_actions:
            raise Refusal("orderUpdateError", "actions on the stitching node cannot change", _order_refs(order))
        if new_steps:
            if self.job_id is not None and self.unit.job_id == self.job_id:
                job_id = self.job_id
                rejection = self._run(lambda: self.unit.extend_job(job_id, new_steps), job_id)
                keep = True
            else:  # the job ended (cancelled, failed): carry on from the stitch with a new one
                job_id = self._next_job_id(order.order_id)
                rejection = self._run(lambda: self.unit.send_job(Job(job_id, tuple(steps))), job_id)
                keep = False
            if rejection is not None:
                raise Refusal("orderUpdateError", rejection, _order_refs(order))
            if not keep:
                self.job_id = job_id
                self.base, self.base_edges, self.at = [first], [], 0
        released = len(steps)
        self.base += order.nodes[1:released]
        self.base_edges += order.edges[: released - 1]
        self.horizon, self.horizon_edges = list(order.nodes[released:]), list(order.edges[released - 1:])
        self.order_update_id = order.order_update_id
        for error_type in ORDER_ERRORS:
            self.errors.pop(error_type, None)
        self._track_actions(order.nodes[1:])

    def _run(self, command: Callable[[], bool], job_id: str) -> str | None:
        """Give the firmware a job command; None if it took it, else its reason."""
        reasons: list[str] = []
        self.floor.rejections[self.unit.id] = reasons
        try:
            accepted = command()
        finally:
            self.floor.rejections.pop(self.unit.id, None)
        if accepted:
            return None
        return reasons[0] if reasons else "the drive unit is booting"

    def _next_job_id(self, order_id: str) -> str:
        self._jobs += 1
        return f"{order_id}#{self._jobs}"

    def _track_actions(self, nodes: list[Node]) -> None:
        for node in nodes:
            for action in node.actions:
                self.actions.setdefault(action.action_id, _Tracked(action))

    # --- instant actions ---------------------------------------------------------------------

    def on_instant(self, action: Action) -> None:
        if action.action_id in self.actions:
            return  # a resend: instant actions are idempotent by actionId
        tracked = self.actions[action.action_id] = _Tracked(action, ActionStatus.RUNNING)
        kind = action.action_type
        if kind == PredefinedAction.START_PAUSE:
            self.unit.instant(InstantCommand(InstantKind.PAUSE))
            self._finish(tracked, ActionStatus.FINISHED)
            self._pause_actions(True)
        elif kind == PredefinedAction.STOP_PAUSE:
            # Also the reset after a stop (section 6.8.1: stopPause restarts a vehicle stopped
            # by its button): latched emergency stops, collisions and stalls are cleared.
            self.unit.instant(InstantCommand(InstantKind.RESUME))
            self.unit.instant(InstantCommand(InstantKind.RESET))
            self._finish(tracked, ActionStatus.FINISHED)
            self._pause_actions(False)
        elif kind == PredefinedAction.CANCEL_ORDER:
            self._cancel_order(tracked)
        elif kind == PredefinedAction.STATE_REQUEST:
            self._finish(tracked, ActionStatus.FINISHED)
        elif kind == PredefinedAction.FACTSHEET_REQUEST:
            self.publish_factsheet()
            self._finish(tracked, ActionStatus.FINISHED)
        elif kind == PredefinedAction.INIT_POSITION:
            self._init_position(tracked)
        elif kind in (PredefinedAction.START_CHARGING, PredefinedAction.STOP_CHARGING):
            self._charge(tracked, NODE_ACTIONS[kind])
        else:
            self._finish(tracked, ActionStatus.FAILED, f"instant action {kind!r} is not supported")

    def _finish(self, tracked: _Tracked, status: ActionStatus, result: str | None = None) -> None:
        tracked.status, tracked.result = status, result
        self.dirty = True

    def _pause_actions(self, paused: bool) -> None:
        """Order actions the pause holds: waiting ones say PAUSED while paused (6.11)."""
        running = self._running_action_id()
        if running is not None and running in self.actions:
            self.actions[running].status = ActionStatus.PAUSED if paused else ActionStatus.RUNNING

    def _cancel_order(self, tracked: _Tracked) -> None:
        if not self.busy(besides=tracked):
            self._finish(tracked, ActionStatus.FAILED, "no order to cancel")
            self.errors["noOrderToCancel"] = VehicleError(
                error_type="noOrderToCancel", error_level=ErrorLevel.WARNING,
                error_description="cancelOrder received but I have no order",
                error_references=[Reference(reference_key="actionId", reference_value=tracked.action.action_id)])
            return
        # Section 6.6.3: actions not started fail; the running one fails if the firmware can
        # interrupt it (a wait) and otherwise runs on (a lift) and ends as it ends, RUNNING
        # until then. The firmware reports either, and the cancel finishes after it.
        running = self._running_action_id()
        for other in self.actions.values():
            if other is not tracked and other.status not in TERMINAL and other.action.action_id != running:
                other.status, other.result = ActionStatus.FAILED, "order cancelled"
        if running is not None and running in self.actions:
            self.actions[running].status = ActionStatus.RUNNING
        self.unit.instant(InstantCommand(InstantKind.CANCEL))
        # The robot stops on the next code it can brake for; nodes past it are deleted.
        self.base, self.base_edges = self.base[: self.at + 2], self.base_edges[: self.at + 1]
        self.horizon, self.horizon_edges = [], []
        self.job_id = None
        self._cancel = tracked
        self._settle_cancel()

    def _settle_cancel(self) -> None:
        """The cancel is FINISHED once the robot stands and no action of the order runs."""
        if self._cancel is None or self.unit.activity is not None:
            return
        if all(t.status in TERMINAL for t in self.actions.values() if t is not self._cancel):
            self.base, self.base_edges = self.base[: self.at + 1], self.base_edges[: self.at]
            self._finish(self._cancel, ActionStatus.FINISHED)
            self._cancel = None

    def _init_position(self, tracked: _Tracked) -> None:
        parameters = {p.key: p.value for p in tracked.action.action_parameters or ()}
        node, map_id = parameters.get("lastNodeId"), parameters.get("mapId", self.map.name)
        cell = None
        if map_id != self.map.name:
            reason = f"map {map_id!r} is not mine ({self.map.name!r})"
        elif isinstance(node, str) and self.map.has_qr(node):
            cell = self.map.cell_of_qr(node)
        elif isinstance(parameters.get("x"), (int, float)) and isinstance(parameters.get("y"), (int, float)):
            cell = self.map.cell_at(float(parameters["x"]), float(parameters["y"]))
        else:
            reason = "initPosition needs lastNodeId (a code of the map) or x and y"
        if cell is None:
            self._finish(tracked, ActionStatus.FAILED, reason)
            return
        theta = parameters.get("theta")
        heading = Heading.from_radians(float(theta)) if isinstance(theta, (int, float)) else None
        self.unit.instant(InstantCommand(InstantKind.INIT_POSITION, cell=cell, heading=heading))
        if self.unit.localised and self.unit.cell == cell and "init_position_rejected" not in self.unit.errors:
            self.last_node_id = self.map.qr_id(cell)
            self._finish(tracked, ActionStatus.FINISHED)
        else:
            problem = self.unit.errors.get("init_position_rejected")
            self._finish(tracked, ActionStatus.FAILED, problem.message if problem else "position not accepted")

    def _charge(self, tracked: _Tracked, kind: ActionKind) -> None:
        """Charging as an instant action: a one-step job on the spot, when the robot is free."""
        if self.busy(besides=tracked) or self.unit.job_active or self.unit.cell is None:
            self._finish(tracked, ActionStatus.FAILED, "busy with an order: charge on a node of it instead")
            return
        job_id = self._next_job_id(tracked.action.action_id)
        step = Step(self.unit.cell, None, (CellAction(tracked.action.action_id, kind),))
        self._charging[job_id] = tracked.action.action_id
        rejection = self._run(lambda: self.unit.send_job(Job(job_id, (step,))), job_id)
        if rejection is not None:
            self._finish(tracked, ActionStatus.FAILED, rejection)

    # --- from the firmware --------------------------------------------------------------------

    def on_event(self, event: RobotEvent) -> None:
        if isinstance(event, StatusReport):
            self._settle_cancel()  # the firmware reports once it stands still after a cancel
            return  # otherwise the state has its own cadence
        if isinstance(event, ConnectionChanged):
            self.floor.connection(self, event.online)
            return
        if isinstance(event, JobRejected):
            reasons = self.floor.rejections.get(self.unit.id)
            if reasons is not None:
                reasons.append(event.reason)
            return
        if isinstance(event, CellReached):
            self._reached(event)
        elif isinstance(event, (ActionFinished, ActionFailed)):
            tracked = self.actions.get(event.action_id)
            if tracked is not None:
                failed = isinstance(event, ActionFailed)
                self._finish(tracked, ActionStatus.FAILED if failed else ActionStatus.FINISHED,
                             event.reason if failed else None)
                if failed and event.job_id == self.job_id:
                    self._abandon(f"action {event.action_id} failed: {event.reason}")
        self._settle_cancel()
        self.dirty = True

    def _reached(self, event: CellReached) -> None:
        qr = self.map.qr_id(event.cell)
        if event.job_id == self.job_id and event.step_index is not None and event.step_index < len(self.base):
            self.at = event.step_index
            node = self.base[self.at]
            self.last_node_id, self.last_node_sequence_id = node.node_id, node.sequence_id
            return
        for node in self.base[self.at + 1:]:  # cancelling: the node it stops on keeps its sequenceId
            if node.node_id == qr:
                self.last_node_id, self.last_node_sequence_id = node.node_id, node.sequence_id
                self.at = self.base.index(node)
                return
        self.last_node_id = qr

    def _abandon(self, why: str) -> None:
        """The firmware dropped the job (a failed action): the rest of the order is void."""
        for tracked in self.actions.values():
            if tracked.status is ActionStatus.WAITING:
                tracked.status, tracked.result = ActionStatus.FAILED, why
        self.base, self.base_edges = self.base[: self.at + 1], self.base_edges[: self.at]
        self.horizon, self.horizon_edges = [], []
        self.job_id = None

    def check_job(self) -> None:
        """Catch up with the firmware: nodes passed while the radio was down (the world
        reports nothing then), or a job it forgot (reboot, lost localisation), which ends
        the order's motion."""
        if self.job_id is None:
            return
        if self.unit.job_id != self.job_id:
            self._abandon("the robot lost its job")
            self.dirty = True
        elif self.unit.at > self.at and self.unit.at < len(self.base):
            self.at = self.unit.at
            node = self.base[self.at]
            self.last_node_id, self.last_node_sequence_id = node.node_id, node.sequence_id

    # --- the state ------------------------------------------------------------------------------

    def _node_states(self) -> list[Node]:
        return self.base[self.at + 1:] + self.horizon

    def _running_action_id(self) -> str | None:
        unit = self.unit
        if unit.activity not in ("lifting", "lowering", "waiting") or not unit.job_id:
            return None
        step = unit.steps[unit.at] if unit.at < len(unit.steps) else None
        if step is None or unit.actions_done >= len(step.actions):
            return None
        return step.actions[unit.actions_done].action_id

    def _pose(self, s: Status | None = None) -> tuple[AgvPosition, Velocity]:
        s = s or self.unit.status()
        position = AgvPosition(x=s.x, y=s.y, theta=math.remainder(s.theta, math.tau), map_id=self.map.name,
                               position_initialized=s.localised)
        heading = s.theta
        return position, Velocity(vx=s.speed * math.cos(heading), vy=s.speed * math.sin(heading), omega=0.0)

    def state(self) -> State:
        self.check_job()
        unit, s = self.unit, self.unit.status()
        running = self._running_action_id()
        for action_id, tracked in self.actions.items():
            if action_id == running and tracked.status is ActionStatus.WAITING:
                tracked.status = ActionStatus.RUNNING
            if tracked.action.action_id in self._charging.values() and tracked.status is ActionStatus.RUNNING \
                    and unit.job_id not in self._charging:
                tracked.status = ActionStatus.FINISHED
        nodes = self._node_states()
        edges = self.base_edges[self.at:] + self.horizon_edges
        base_ahead = len(self.base) - 1 - self.at
        errors = [VehicleError(error_type=e.code, error_description=e.message,
                               error_level=ErrorLevel.FATAL if e.severity is Severity.FATAL else ErrorLevel.WARNING)
                  for e in s.errors]
        position, velocity = self._pose(s)
        shelf = s.shelf_id
        return State(
            header_id=0, timestamp=UNSTAMPED, version=LATEST_VERSION,
            manufacturer=self.id.manufacturer, serial_number=self.id.serial_number,
            maps=[VehicleMap(map_id=self.map.name, map_version="1", map_status=MapStatus.ENABLED)],
            order_id=self.order_id, order_update_id=self.order_update_id,
            last_node_id=self.last_node_id, last_node_sequence_id=self.last_node_sequence_id,
            driving=s.state in ("driving", "turning"), paused=s.paused,
            new_base_request=bool(self.horizon) and base_ahead <= 2,
            distance_since_last_node=self._since_last_node(),
            operating_mode=OperatingMode.AUTOMATIC,
            node_states=[NodeState(node_id=n.node_id, sequence_id=n.sequence_id, released=n.released,
                                   node_position=n.node_position) for n in nodes],
            edge_states=[EdgeState(edge_id=e.edge_id, sequence_id=e.sequence_id, released=e.released)
                         for e in edges],
            agv_position=position, velocity=velocity,
            loads=[Load(load_id=shelf, load_type="shelf", weight=s.load_kg)] if shelf else [],
            action_states=[t.state() for t in self.actions.values()],
            battery_state=BatteryState(battery_charge=round(s.charge * 100.0, 2), charging=s.charging),
            errors=list(self.errors.values()) + errors,
            safety_state=SafetyState(e_stop=EStop.MANUAL if EMERGENCY_STOP in unit.errors else EStop.NONE,
                                     field_violation=OBSTACLE in unit.errors),
        )

    def _since_last_node(self) -> float:
        if not self.last_node_id or not self.map.has_qr(self.last_node_id):
            return 0.0
        x, y = self.map.position(self.map.cell_of_qr(self.last_node_id))
        w, i = self.floor.world, self.unit.index
        return round(math.hypot(float(w.x[i]) - x, float(w.y[i]) - y), 3)


def _order_refs(order: Order) -> dict[str, str]:
    return {"orderId": order.order_id, "orderUpdateId": str(order.order_update_id)}


def factsheet(unit: DriveUnit, vehicle: VehicleId, dt: float) -> Factsheet:
    """What this vehicle type can do, from its robot profile."""
    p = unit.profile
    node = [ActionScope.NODE]
    instant_node = [ActionScope.INSTANT, ActionScope.NODE]
    instant = [ActionScope.INSTANT]
    load_parameters = [
        ActionParameterSpec(key="stationType", value_data_type=ValueDataType.STRING, description="floor"),
        ActionParameterSpec(key="loadType", value_data_type=ValueDataType.STRING, description="shelf"),
        ActionParameterSpec(key="loadId", value_data_type=ValueDataType.STRING, is_optional=True,
                            description="the shelf expected; the action fails if another is there"),
    ]
    actions = [
        AgvAction(action_type=PredefinedAction.START_PAUSE, action_scopes=instant),
        AgvAction(action_type=PredefinedAction.STOP_PAUSE, action_scopes=instant,
                  action_description="also clears a latched emergency stop, collision or stall"),
        AgvAction(action_type=PredefinedAction.START_CHARGING, action_scopes=instant_node),
        AgvAction(action_type=PredefinedAction.STOP_CHARGING, action_scopes=instant_node),
        AgvAction(action_type=PredefinedAction.INIT_POSITION, action_scopes=instant, action_parameters=[
            ActionParameterSpec(key=k, value_data_type=t, is_optional=k in ("x", "y", "theta"))
            for k, t in (("x", ValueDataType.FLOAT), ("y", ValueDataType.FLOAT), ("theta", ValueDataType.FLOAT),
                         ("mapId", ValueDataType.STRING), ("lastNodeId", ValueDataType.STRING))]),
        AgvAction(action_type=PredefinedAction.STATE_REQUEST, action_scopes=instant),
        AgvAction(action_type=PredefinedAction.FACTSHEET_REQUEST, action_scopes=instant),
        AgvAction(action_type=PredefinedAction.CANCEL_ORDER, action_scopes=instant),
        AgvAction(action_type=PredefinedAction.PICK, action_scopes=node, action_parameters=load_parameters,
                  action_description="lift the shelf standing on this code"),
        AgvAction(action_type=PredefinedAction.DROP, action_scopes=node, action_parameters=load_parameters,
                  action_description="set the carried shelf down on this code"),
        AgvAction(action_type=WAIT, action_scopes=node, action_description="stand still for `duration` seconds",
                  action_parameters=[ActionParameterSpec(key="duration", value_data_type=ValueDataType.FLOAT)]),
    ]
    optional = [OptionalParameter(parameter=name, support=Support.SUPPORTED, description=text) for name, text in (
        ("order.nodes.nodePosition", "checked against the code's position on the map"),
        ("order.nodes.nodePosition.theta", "the heading to turn to on the node"),
    )]
    return Factsheet(
        header_id=0, timestamp=UNSTAMPED, version=LATEST_VERSION,
        manufacturer=vehicle.manufacturer, serial_number=vehicle.serial_number,
        type_specification=TypeSpecification(
            series_name="agv-emulator under-ride", agv_kinematic=AgvKinematic.DIFF, agv_class=AgvClass.CARRIER,
            max_load_mass=p.payload_kg, localization_types=[LocalizationType.GRID],
            navigation_types=[NavigationType.VIRTUAL_LINE_GUIDED]),
        physical_parameters=PhysicalParameters(
            speed_min=0.0, speed_max=p.max_speed, acceleration_max=p.acceleration,
            deceleration_max=p.emergency_deceleration, height_max=0.4, width=p.body_width_m, length=p.body_length_m),
        protocol_limits=ProtocolLimits(
            max_string_lens=MaxStringLens(), max_array_lens=MaxArrayLens(),
            timing=Timing(min_order_interval=dt, min_state_interval=dt, default_state_interval=STATE_INTERVAL)),
        protocol_features=ProtocolFeatures(optional_parameters=optional, agv_actions=actions),
        agv_geometry=AgvGeometry(),
        load_specification=LoadSpecification(load_sets=[LoadSet(
            set_name="shelf", load_type="shelf", max_weight=p.payload_kg, pick_time=p.lift_time,
            drop_time=p.lower_time)]),
    )


class MqttFloor(PacedFloor):
    """Every robot of a world as a VDA 5050 vehicle on one broker, and the lock that
    serialises the world's steps with the vehicles' messages."""

    def __init__(
        self,
        world: World,
        broker: BrokerConfig | str,
        *,
        robot_ids: list[str] | None = None,
        manufacturer: str = MANUFACTURER,
        layout: TopicLayout = TopicLayout(),
        state_interval: float = STATE_INTERVAL,
        visualization_interval: float | None = None,
    ) -> None:
        ids = list(world.robots) if robot_ids is None else robot_ids
        unknown = sorted(set(ids) - set(world.robots))
        if unknown:
            raise ValueError(f"no robot {', '.join(unknown)} in the world")
        if not state_interval > 0 or state_interval > STATE_INTERVAL:
            raise ValueError(f"state interval must be in (0, {STATE_INTERVAL:g}] s, got {state_interval}")
        if visualization_interval is not None and not visualization_interval > 0:
            raise ValueError(f"visualization interval must be positive, got {visualization_interval}")
        self.world = world
        self.broker = BrokerConfig.from_url(broker) if isinstance(broker, str) else broker
        self.layout = layout
        self.state_interval = state_interval
        self.visualization_interval = visualization_interval
        self.lock = threading.RLock()
        self.rejections: dict[str, list[str]] = {}  # robot -> JobRejected reasons while a command runs
        self._wire = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vda5050-connection")
        self.vehicles = {robot_id: Vehicle(self, world.robots[robot_id], VehicleId(manufacturer, robot_id))
                         for robot_id in ids}
        self._unsubscribe: Callable[[], None] | None = world.subscribe(self._event)

    def _event(self, event: RobotEvent) -> None:
        vehicle = self.vehicles.get(event.robot_id)
        if vehicle is not None:
            vehicle.on_event(event)

    def connection(self, vehicle: Vehicle, online: bool) -> None:
        """The robot's radio dropped or came back: the broker sees the socket die (and
        publishes the Last Will) or a new connection (ONLINE, factsheet, state)."""
        self._wire.submit(vehicle.link.restore if online else vehicle.link.sever)

    def start(self, timeout: float = 10.0) -> bool:
        """Connect every vehicle; True once all are connected (they keep retrying if not)."""
        for vehicle in self.vehicles.values():
            vehicle.link.start(timeout=None)
        return all(vehicle.link.wait_connected(timeout) for vehicle in self.vehicles.values())

    def flush(self) -> None:
        """Publish the states that events made due, and the periodic ones."""
        now = self.world.now()
        for vehicle in self.vehicles.values():
            if not vehicle.unit.online:
                continue
            if vehicle.dirty or now >= vehicle.next_state_at:
                vehicle.publish_state()
            if self.visualization_interval is not None and now >= vehicle.next_visualization_at:
                vehicle.next_visualization_at = now + self.visualization_interval
                vehicle.publish_visualization()

    def step_to_now(self) -> None:
        """Catch the world up with its (wall) clock and report: the paced loop's one step."""
        with self.lock:
            self.world.run_paced(self.world.now())
            self.flush()

    def close(self) -> None:
        """Leave gracefully: every vehicle says OFFLINE."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._wire.shutdown(wait=True)
        for vehicle in self.vehicles.values():
            vehicle.link.close()
