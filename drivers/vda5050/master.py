"""The master side of one VDA 5050 vehicle: jobs out as orders, states in as fleet events.

A VehicleSession is a small deterministic state machine with no I/O of its own: it is
handed the vehicle's messages (with the time they arrived) and clock ticks, and it calls
`send` with the orders and instant actions to publish. That keeps it testable with
hand-built states and lets one thread-safe shell (the RobotLink) drive many of them.

What it guarantees, since order, instantActions and state all travel at QoS 0:
- An order or order update is resent, unchanged (same orderUpdateId), until a state echoes
  its orderId and orderUpdateId, or the vehicle rejects it (backing off from 1 to 8 resend
  intervals, so that a swamped vehicle or broker is not flooded). Only one update is in flight:
  an update stitches onto the previous one's last base node, which the vehicle must hold
  first, so steps added meanwhile wait and go out together in the next update.
- An instant action is resent until its actionId appears in the state's actionStates.
- Every step the fleet releases is base (released), and only those: the fleet's
  reservation table is the only authority on what a robot may drive. The way it plans
  beyond them (RobotLink.preview) goes out as the horizon (released false), replaced by
  every update; a job is finished when its base is done, and a horizon the vehicle still
  holds then is withdrawn by one more update (a vehicle holding a horizon waits for its
  continuation and refuses a new order, section 6.6.2 rule 3).
- Optional fields go out only if the factsheet lists them; job actions the factsheet does
  not list are refused before anything is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from drivers.commands import ActionKind, CellAction, InstantCommand, InstantKind, Job, Step, check_path
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
    RobotEvent,
    Severity,
    StatusReport,
)
from drivers.vda5050.messages import (
    LATEST_VERSION,
    UNSTAMPED,
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
    OrientationType,
    PredefinedAction,
    State,
    VehicleError,
    Wire,
)
from drivers.vda5050.mqtt import Topic, VehicleId
from maps.model import Cell, Heading, WarehouseMap

# Errors by which a vehicle refuses an order (section 6.6.4 and common vendor practice).
REJECTIONS = frozenset({"validationError", "orderError", "orderUpdateError", "noRouteError"})

ACTION_TYPE: dict[ActionKind, str] = {
    ActionKind.LIFT: PredefinedAction.PICK,
    ActionKind.LOWER: PredefinedAction.DROP,
    ActionKind.START_CHARGING: PredefinedAction.START_CHARGING,
    ActionKind.STOP_CHARGING: PredefinedAction.STOP_CHARGING,
    ActionKind.WAIT: "wait",  # not predefined: sent only to vehicles whose factsheet lists it
}

# Section 6.12: HARD runs alone and the vehicle stands; SOFT stands but lets other actions
# run; NONE lets it drive. Lifting, lowering and waiting at a station need the robot to
# stand and nothing else to move; charging on a charger stands but blocks nothing else;
# a pause stops driving but lets actions go on (6.8.1), its end and the requests block
# nothing; a cancel and a new pose are the only thing the vehicle may do at that time.
BLOCKING: dict[str, BlockingType] = {
    PredefinedAction.PICK: BlockingType.HARD,
    PredefinedAction.DROP: BlockingType.HARD,
    "wait": BlockingType.HARD,
    PredefinedAction.START_CHARGING: BlockingType.SOFT,
    PredefinedAction.STOP_CHARGING: BlockingType.SOFT,
    PredefinedAction.START_PAUSE: BlockingType.SOFT,
    PredefinedAction.STOP_PAUSE: BlockingType.NONE,
    PredefinedAction.CANCEL_ORDER: BlockingType.HARD,
    PredefinedAction.INIT_POSITION: BlockingType.HARD,
    PredefinedAction.STATE_REQUEST: BlockingType.NONE,
    PredefinedAction.FACTSHEET_REQUEST: BlockingType.NONE,
}

# VDA 5050 has no remote emergency stop: STOP pauses at once, RESET lifts the pause.
INSTANT_TYPE: dict[InstantKind, str] = {
    InstantKind.PAUSE: PredefinedAction.START_PAUSE,
    InstantKind.RESUME: PredefinedAction.STOP_PAUSE,
    InstantKind.CANCEL: PredefinedAction.CANCEL_ORDER,
    InstantKind.STOP: PredefinedAction.START_PAUSE,
    InstantKind.RESET: PredefinedAction.STOP_PAUSE,
    InstantKind.INIT_POSITION: PredefinedAction.INIT_POSITION,
    InstantKind.STATUS: PredefinedAction.STATE_REQUEST,
}

# Optional order fields we can fill, by their factsheet name.
NODE_POSITION = "order.nodes.nodePosition"
NODE_THETA = "order.nodes.nodePosition.theta"
EDGE_ORIENTATION = "order.edges.orientation"
EDGE_ORIENTATION_TYPE = "order.edges.orientationType"
EDGE_ROTATION_ALLOWED = "order.edges.rotationAllowed"
EDGE_LENGTH = "order.edges.length"


@dataclass(frozen=True)
class Capabilities:
    """What the factsheet says the vehicle understands. Before a factsheet arrives no
    optional field and no horizon is sent (how many nodes an order may carry is not
    known yet), and actions are not checked (the vehicle will say no)."""

    actions: frozenset[str] | None = None
    optional: frozenset[str] = frozenset()
    #: protocolLimits.maxArrayLens: nodes and edges per order; 0 is no limit (as the spec says)
    max_order_nodes: int = 0
    max_order_edges: int = 0

    @classmethod
    def from_factsheet(cls, sheet: Factsheet) -> Capabilities:
        features = sheet.protocol_features
        lengths = sheet.protocol_limits.max_array_lens
        return cls(
            actions=frozenset(action.action_type for action in features.agv_actions),
            optional=frozenset(parameter.parameter for parameter in features.optional_parameters),
            max_order_nodes=lengths.order_nodes or 0,
            max_order_edges=lengths.order_edges or 0,
        )

    def horizon_room(self, nodes: int, edges: int) -> int | None:
        """How many horizon nodes (each with the edge into it) fit in an order that has
        `nodes` and `edges` already; None for no limit. The factsheet has no word for
        horizon support (every vehicle must take one), only these array limits."""
        if self.actions is None:
            return 0
        room = [limit - used for limit, used in ((self.max_order_nodes, nodes), (self.max_order_edges, edges)) if limit]
        return max(0, min(room)) if room else None

    def supports(self, parameter: str) -> bool:
        return parameter in self.optional

    def can(self, action_type: str) -> bool:
        return self.actions is None or action_type in self.actions


@dataclass
class _Job:
    job_id: str
    steps: list[Step]
    action_kinds: dict[str, ActionKind]
    sent_steps: int = 0  # steps already inside sent orders; the last of them is the stitch
    horizon: list[Cell] = field(default_factory=list)  # the fleet's preview beyond steps[-1]
    sent_horizon: tuple[Cell, ...] = ()  # the horizon of the newest order built
    update_id: int = -1  # orderUpdateId of the newest order built
    stitch: Node | None = None  # last base node as first sent, resent verbatim when stitching
    in_flight: Order | None = None  # sent, not yet echoed by a state
    resend_at: float = math.inf  # when the order in flight is due again
    resends: int = 0  # of the order in flight
    done: bool = False  # finished or rejected: no more events; only a horizon's withdrawal is resent


@dataclass
class _Instant:
    message: InstantActions
    resend_at: float
    resends: int = 0


@dataclass
class VehicleSession:
    """One vehicle, as the master sees it. Not thread-safe: the owner serialises calls."""

    robot_id: str
    vehicle: VehicleId
    warehouse: WarehouseMap
    send: Callable[[Wire, Topic], bool]
    version: str = LATEST_VERSION
    state_timeout: float = 35.0
    resend_interval: float = 1.0
    capabilities: Capabilities = field(default_factory=Capabilities)
    events: list[RobotEvent] = field(default_factory=list)
    online: bool = False
    cell: Cell | None = None
    heading: Heading | None = None
    # Input that was valid on the wire but makes no sense on our map, counted by reason.
    ignored: dict[str, int] = field(default_factory=dict)
    # When tick() next has work (a resend, the state going stale): a link with a thousand
    # vehicles skips the rest of them on each pass.
    due: float = math.inf

    def __post_init__(self) -> None:
        self._job: _Job | None = None
        # A finished job whose horizon withdrawal is not echoed yet: the next job's first
        # order waits for it, or the vehicle (still waiting for an update) refuses it.
        self._retiring: _Job | None = None
        self._instants: dict[str, _Instant] = {}
        self._instant_seq = 0
        self._last_state: State | None = None
        self._last_state_at: float | None = None
        self._action_status: dict[str, ActionStatus] = {}
        self._errors: dict[tuple, VehicleError] = {}
        self._battery: tuple[float, bool] | None = None
        self._load: tuple[str | None, float] | None = None
        self._has_factsheet = False

    @property
    def awaiting_echo(self) -> bool:
        """An order or update has been sent and no state has echoed it yet."""
        return self._job is not None and self._job.in_flight is not None

    # --- commands from the fleet ---------------------------------------------------------------

    def send_job(self, job: Job, now: float) -> None:
        # Commands are fire-and-forget (drivers/link.py): a command that crossed an event
        # on the wire is refused with an event the fleet handles, never an exception.
        if self._job is not None and not self._job.done:
            self._emit(JobRejected, now, job_id=job.job_id,
                       reason=f"job {self._job.job_id!r} is still in progress; cannot start {job.job_id!r}")
            return
        kinds = {a.action_id: a.kind for step in job.steps for a in step.actions}
        if self._job is not None and self._job.in_flight is not None:
            self._retiring = self._job
        self._job = _Job(job.job_id, list(job.steps), kinds)
        unsupported = sorted({ACTION_TYPE[kind] for kind in kinds.values()
                              if not self.capabilities.can(ACTION_TYPE[kind])})
        if unsupported:
            self._job.done = True
            self._emit(JobRejected, now, job_id=job.job_id,
                       reason=f"vehicle's factsheet lists no action {', '.join(unsupported)}")
            return
        self._pump(now)

    def extend_job(self, job_id: str, steps: Sequence[Step], now: float) -> None:
        job = self._job
        if job is None or job.job_id != job_id or job.done:
            self._emit(JobRejected, now, job_id=job_id, reason=f"no job {job_id!r} in progress to extend")
            return
        if not steps:
            return
        check_path(steps, f"extension of job {job_id!r}", start=job.steps[-1].cell)
        unsupported = sorted({ACTION_TYPE[a.kind] for step in steps for a in step.actions
                              if not self.capabilities.can(ACTION_TYPE[a.kind])})
        if unsupported:
            self._emit(JobRejected, now, job_id=job_id,
                       reason=f"extension refused: vehicle's factsheet lists no action {', '.join(unsupported)}")
            return
        job.steps.extend(steps)
        job.action_kinds.update({a.action_id: a.kind for step in steps for a in step.actions})
        granted = [step.cell for step in steps]
        # The preview's rest still holds if the fleet granted what it previewed; the fleet
        # sends a fresh one anyway, but this update need not go out with a stale horizon.
        job.horizon = job.horizon[len(granted):] if job.horizon[: len(granted)] == granted else []
        self._pump(now)

    def preview(self, job_id: str, cells: Sequence[Cell], now: float) -> None:
        job = self._job
        if job is None or job.job_id != job_id or job.done:
            return  # a hint about a job that ended meanwhile: nothing to withdraw or send
        for cell in cells:
            try:
                self.warehouse.qr_id(cell)
            except KeyError as exc:
                raise ValueError(f"preview of job {job_id!r}: {exc.args[0]}") from None
        check_path([Step(cell) for cell in cells], f"preview of job {job_id!r}", start=job.steps[-1].cell)
        job.horizon = list(cells)
        self._pump(now)

    def instant(self, command: InstantCommand, now: float) -> str:
        """Send an instant action; returns its actionId."""
        self._instant_seq += 1
        action_id = command.command_id or f"{self.robot_id}-i{self._instant_seq}"
        parameters = None
        if command.kind is InstantKind.INIT_POSITION:
            if command.cell is None:
                raise ValueError("INIT_POSITION needs the cell the robot stands on")
            x, y = self.warehouse.position(command.cell)
            known = [h for h in (command.heading, self.heading) if h is not None]
            theta = (known[0] if known else Heading.EAST).radians
            parameters = [
                ActionParameter(key="x", value=x), ActionParameter(key="y", value=y),
                ActionParameter(key="theta", value=theta),
                ActionParameter(key="mapId", value=self.warehouse.name),
                ActionParameter(key="lastNodeId", value=self.warehouse.qr_id(command.cell)),
            ]
        action_type = INSTANT_TYPE[command.kind]
        action = Action(action_type=action_type, action_id=action_id,
                        blocking_type=BLOCKING[action_type], action_parameters=parameters)
        self._send_instant(action, now)
        return action_id

    def _send_instant(self, action: Action, now: float) -> None:
        message = InstantActions(**self._header(), actions=[action])
        self._instants[action.action_id] = _Instant(message, now + self._backoff(0))
        self.send(message, Topic.INSTANT_ACTIONS)
        self._schedule()

    # --- messages from the vehicle -------------------------------------------------------------

    def on_connection(self, message: Connection, now: float) -> None:
        self.version = message.version
        if message.connection_state is ConnectionState.ONLINE:
            # Reconcile at once rather than waiting up to 30 s for the next state.
            self._send_instant(self._request(PredefinedAction.STATE_REQUEST), now)
            if not self._has_factsheet:
                self._send_instant(self._request(PredefinedAction.FACTSHEET_REQUEST), now)
        elif self.online:
            self.online = False
            self._emit(ConnectionChanged, now, online=False, reason=message.connection_state.value)

    def on_factsheet(self, sheet: Factsheet, now: float) -> None:
        self.capabilities = Capabilities.from_factsheet(sheet)
        self._has_factsheet = True

    def on_state(self, state: State, now: float) -> None:
        self.version = state.version
        self._last_state_at = now
        if not self.online:
            self.online = True
            self._emit(ConnectionChanged, now, online=True, reason="state received")
        previous = self._last_state
        self._last_state = state
        self._acknowledge(state)
        new_errors = self._track_errors(state, now)
        self._track_rejection(new_errors, now)
        self._track_position(state, previous, now)
        self._track_actions(state, now)
        self._track_battery_and_load(state, now)
        self._track_finish(state, now)
        self._emit_status(state, now)
        self._pump(now)

    def tick(self, now: float) -> None:
        """Resend what is unacknowledged; declare the vehicle lost when its state is stale."""
        if self.online and self._last_state_at is not None and now - self._last_state_at > self.state_timeout:
            self.online = False
            self._emit(ConnectionChanged, now, online=False,
                       reason=f"no state for {self.state_timeout:g} s")
        self._pump(now)
        for pending in self._instants.values():
            if now >= pending.resend_at:
                pending.resends += 1
                pending.resend_at = now + self._backoff(pending.resends)
                self.send(pending.message, Topic.INSTANT_ACTIONS)
        self._schedule()

    # --- orders ------------------------------------------------------------------------------

    def _in_flight(self) -> list[_Job]:
        """The jobs with an order the vehicle has not echoed yet: the retiring one (its
        horizon withdrawal) and the current one."""
        return [job for job in (self._retiring, self._job) if job is not None and job.in_flight is not None]

    def _retire_if_echoed(self) -> None:
        if self._retiring is not None and self._retiring.in_flight is None:
            self._retiring = None

    def _pump(self, now: float) -> None:
        for job in self._in_flight():
            if now >= job.resend_at:
                job.resends += 1
                job.resend_at = now + self._backoff(job.resends)
                self.send(job.in_flight, Topic.ORDER)
        job = self._job
        if job is not None and not job.done and job.in_flight is None and self._retiring is None \
                and (job.sent_steps < len(job.steps) or self._horizon_stale(job)):
            self._send_order(job, now)
        self._schedule()

    def _send_order(self, job: _Job, now: float) -> None:
        job.in_flight = self._next_order(job)
        job.resends = 0
        job.resend_at = now + self._backoff(0)
        self.send(job.in_flight, Topic.ORDER)

    def _horizon_stale(self, job: _Job) -> bool:
        """Whether the horizon the vehicle holds needs an update of its own: it left the
        planned way, or it holds none and there is one. A horizon that is merely shorter
        than the plan waits for the next extension of the base, which carries the rest:
        one update per extension, not two."""
        wanted = self._fit_horizon(job, 1, 0)
        sent = job.sent_horizon
        return wanted[: len(sent)] != list(sent) or (not sent and bool(wanted))

    def _fit_horizon(self, job: _Job, nodes: int, edges: int) -> list[Cell]:
        room = self.capabilities.horizon_room(nodes, edges)
        return job.horizon if room is None else job.horizon[:room]

    def _schedule(self) -> None:
        """Set `due`: the earliest resend, or the moment the last state goes stale."""
        due = math.inf
        for job in self._in_flight():
            due = min(due, job.resend_at)
        for pending in self._instants.values():
            due = min(due, pending.resend_at)
        if self.online and self._last_state_at is not None:
            due = min(due, self._last_state_at + self.state_timeout)
        self.due = due

    def _backoff(self, resends: int) -> float:
        """Wait 1, 2, 4, then 8 resend intervals: a vehicle that cannot answer (lost, or
        swamped) is not flooded, which would only bury its answers deeper."""
        return self.resend_interval * 2 ** min(resends, 3)

    def _next_order(self, job: _Job) -> Order:
        """The base steps not sent yet, stitched on the last base node sent, then the
        horizon: unreleased nodes and edges whose sequenceIds go on after the base's, as
        they will when the fleet grants them."""
        first_new, base = job.sent_steps, len(job.steps)
        nodes = [self._node(job.steps, i) for i in range(first_new, base)]
        edges = [self._edge(job.steps, i) for i in range(max(first_new, 1), base)]
        if job.stitch is not None:
            nodes.insert(0, job.stitch)
        job.stitch = nodes[-1]
        job.sent_steps = base
        horizon = self._fit_horizon(job, len(nodes), len(edges))
        way = job.steps + [Step(cell) for cell in horizon]
        nodes += [self._node(way, i, released=False) for i in range(base, len(way))]
        edges += [self._edge(way, i, released=False) for i in range(base, len(way))]
        job.sent_horizon = tuple(horizon)
        job.update_id += 1
        return Order(**self._header(), order_id=job.job_id, order_update_id=job.update_id,
                     nodes=nodes, edges=edges)

    def _node(self, steps: Sequence[Step], index: int, released: bool = True) -> Node:
        step = steps[index]
        position = None
        if self.capabilities.supports(NODE_POSITION):
            x, y = self.warehouse.position(step.cell)
            theta = step.heading.radians if step.heading is not None and self.capabilities.supports(NODE_THETA) else None
            position = NodePosition(x=x, y=y, theta=theta, map_id=self.warehouse.name)
        return Node(node_id=self.warehouse.qr_id(step.cell), sequence_id=2 * index, released=released,
                    node_position=position, actions=[self._action(a) for a in step.actions])

    def _edge(self, steps: Sequence[Step], index: int, released: bool = True) -> Edge:
        """The edge into step `index` from the step before it."""
        start, end = steps[index - 1].cell, steps[index].cell
        start_qr, end_qr = self.warehouse.qr_id(start), self.warehouse.qr_id(end)
        optional: dict[str, object] = {}
        if start != end:
            if self.capabilities.supports(EDGE_ORIENTATION_TYPE) and self.capabilities.supports(EDGE_ORIENTATION):
                optional |= {"orientation": Heading.between(start, end).radians,
                             "orientation_type": OrientationType.GLOBAL}
            elif self.capabilities.supports(EDGE_ORIENTATION):
                optional["orientation"] = 0.0  # tangential: forward, i.e. facing the next cell
            if self.capabilities.supports(EDGE_ROTATION_ALLOWED):
                optional["rotation_allowed"] = False  # turn on the node, never on the way
            if self.capabilities.supports(EDGE_LENGTH):
                optional["length"] = self.warehouse.pitch
        return Edge(edge_id=f"{start_qr}-{end_qr}", sequence_id=2 * index - 1, released=released,
                    start_node_id=start_qr, end_node_id=end_qr, actions=[], **optional)

    def _action(self, action: CellAction) -> Action:
        parameters = []
        if action.kind in (ActionKind.LIFT, ActionKind.LOWER):
            # pick requires stationType and loadType (section 6.8.1)
            parameters = [ActionParameter(key="stationType", value="floor"),
                          ActionParameter(key="loadType", value="shelf")]
            if action.shelf_id is not None:
                parameters.append(ActionParameter(key="loadId", value=action.shelf_id))
        elif action.kind is ActionKind.WAIT:
            parameters = [ActionParameter(key="duration", value=action.duration)]
        action_type = ACTION_TYPE[action.kind]
        return Action(action_type=action_type, action_id=action.action_id,
                      blocking_type=BLOCKING[action_type], action_parameters=parameters or None)

    def _request(self, action_type: str) -> Action:
        self._instant_seq += 1
        return Action(action_type=action_type, action_id=f"{self.robot_id}-i{self._instant_seq}",
                      blocking_type=BLOCKING[action_type])

    def _header(self) -> dict[str, object]:
        return {"header_id": 0, "timestamp": UNSTAMPED, "version": self.version,
                "manufacturer": self.vehicle.manufacturer, "serial_number": self.vehicle.serial_number}

    # --- reading a state ---------------------------------------------------------------------

    def _acknowledge(self, state: State) -> None:
        for job in self._in_flight():
            echoed = state.order_id == job.job_id and state.order_update_id >= job.in_flight.order_update_id
            # A finished job's horizon withdrawal is moot once the vehicle holds nothing of
            # that order (cancelled, rebooted, or it took the withdrawal).
            moot = job.done and (state.order_id != job.job_id or not state.node_states)
            if echoed or moot:
                job.in_flight = None
        self._retire_if_echoed()
        for action_state in state.action_states:
            self._instants.pop(action_state.action_id, None)

    def _track_errors(self, state: State, now: float) -> list[VehicleError]:
        current = {self._error_key(error): error for error in state.errors}
        raised = [error for key, error in current.items() if key not in self._errors]
        for key, error in self._errors.items():
            if key not in current:
                self._emit(ErrorCleared, now, code=error.error_type)
        for error in raised:
            severity = Severity.FATAL if error.error_level is ErrorLevel.FATAL else Severity.WARNING
            self._emit(ErrorRaised, now, code=error.error_type, severity=severity,
                       message=error.error_description or error.error_hint or error.error_type)
        self._errors = current
        return raised

    @staticmethod
    def _error_key(error: VehicleError) -> tuple:
        references = tuple(sorted((r.reference_key, r.reference_value) for r in error.error_references or ()))
        return error.error_type, references

    def _track_rejection(self, raised: list[VehicleError], now: float) -> None:
        """A newly raised rejection error about an order in flight: the vehicle said no."""
        for job in self._in_flight():
            for error in raised:
                if error.error_type not in REJECTIONS:
                    continue
                references = {r.reference_key: r.reference_value for r in error.error_references or ()}
                if references.get("orderId", job.job_id) != job.job_id:
                    continue
                if references.get("orderUpdateId", str(job.in_flight.order_update_id)) != str(job.in_flight.order_update_id):
                    continue
                job.in_flight = None
                words = f": {error.error_description}" if error.error_description else ""
                if job.done:  # a horizon withdrawal after JobFinished: no job to reject any more
                    self._ignore(f"horizon withdrawal refused: {error.error_type}{words}")
                else:
                    job.done = True
                    self._emit(JobRejected, now, job_id=job.job_id, reason=f"{error.error_type}{words}")
                break
        self._retire_if_echoed()

    def _track_position(self, state: State, previous: State | None, now: float) -> None:
        """Localise: lastNodeId if it is a QR code of the map, else agvPosition's nearest cell."""
        position = state.agv_position
        located = position is not None and position.position_initialized
        if located:
            self.heading = Heading.from_radians(position.theta)
        if state.last_node_id and self.warehouse.has_qr(state.last_node_id):
            cell = self.warehouse.cell_of_qr(state.last_node_id)
        elif located:
            if position.map_id != self.warehouse.name:
                self._ignore(f"map id {position.map_id!r} is not {self.warehouse.name!r}")
                return
            cell = self.warehouse.cell_at(position.x, position.y)
        else:
            if state.last_node_id:
                self._ignore(f"node {state.last_node_id!r} is not a QR code of the map")
            return
        node = (state.last_node_id, state.last_node_sequence_id)
        reached = previous is None or node != (previous.last_node_id, previous.last_node_sequence_id) \
            or cell != self.cell
        self.cell = cell
        if not reached:
            return
        if not located:
            from_job = self._heading_from_job(state)  # Heading.EAST is 0: test for None
            self.heading = from_job if from_job is not None else self.heading
        if self.heading is None:
            self._ignore("cell reached with no known heading")
            return
        job = self._job
        ours = job is not None and state.order_id == job.job_id and state.last_node_id != ""
        self._emit(CellReached, now, cell=cell, heading=self.heading,
                   job_id=job.job_id if ours else None,
                   step_index=state.last_node_sequence_id // 2 if ours else None)

    def _heading_from_job(self, state: State) -> Heading | None:
        """Without a pose: the heading of the step just reached, or of the edge into it."""
        job = self._job
        if job is None or state.order_id != job.job_id:
            return None
        index = state.last_node_sequence_id // 2
        if not 0 <= index < len(job.steps):
            return None
        step = job.steps[index]
        if step.heading is not None:
            return step.heading
        if index > 0 and job.steps[index - 1].cell != step.cell:
            return Heading.between(job.steps[index - 1].cell, step.cell)
        return None

    def _track_actions(self, state: State, now: float) -> None:
        job = self._job
        errors_by_action = {
            r.reference_value: e for e in state.errors for r in e.error_references or ()
            if r.reference_key == "actionId"
        }
        for action_state in state.action_states:
            before = self._action_status.get(action_state.action_id)
            status = action_state.action_status
            self._action_status[action_state.action_id] = status
            if before == status or job is None or action_state.action_id not in job.action_kinds:
                continue
            kind = job.action_kinds[action_state.action_id]
            if status is ActionStatus.FINISHED:
                self._emit(ActionFinished, now, job_id=job.job_id, action_id=action_state.action_id, kind=kind)
            elif status is ActionStatus.FAILED:
                error = errors_by_action.get(action_state.action_id)
                reason = action_state.result_description or (
                    f"{error.error_type}: {error.error_description or ''}".rstrip(": ") if error else "failed")
                self._emit(ActionFailed, now, job_id=job.job_id, action_id=action_state.action_id,
                           kind=kind, reason=reason)

    def _track_battery_and_load(self, state: State, now: float) -> None:
        battery = (state.battery_state.battery_charge / 100.0, state.battery_state.charging)
        if self._battery is None or battery[1] != self._battery[1] or abs(battery[0] - self._battery[0]) >= 0.01:
            self._battery = battery
            self._emit(BatteryReport, now, charge=battery[0], charging=battery[1])
        if state.loads is None:
            return  # the vehicle cannot tell
        first = state.loads[0] if state.loads else None
        load = (first.load_id if first else None, (first.weight or 0.0) if first else 0.0)
        if load != self._load:
            if self._load is not None or first is not None:
                self._emit(LoadChanged, now, shelf_id=load[0], weight_kg=load[1])
            self._load = load

    def _track_finish(self, state: State, now: float) -> None:
        """Finished: every released node passed and every action over. Horizon nodes
        the vehicle still lists do not count: it will never drive them unless told."""
        job = self._job
        if job is None or job.done or job.in_flight is not None or job.sent_steps < len(job.steps):
            return
        if state.order_id != job.job_id or any(node.released for node in state.node_states):
            return
        if state.last_node_sequence_id != 2 * (len(job.steps) - 1):
            return
        terminal = (ActionStatus.FINISHED, ActionStatus.FAILED)
        if all(self._action_status.get(action_id) in terminal for action_id in job.action_kinds):
            job.done = True
            self._emit(JobFinished, now, job_id=job.job_id)
            if state.node_states:  # it waits at its decision point for an update: withdraw the horizon
                job.horizon = []
                self._send_order(job, now)

    def _emit_status(self, state: State, now: float) -> None:
        position = state.agv_position
        if position is not None:
            x, y, theta = position.x, position.y, position.theta
        elif self.cell is not None:
            (x, y), theta = self.warehouse.position(self.cell), (self.heading.radians if self.heading is not None else 0.0)
        else:
            x = y = theta = 0.0
        velocity = state.velocity
        speed = math.hypot(velocity.vx or 0.0, velocity.vy or 0.0) if velocity is not None else 0.0
        self._emit(
            StatusReport, now, cell=self.cell, heading=self.heading, x=x, y=y, theta=theta, speed=speed,
            driving=state.driving, paused=bool(state.paused),
            charge=state.battery_state.battery_charge / 100.0,
            shelf_id=self._load[0] if self._load else None,
            job_id=state.order_id or None,
            errors=tuple(error.error_type for error in state.errors),
        )

    # --- helpers -------------------------------------------------------------------------------

    def _emit(self, event_type: type[RobotEvent], now: float, /, **fields: object) -> None:
        self.events.append(event_type(robot_id=self.robot_id, time=now, **fields))

    def _ignore(self, reason: str) -> None:
        self.ignored[reason] = self.ignored.get(reason, 0) + 1
