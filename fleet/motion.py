"""Motion control: carries out each robot's errand through its link, under traffic control.

An errand is "go to this cell, then do these actions there" (lift a shelf, lower it,
charge, wait). The scheduler decides errands; traffic control decides when a robot may
enter which cell; this module is the loop between them and the robots:

    drain the link's events -> update traffic control and each robot's state
    plan a round            -> send the newly granted cells as a job or job extension
    a robot at its goal     -> send the errand's actions; report the errand's outcome

It never talks to a wire directly, only to a RobotLink, so a robot on MQTT, serial or
in-process is driven the same way. It is deterministic: given the same events in the
same order it sends the same commands, so the same code runs in the service and in
simulated time.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from drivers.commands import CellAction, InstantCommand, InstantKind, Job, Step
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
from drivers.link import RobotLink
from fleet.traffic.control import TrafficControl, TrafficError
from maps.model import Cell, Heading

log = logging.getLogger(__name__)

#: The error code of a latched emergency stop, pressed on the robot or ordered by the fleet
#: (firmware_emulator.drive_unit raises it; docs/emulator.md lists the codes).
EMERGENCY_STOP = "emergency_stop"
#: How far beyond its granted cells a robot's planned way is previewed to its link (a VDA
#: 5050 horizon): enough for a vehicle to plan its speed over the next update, short enough
#: that a replan seldom makes it wrong.
PREVIEW_CELLS = 5


@dataclass(frozen=True)
class Errand:
    errand_id: str
    goal: Cell
    actions: tuple[CellAction, ...] = ()
    heading: Heading | None = None  # heading to turn to at the goal before the actions


class Phase(str, Enum):
    IDLE = "idle"  # no errand
    DRIVING = "driving"  # on its way to the errand's goal
    ACTING = "acting"  # at the goal, doing the errand's actions


class Outcome(str, Enum):
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ErrandReport:
    robot_id: str
    errand_id: str
    outcome: Outcome
    time: float
    reason: str = ""


@dataclass
class RobotState:
    """The fleet's picture of one robot, built only from what the robot reported."""

    robot_id: str
    cell: Cell
    heading: Heading
    online: bool = True
    charge: float = 1.0
    charging: bool = False
    shelf_id: str | None = None
    errors: dict[str, Severity] = field(default_factory=dict)
    errand: Errand | None = None
    phase: Phase = Phase.IDLE
    job_id: str | None = None  # the job the robot is running, if any
    pending_actions: set[str] = field(default_factory=set)
    out_of_service: bool = False
    paused: bool = False  # an operator paused it: it keeps its cells and is granted no more
    job_ending: bool = False  # its job has nothing left to do; JobFinished is on its way
    held: bool = False  # kept where it stands between errands (see MotionControl.hold)
    #: Cells it handed back lately: a report of one of these arrived late, over a wire
    #: that does not keep cell reports and status reports in order.
    passed: deque[Cell] = field(default_factory=lambda: deque(maxlen=16))
    #: (job, granted end, goal) when its way ahead was last previewed: it is previewed again
    #: only when one of them changes, not at every cycle.
    previewed: tuple[str, Cell, Cell] | None = None

    @property
    def faulted(self) -> bool:
        return Severity.FATAL in self.errors.values()

    @property
    def disabled(self) -> bool:
        """Out of action until someone repairs, reconnects or re-admits it: its work must
        go to another robot. A latched emergency stop is fatal too, but only freezes the
        robot where it stands, with its job and its load; a reset lets it carry on."""
        return not self.online or self.out_of_service or any(
            severity is Severity.FATAL and code != EMERGENCY_STOP for code, severity in self.errors.items())

    @property
    def stopped(self) -> bool:
        """Out of action for who knows how long: traffic control takes it off the floor
        and keeps its cells."""
        return not self.online or self.faulted or self.out_of_service or self.paused


class MotionControl:
    def __init__(self, link: RobotLink, traffic: TrafficControl) -> None:
        self.link = link
        self.traffic = traffic
        self.robots: dict[str, RobotState] = {}
        self._jobs = itertools.count(1)
        #: Events the link delivered that this module could not make sense of.
        self.rejected_events: list[tuple[RobotEvent, str]] = []

    def add_robot(self, robot_id: str, cell: Cell, heading: Heading) -> None:
        self.traffic.add_robot(robot_id, cell, heading)
        self.robots[robot_id] = RobotState(robot_id, cell, heading)

    def assign(self, robot_id: str, errand: Errand) -> None:
        """Give the robot its next errand. It must be idle: an errand is never dropped
        silently by giving another."""
        robot = self._robot(robot_id)
        if robot.errand is not None:
            raise ValueError(f"robot {robot_id!r} is busy with errand {robot.errand.errand_id!r}")
        self.traffic.set_goal(robot_id, errand.goal)
        robot.errand = errand
        robot.phase = Phase.DRIVING
        robot.held = False

    def hold(self, robot_id: str, held: bool = True) -> None:
        """Keep an idle robot where it stands until its next errand: a shelf being worked
        at a port, a robot charging. Between errands traffic control may push a robot
        aside for others (it rests on its goal, the lowest priority there is), which
        would take the shelf from the operator or the robot off its charger."""
        self._robot(robot_id).held = held

    def redirect(self, robot_id: str, goal: Cell) -> None:
        """Change where a driving robot's errand ends (a station queue moved up, a
        charger came free). Cells it holds stay granted; it is routed on from there."""
        robot = self._robot(robot_id)
        if robot.errand is None or robot.phase is not Phase.DRIVING:
            raise ValueError(f"robot {robot_id!r} is not driving an errand; it cannot be redirected")
        self.traffic.set_goal(robot_id, goal)
        e = robot.errand
        robot.errand = Errand(e.errand_id, goal, e.actions, e.heading)

    def tick(self, now: float) -> list[ErrandReport]:
        """One control cycle at time `now`; returns errands that finished or failed."""
        reports: list[ErrandReport] = []
        for event in self.link.drain():
            self._handle(event, reports)
        # Arrivals first: a robot on its goal starts its actions (and is pinned there)
        # before the plan can push it aside for someone else heading the same way.
        for robot in self.robots.values():
            if robot.phase is Phase.DRIVING and robot.online and self.traffic.arrived(robot.robot_id) \
                    and robot.job_id is None:
                self._act(robot, now, reports)
        # A robot whose errand ended in this cycle stays put for this plan: whoever gave
        # it the errand has not heard yet, and may want it held where it is (a shelf
        # presented at a port) or sent on; resting on its goal, it would be pushed aside.
        ended = {report.robot_id for report in reports}
        for robot in self.robots.values():
            self.traffic.set_stopped(robot.robot_id, robot.stopped)
            self.traffic.set_busy(robot.robot_id, robot.phase is Phase.ACTING or robot.held
                                  or robot.robot_id in ended)
            self.traffic.set_loaded(robot.robot_id, robot.shelf_id is not None)
        for grant in self.traffic.plan():
            self._drive(self.robots[grant.robot_id], grant.cells)
        for robot in self.robots.values():
            self._preview(robot)
        return reports

    # --- commands ---------------------------------------------------------------------
    def _drive(self, robot: RobotState, cells: tuple[Cell, ...]) -> None:
        if robot.job_ending:
            return  # the cells stay granted; they go out as a new job on JobFinished
        steps = [Step(c) for c in cells]
        if robot.job_id is None:
            robot.job_id = f"{robot.robot_id}-j{next(self._jobs)}"
            held = self.traffic.held_cells(robot.robot_id)
            start = held[: len(held) - len(cells)]
            self.link.send_job(robot.robot_id, Job(robot.job_id, tuple(Step(c) for c in start) + tuple(steps)))
        else:
            self.link.extend_job(robot.robot_id, robot.job_id, steps)

    def _preview(self, robot: RobotState) -> None:
        """Hand the link the robot's way beyond its granted cells: the first cells of its
        cheapest way to its goal, on the floor traffic control plans it on."""
        if robot.job_id is None or robot.job_ending or robot.phase is not Phase.DRIVING or robot.errand is None \
                or not self.link.takes_preview(robot.robot_id):
            return
        key = (robot.job_id, self.traffic.held_cells(robot.robot_id)[-1], robot.errand.goal)
        if key == robot.previewed:
            return
        robot.previewed = key
        self.link.preview(robot.robot_id, robot.job_id, self.traffic.way_ahead(robot.robot_id, PREVIEW_CELLS))

    def _act(self, robot: RobotState, now: float, reports: list[ErrandReport]) -> None:
        errand = robot.errand
        assert errand is not None
        if not errand.actions and errand.heading is None:
            self._finish(robot, Outcome.DONE, now, reports)
            return
        robot.phase = Phase.ACTING
        robot.pending_actions = {a.action_id for a in errand.actions}
        robot.job_id = f"{robot.robot_id}-j{next(self._jobs)}"
        step = Step(errand.goal, errand.heading, errand.actions)
        self.link.send_job(robot.robot_id, Job(robot.job_id, (step,)))

    def _finish(self, robot: RobotState, outcome: Outcome, now: float, reports: list[ErrandReport],
                reason: str = "") -> None:
        errand = robot.errand
        assert errand is not None
        reports.append(ErrandReport(robot.robot_id, errand.errand_id, outcome, now, reason))
        if robot.phase is Phase.ACTING and robot.job_id is not None:
            # Its actions are over, so is the job that carried them, whenever the wire
            # brings JobFinished: the next drive must wait for that and be a new job.
            robot.job_ending = True
        robot.errand = None
        robot.phase = Phase.IDLE
        robot.pending_actions = set()
        self.traffic.set_goal(robot.robot_id, self.traffic.position(robot.robot_id))

    # --- events -----------------------------------------------------------------------
    def _handle(self, event: RobotEvent, reports: list[ErrandReport]) -> None:
        robot = self.robots.get(event.robot_id)
        if robot is None:
            self._reject(event, "unknown robot")
            return
        if isinstance(event, CellReached):
            if event.cell in robot.passed and event.cell not in self.traffic.held_cells(robot.robot_id):
                return  # late: a status report already moved the robot past this cell
            try:
                robot.passed.extend(self.traffic.reached(robot.robot_id, event.cell, event.heading))
            except TrafficError as exc:
                # The robot is not where it was allowed to be: stop planning it until an
                # operator looks; its cells stay held, so nobody drives into it.
                robot.errors["traffic"] = Severity.FATAL
                self._reject(event, str(exc))
                return
            robot.cell, robot.heading = event.cell, event.heading
        elif isinstance(event, JobFinished):
            if event.job_id == robot.job_id:
                self._job_over(robot)
                errand = robot.errand
                if robot.phase is Phase.ACTING and errand is not None and not errand.actions:
                    # a turn on the spot: no action reports its end, the job does
                    robot.heading = errand.heading
                    self.traffic.turned(robot.robot_id, errand.heading)
                    self._finish(robot, Outcome.DONE, event.time, reports)
        elif isinstance(event, JobRejected):
            if event.job_id == robot.job_id:
                robot.job_id = None
                robot.job_ending = False
                self._reject(event, f"robot refused job: {event.reason}")
                if robot.errand is not None and robot.phase is Phase.ACTING:
                    self._finish(robot, Outcome.FAILED, event.time, reports, f"robot refused: {event.reason}")
                elif len(held := self.traffic.held_cells(robot.robot_id)) > 1:
                    # An extension that came after the job ended: what it held is
                    # still granted, so send it again as a job of its own.
                    self._drive(robot, tuple(held[1:]))
        elif isinstance(event, ActionFinished):
            robot.pending_actions.discard(event.action_id)
            if robot.phase is Phase.ACTING and not robot.pending_actions:
                self._finish(robot, Outcome.DONE, event.time, reports)
        elif isinstance(event, ActionFailed):
            if robot.phase is Phase.ACTING and event.action_id in robot.pending_actions:
                self._finish(robot, Outcome.FAILED, event.time, reports, f"{event.kind.value} failed: {event.reason}")
        elif isinstance(event, ErrorRaised):
            robot.errors[event.code] = event.severity
        elif isinstance(event, ErrorCleared):
            robot.errors.pop(event.code, None)
        elif isinstance(event, ConnectionChanged):
            robot.online = event.online
        elif isinstance(event, StatusReport):
            self._reconcile(robot, event)
        elif isinstance(event, BatteryReport):
            robot.charge, robot.charging = event.charge, event.charging
        elif isinstance(event, LoadChanged):
            if robot.shelf_id is None and event.shelf_id is not None:
                self.traffic.shelf_lifted(robot.cell)
            elif robot.shelf_id is not None and event.shelf_id is None:
                self.traffic.shelf_set_down(robot.cell)
            robot.shelf_id = event.shelf_id

    def _job_over(self, robot: RobotState) -> None:
        """The robot's job has ended; cells granted meanwhile go out as a new job."""
        robot.job_id = None
        if robot.job_ending:
            robot.job_ending = False
            if len(held := self.traffic.held_cells(robot.robot_id)) > 1:
                self._drive(robot, tuple(held[1:]))

    def _reconcile(self, robot: RobotState, status: StatusReport) -> None:
        """A robot that was out of touch drove on through what it held, and the cell
        reports of that stretch never arrived: its status says where it really is. Only
        cells it holds are accepted; anywhere else is a fault that stops planning it."""
        if status.cell is None or status.cell == self.traffic.position(robot.robot_id):
            return
        if status.cell in robot.passed:
            return  # older than the cell reports already handled
        if status.cell in self.traffic.held_cells(robot.robot_id):
            robot.passed.extend(self.traffic.reached(robot.robot_id, status.cell, status.heading or robot.heading))
            robot.cell = status.cell
            if status.job_id is None and robot.job_id is not None:
                self._job_over(robot)
        else:
            robot.errors["traffic"] = Severity.FATAL
            self._reject(status, f"robot reports {status.cell}, which it does not hold")

    def reset(self, robot_id: str) -> None:
        """Operator: clear a robot's latched faults (emergency stop, stall) so it carries on."""
        self.link.instant(self._robot(robot_id).robot_id, InstantCommand(InstantKind.RESET))

    def _reject(self, event: RobotEvent, reason: str) -> None:
        log.warning("robot %s: %s (%s)", event.robot_id, reason, type(event).__name__)
        self.rejected_events.append((event, reason))

    def _robot(self, robot_id: str) -> RobotState:
        try:
            return self.robots[robot_id]
        except KeyError:
            raise ValueError(f"unknown robot {robot_id!r}") from None
