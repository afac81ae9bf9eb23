"""The runtime: the fleet's control loop in a background thread, a snapshot for readers,
and a queue for operator commands.

The core (motion control, traffic control, whatever hands out errands) is single-threaded
and deterministic. This object is the only place threads meet it: the loop thread runs
control cycles paced to wall time x speed, and between two cycles applies the commands
the HTTP threads queued (`call`), so no lock is ever held around the core. After each cycle
it publishes an immutable `Snapshot` that readers take without waiting.

What gives the robots their errands is the runtime's `Work`: the scheduler with its
stations and terminals (fleet.service.warehouse.Warehouse), advanced once per cycle right
after motion control ticked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence, TypeVar

from drivers.commands import InstantCommand, InstantKind, Job, Step
from drivers.events import RobotEvent, Severity, StatusReport
from drivers.link import RobotLink
from fleet.clock import SimulatedClock
from fleet.motion import ErrandReport, MotionControl, RobotState
from fleet.service.config import Thresholds
from fleet.service.metrics import Metrics
from fleet.service.store import Store
from fleet.traffic.control import TrafficError
from maps.model import Cell, WarehouseMap

log = logging.getLogger(__name__)
T = TypeVar("T")


class Work(Protocol):
    """What gives robots their errands: it acts on the cycle's errand reports and hands
    out new errands through motion control."""

    def advance(self, now: float, reports: list[ErrandReport]) -> None: ...


class OperatorError(ValueError):
    """An operator command that cannot be carried out; the message says why. Raised before
    anything is changed."""


class NotFound(OperatorError):
    pass


#: A robot's view: x, y, heading (0..3), state, charge %, shelf, errand id.
RobotRow = tuple[int, int, int, str, int, str | None, str | None]


@dataclass(frozen=True)
class Snapshot:
    time: float  # clock seconds
    cycle: int
    robots: dict[str, RobotRow]
    held: dict[str, tuple[tuple[int, int], ...]]  # robot -> reserved cells, its own first
    errors: dict[str, dict[str, str]]  # robot -> error code -> severity
    shelves: dict[str, tuple[int, int] | str]  # shelf -> cell it stands on, or the robot carrying it
    blocked: frozenset[tuple[int, int]]
    emergency_stop: bool
    paused_all: bool


#: Every word robot_state gives, in the order the console's legend and charts list them.
ROBOT_STATES = ("idle", "driving", "acting", "charging", "paused", "out_of_service", "error", "offline")


def robot_state(robot: RobotState) -> str:
    """One word for the console's colour and the metrics: the most urgent fact first."""
    if not robot.online:
        return "offline"
    if robot.faulted:
        return "error"
    if robot.out_of_service:
        return "out_of_service"
    if robot.paused:
        return "paused"
    if robot.charging:
        return "charging"
    return robot.phase.value


def count_states(robots: Iterable[RobotState]) -> dict[str, int]:
    """Robots by state, every state present (0 if none): the metrics gauge and the KPI
    history count the same way."""
    counts = dict.fromkeys(ROBOT_STATES, 0)
    for robot in robots:
        counts[robot_state(robot)] += 1
    return counts


class CountingLink(RobotLink):
    """Counts messages each way for the metrics, passing everything through."""

    def __init__(self, inner: RobotLink, metrics: Metrics) -> None:
        self.inner = inner
        self._sent = metrics.messages.labels("sent")
        self._received = metrics.messages.labels("received")

    def robot_ids(self) -> list[str]:
        return self.inner.robot_ids()

    def send_job(self, robot_id: str, job: Job) -> None:
        self._sent.inc()
        self.inner.send_job(robot_id, job)

    def extend_job(self, robot_id: str, job_id: str, steps: Sequence[Step]) -> None:
        self._sent.inc()
        self.inner.extend_job(robot_id, job_id, steps)

    def takes_preview(self, robot_id: str) -> bool:
        return self.inner.takes_preview(robot_id)

    def preview(self, robot_id: str, job_id: str, cells: Sequence[Cell]) -> None:
        # not counted as a command: a hint; over VDA 5050 a changed or withdrawn horizon
        # goes out as an order update of its own, so commands_out undercounts those
        self.inner.preview(robot_id, job_id, cells)

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        self._sent.inc()
        self.inner.instant(robot_id, command)

    def drain(self) -> list[RobotEvent]:
        events = self.inner.drain()
        self._received.inc(len(events))
        return events

    def close(self) -> None:
        self.inner.close()


@dataclass
class Runtime:
    wmap: WarehouseMap
    clock: SimulatedClock | object  # a SimulatedClock is advanced by the loop; a WallClock just read
    motion: MotionControl
    store: Store
    metrics: Metrics
    work: Work | None = None
    shelves: dict[str, tuple[int, int] | str] = field(default_factory=dict)  # as Snapshot.shelves
    cycle_s: float = 0.25
    speed: float = 1.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Wall seconds between two snapshots (building one for 1,000 robots costs a few ms).
    snapshot_every: float = 0.1
    #: Robots on real links that have said where they are since the last call, each by its
    #: status (fleet/service/wiring.py Adoption); they join at the start of a cycle.
    arrivals: Callable[[], list[StatusReport]] | None = None

    def __post_init__(self) -> None:
        self._commands: queue.SimpleQueue[tuple[Callable[[], object], Future]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused: set[str] = set()
        self._paused_all = False
        self._estop = False
        self._blocked: set[Cell] = set()  # cells operators blocked
        self._alarmed: dict[tuple[str, str], int] = {}  # (robot, error code) -> alarm id
        self._warned_since: dict[tuple[str, str], float] = {}
        self._carried = {r.robot_id: r.shelf_id for r in self.motion.robots.values()}
        #: After a restart: cells robots on real links were granted, blocked until each
        #: joins, and the shelf the store saw on each (fleet/service/store.py robot_cells).
        self._reserved: dict[str, list[Cell]] = {}
        self._loads: dict[str, str] = {}
        self._granted: dict[str, list[tuple[int, int]]] = {}  # robot -> cells as last written
        self._cycle = 0
        self._snapshot = self._build_snapshot()
        self._last_snapshot = 0.0
        self.error: BaseException | None = None  # what stopped the loop, if it died

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        now = self.clock.now()
        self.store.remember_robots(((r.robot_id, r.cell.x, r.cell.y) for r in self.motion.robots.values()), now)
        self.store.remember_shelves({s: p for s, p in self.shelves.items() if isinstance(p, tuple)}, now)
        for robot_id, row in self.store.known_robots().items():
            if row["out_of_service"] and robot_id in self.motion.robots:
                self.motion.robots[robot_id].out_of_service = True
        if self.arrivals is not None:
            self._reserve_until_joined()
        # what the API shows must include what was restored, before the first cycle runs
        self._snapshot = self._build_snapshot()
        self._thread = threading.Thread(target=self._loop, name="fleet-runtime", daemon=True)
        self._thread.start()

    def _reserve_until_joined(self) -> None:
        """A robot on a real link may still be moving when the service comes back: the
        cells it was granted before are kept for it (blocked) until it joins."""
        self._granted = self.store.held_cells()
        for robot_id, cells in self._granted.items():
            if robot_id not in self.motion.robots and cells:
                self._reserved[robot_id] = [Cell(x, y) for x, y in cells]
                self.motion.traffic.block(self._reserved[robot_id])
        self._loads = {row["robot"]: shelf_id for shelf_id, row in self.store.shelves().items()
                       if row["robot"] is not None}
        if self._reserved:
            log.info("keeping the cells of %d robots until they report: %s", len(self._reserved), sorted(self._reserved))

    def _write_grants(self) -> None:
        """The cells each robot on a real link holds, as far as they changed this cycle."""
        traffic = self.motion.traffic
        changed = {}
        for robot_id in self.motion.robots:
            cells = [(c.x, c.y) for c in traffic.held_cells(robot_id)]
            if cells != self._granted.get(robot_id):
                changed[robot_id] = cells
        self.store.hold_cells(changed)
        self._granted.update(changed)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.motion.link.close()  # sockets, serial ports and their threads

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `fn` on the loop thread between two cycles and return its result (or raise
        its exception). The HTTP threads never touch the core any other way."""
        if not self.running:
            raise OperatorError("the control loop is not running")
        future: Future = Future()
        self._commands.put((fn, future))
        return future.result(timeout)

    # --- the loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        simulated = isinstance(self.clock, SimulatedClock)
        wall0, sim0 = time.perf_counter(), self.clock.now()
        try:
            while not self._stop.is_set():
                if simulated:
                    self.clock.advance(self.cycle_s)
                    due = wall0 + (self.clock.now() - sim0) / self.speed
                else:  # a sped-up WallClock (fleet demo --speed) runs its cycles as much faster
                    due = time.perf_counter() + self.cycle_s / self.speed
                self._cycle_once()
                lag = time.perf_counter() - due
                self.metrics.lag.set(max(0.0, lag))
                if lag > 1.0:  # far behind (a slow machine): do not try to catch up in a burst
                    wall0, sim0 = time.perf_counter(), self.clock.now()
                self._apply_commands(until=due)
        except BaseException as exc:  # the loop must not die silently: health reports it
            self.error = exc
            log.exception("control loop stopped")
            self._fail_pending(exc)

    def _apply_commands(self, until: float) -> None:
        while True:
            wait = until - time.perf_counter()
            try:
                fn, future = self._commands.get(timeout=max(0.0, wait)) if wait > 0 else self._commands.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except Exception as exc:
                    future.set_exception(exc)
            if self._stop.is_set():
                return

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                _, future = self._commands.get_nowait()
            except queue.Empty:
                return
            future.set_exception(OperatorError(f"the control loop stopped: {exc}"))

    def _cycle_once(self) -> None:
        now = self.clock.now()
        if self.arrivals is not None:
            for status in self.arrivals():
                try:
                    self.adopt(status, now)
                except TrafficError as exc:  # it stands where another robot is: offered again later
                    log.warning("robot %s cannot join at %s: %s", status.robot_id, status.cell, exc)
        rejected = len(self.motion.rejected_events)
        with self.metrics.planning.time():
            reports = self.motion.tick(now)
        if len(self.motion.rejected_events) > rejected:
            self.metrics.errors.labels("rejected_event").inc(len(self.motion.rejected_events) - rejected)
        for report in reports:
            self.metrics.errands.labels(report.outcome.value).inc()
        if self.work is not None:
            self.work.advance(now, reports)
        if self.arrivals is not None:
            self._write_grants()
        self._cycle += 1
        self._track_shelves(now)
        self._track_alarms(now)
        wall = time.perf_counter()
        if wall - self._last_snapshot >= self.snapshot_every:
            self._last_snapshot = wall
            self._snapshot = self._build_snapshot()

    def adopt(self, status: StatusReport, now: float) -> bool:
        """A robot that turned up after start (a vehicle come ONLINE, a serial robot
        answering) joins the fleet where its status puts it, as those known at start did.

        After a restart it may still run a job of the killed service: that is cancelled,
        and while it drives it does not join (it is offered again): the cells it was
        granted stay blocked until it joins, so nobody is planned into its way. Returns
        whether it joined."""
        assert status.cell is not None and status.heading is not None
        robot_id = status.robot_id
        if status.job_id is not None:
            self._instant(robot_id, InstantKind.CANCEL)
        if status.driving:
            log.info("robot %s is still driving a job of before; it joins once it stands", robot_id)
            return False
        reserved = [c for c in self._reserved.pop(robot_id, []) if c not in self._blocked]
        self.motion.traffic.unblock(reserved)
        try:
            self.motion.add_robot(robot_id, status.cell, status.heading)
        except TrafficError:
            self._reserved[robot_id] = reserved
            self.motion.traffic.block(reserved)
            raise
        robot = self.motion.robots[robot_id]
        robot.charge, robot.shelf_id = status.charge, status.shelf_id
        # the shelf the store saw on it: booked off it at the next cycle if it has none now
        self._carried[robot_id] = self._loads.pop(robot_id, None)
        self.store.remember_robots([(robot_id, status.cell.x, status.cell.y)], now)
        robot.out_of_service = bool(self.store.known_robots()[robot_id]["out_of_service"])
        log.info("robot %s joined at %s facing %s", robot_id, status.cell, status.heading.name)
        # what the operators ordered the whole fleet holds for a newcomer too
        if self._estop:
            self._instant(robot_id, InstantKind.STOP)
        if self._paused_all:
            self._instant(robot_id, InstantKind.PAUSE)
        robot.paused = self._estop or self._paused_all

    def _track_shelves(self, now: float) -> None:
        """A robot's load changed: the shelf was lifted or set down. Written to the store
        in one transaction per cycle, then shown."""
        moves = []
        for robot in self.motion.robots.values():
            before = self._carried.get(robot.robot_id)
            if robot.shelf_id == before:
                continue
            if before is not None:
                moves.append((before, (robot.cell.x, robot.cell.y), None))
            if robot.shelf_id is not None:
                moves.append((robot.shelf_id, None, robot.robot_id))
            self._carried[robot.robot_id] = robot.shelf_id
        self.store.move_shelves(moves, now)
        for shelf_id, cell, robot_id in moves:
            self.shelves[shelf_id] = cell if cell is not None else robot_id

    def _track_alarms(self, now: float) -> None:
        """FATAL robot errors raise an alarm at once, WARNINGs once they last, and so does a
        battery below the threshold while not charging; an alarm is cleared when its cause is."""
        present: set[tuple[str, str]] = set()
        low = self.thresholds.low_charge
        for robot in self.motion.robots.values():
            if robot.charge < low and not robot.charging:
                key = (robot.robot_id, "low_charge")
                present.add(key)
                if key not in self._alarmed:
                    self._alarmed[key] = self.store.raise_alarm(
                        now, "low_charge", "warning", f"{robot.robot_id}: battery at {robot.charge:.0%}", robot.robot_id)
            for code, severity in robot.errors.items():
                key = (robot.robot_id, code)
                present.add(key)
                if key in self._alarmed:
                    continue
                if severity is Severity.WARNING:
                    since = self._warned_since.setdefault(key, now)
                    if now - since < self.thresholds.warning_alarm_s:
                        continue
                self._alarmed[key] = self.store.raise_alarm(
                    now, "robot_error", severity.value, f"{robot.robot_id}: {code}", robot.robot_id)
        for key in [k for k in self._alarmed if k not in present]:
            self.store.clear_alarm(self._alarmed.pop(key), now)
        for key in [k for k in self._warned_since if k not in present]:
            del self._warned_since[key]
        self.metrics.alarms.set(len(self._alarmed))

    def _build_snapshot(self) -> Snapshot:
        robots: dict[str, RobotRow] = {}
        held: dict[str, tuple[tuple[int, int], ...]] = {}
        errors: dict[str, dict[str, str]] = {}
        traffic = self.motion.traffic
        for robot_id, r in self.motion.robots.items():
            state = robot_state(r)
            robots[robot_id] = (r.cell.x, r.cell.y, int(r.heading), state, round(r.charge * 100),
                                r.shelf_id, r.errand.errand_id if r.errand else None)
            held[robot_id] = tuple((c.x, c.y) for c in traffic.held_cells(robot_id))
            if r.errors:
                errors[robot_id] = {code: sev.value for code, sev in r.errors.items()}
        for state, count in count_states(self.motion.robots.values()).items():
            self.metrics.robots.labels(state).set(count)
        return Snapshot(self.clock.now(), self._cycle, robots, held, errors, dict(self.shelves),
                        frozenset((c.x, c.y) for c in self._blocked), self._estop, self._paused_all)

    def _publish(self) -> None:
        """After an operator command: show its effect at once, not at the next snapshot."""
        self._snapshot = self._build_snapshot()

    # --- operator commands (each runs on the loop thread via `call`) ------------------------
    def check_robot(self, robot_id: str) -> None:
        if robot_id not in self.motion.robots:
            raise NotFound(f"unknown robot {robot_id!r}")

    def check_cell(self, x: int, y: int) -> Cell:
        if not (0 <= x < self.wmap.width and 0 <= y < self.wmap.height):
            raise OperatorError(f"cell ({x}, {y}) is outside the map ({self.wmap.width} x {self.wmap.height})")
        cell = Cell(x, y)
        if not self.wmap.traversable(cell):
            raise OperatorError(f"cell ({x}, {y}) is not traversable (it is {self.wmap.kind(cell).name.lower()})")
        return cell

    def pause(self, robot_id: str | None) -> None:
        """Pause one robot, or all (None). It brakes and keeps its job and its cells."""
        if robot_id is not None:
            self.check_robot(robot_id)
        self._instant(robot_id, InstantKind.PAUSE)
        if robot_id is None:
            self._paused_all = True
        else:
            self._paused.add(robot_id)
        self._mark_paused()
        self._publish()

    def resume(self, robot_id: str | None) -> None:
        if robot_id is not None:
            self.check_robot(robot_id)
            if self._paused_all:
                raise OperatorError("the whole fleet is paused: resume all first")
        self._instant(robot_id, InstantKind.RESUME)
        if robot_id is None:
            self._paused_all = False
            self._paused.clear()
        else:
            self._paused.discard(robot_id)
        self._mark_paused()
        self._publish()

    def _mark_paused(self) -> None:
        """Traffic control must know too: a paused robot is granted no further cells. An
        emergency stop freezes every robot as a pause does (over VDA 5050 it is one)."""
        for robot_id, robot in self.motion.robots.items():
            robot.paused = self._estop or self._paused_all or robot_id in self._paused

    def emergency_stop(self) -> None:
        """Every robot halts where it stands, keeping its job, its load and its cells."""
        self._instant(None, InstantKind.STOP)
        self._estop = True
        self._mark_paused()
        self._publish()

    def reset(self) -> None:
        """Clear the emergency stop (and stalls) on every robot: they carry on with their jobs."""
        self._instant(None, InstantKind.RESET)
        self._estop = False
        self._mark_paused()
        self._publish()

    def set_in_service(self, robot_id: str, in_service: bool) -> None:
        """Out of service: traffic control plans it as standing still and keeps its cells;
        it is paused so it stops where it is."""
        self.check_robot(robot_id)
        robot = self.motion.robots[robot_id]
        self.store.set_out_of_service(robot_id, not in_service)
        robot.out_of_service = not in_service
        self._instant(robot_id, InstantKind.RESUME if in_service else InstantKind.PAUSE)
        if in_service:
            self._paused.discard(robot_id)
        else:
            self._paused.add(robot_id)
        self._mark_paused()
        self._publish()

    def block(self, cell: Cell) -> list[str]:
        try:
            crossed = sorted(self.motion.traffic.block([cell]))
        except TrafficError as exc:
            raise OperatorError(str(exc)) from None
        self._blocked.add(cell)
        self._publish()
        return crossed

    def unblock(self, cell: Cell) -> None:
        if cell not in self._blocked:
            raise OperatorError(f"cell ({cell.x}, {cell.y}) is not blocked")
        self.motion.traffic.unblock([cell])
        self._blocked.discard(cell)
        self._publish()

    def _instant(self, robot_id: str | None, kind: InstantKind) -> None:
        targets = list(self.motion.robots) if robot_id is None else [robot_id]
        for target in targets:
            self.motion.link.instant(target, InstantCommand(kind))
