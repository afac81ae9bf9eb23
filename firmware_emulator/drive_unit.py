"""One emulated robot's firmware: the command interface the wire front ends translate to.

The drive unit decides like a robot's controller: it accepts or refuses jobs, walks its
job step by step (turn in place, act, drive straight runs), reads QR codes, keeps its
errors, and reports events. It does not move itself: the World integrates every robot's
motion at once (numpy) and calls back here when something happens to this robot (a code
passes under the camera, a run or a turn ends, the battery crosses a percent, ...).

The firmware only knows what a robot knows: the codes it has read, its odometry, its
load cell and its laser. The World alone knows the truth (where the robot really is,
what it hit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from drivers.commands import ActionKind, CellAction, InstantCommand, InstantKind, Job, Step, check_path
from drivers.events import (
    ActionFailed,
    ActionFinished,
    BatteryReport,
    CellReached,
    ErrorCleared,
    ErrorRaised,
    JobFinished,
    JobRejected,
    LoadChanged,
    RobotEvent,
    Severity,
    StatusReport,
)
from firmware_emulator.profile import RobotProfile
from maps.model import Cell, CellKind, Heading

if TYPE_CHECKING:
    from firmware_emulator.world import Timer, World

#: Error codes a drive unit raises (ErrorRaised.code), documented in docs/emulator.md.
EMERGENCY_STOP = "emergency_stop"
COLLISION = "collision"
MOTOR_STALL = "motor_stall"
LOCALISATION_LOST = "localisation_lost"
NOT_LOCALISED = "not_localised"
INIT_REJECTED = "init_position_rejected"
BATTERY_CRITICAL = "battery_critical"
BATTERY_EMPTY = "battery_empty"
OBSTACLE = "obstacle"

_HEADINGS = tuple(Heading)
_QUARTER = math.pi / 2

#: Errors a RESET clears (the others need their cause removed first).
_RESETTABLE = (EMERGENCY_STOP, COLLISION, MOTOR_STALL)


@dataclass(frozen=True)
class RobotError:
    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class Status:
    """Everything the firmware knows about itself; richer than the wire's StatusReport
    (front ends map the fields their protocol has)."""

    robot_id: str
    time: float
    online: bool
    localised: bool
    last_qr: str | None
    cell: Cell | None
    heading: Heading | None
    x: float  # believed (dead-reckoned) pose, metres / radians in the world frame
    y: float
    theta: float
    qr_offset: tuple[float, float, float]  # what the camera saw at the last code: dx, dy (m), dtheta (rad)
    speed: float
    state: str  # idle, driving, turning, lifting, lowering, waiting
    paused: bool
    shelf_id: str | None
    load_kg: float
    charge: float
    charging: bool
    errors: tuple[RobotError, ...]
    job_id: str | None
    step_index: int | None
    steps_total: int


class DriveUnit:
    def __init__(self, world: "World", index: int, robot_id: str, profile: RobotProfile, rng: np.random.Generator,
                 localised: bool) -> None:
        self.world = world
        self.index = index
        self.id = robot_id
        self.profile = profile
        self._rng = rng
        angle = float(rng.uniform(-math.pi, math.pi))
        self._drift_dir = (math.cos(angle), math.sin(angle))  # this robot's odometry bias
        self.online = True
        self.localised = False
        self.cell: Cell | None = None
        self.last_qr: str | None = None
        self.qr_offset = (0.0, 0.0, 0.0)
        self.missed_codes = 0
        self.errors: dict[str, RobotError] = {}
        self.holds: set[str] = set()
        self.stall_until = -math.inf
        self.activity: str | None = None  # driving, turning, lifting, lowering, waiting
        self._action: tuple[str | None, CellAction] | None = None  # (job id, action) running
        self._action_timer: Timer | None = None
        # the job
        self.job_id: str | None = None
        self.steps: list[Step] = []
        self.at = 0  # index of the step whose cell the robot last reached
        self.actions_done = 0  # actions of steps[at] already finished
        self.job_active = False  # False once the job is finished (it may still be extended)
        self._run_start = 0
        self._run_end = 0
        self._cancelling = False
        if localised:
            self._read_code(self._true_cell(), announce=False)
        else:
            self._raise(NOT_LOCALISED, Severity.WARNING, "not localised: place me on a code and initialise my position")

    # ------------------------------------------------------------------ commands
    def send_job(self, job: Job) -> bool:
        """Accept a new job or refuse it with JobRejected. Returns whether it was accepted."""
        if self.booting:
            return False
        reason = self._refusal(job)
        if reason:
            self._emit(JobRejected, job_id=job.job_id, reason=reason)
            return False
        self.job_id = job.job_id
        self.steps = list(job.steps)
        self.at = 0
        self.actions_done = 0
        self.job_active = True
        self._proceed()
        return True

    def extend_job(self, job_id: str, steps: Sequence[Step]) -> bool:
        """Append steps to the current (or just finished) job, continuing from its last step."""
        if self.booting:
            return False
        if self.job_id != job_id or not self.steps:
            self._emit(JobRejected, job_id=job_id, reason=f"no job {job_id!r} to extend (current: {self.job_id!r})")
            return False
        if not steps:
            self._emit(JobRejected, job_id=job_id, reason="extension has no steps")
            return False
        last = self.steps[-1].cell
        try:
            check_path(steps, f"extension of job {job_id!r}", start=last)
        except ValueError as exc:
            self._emit(JobRejected, job_id=job_id, reason=str(exc))
            return False
        reason = self._outside(steps) or self._battery_refusal([self.steps[-1], *steps])
        if reason:
            self._emit(JobRejected, job_id=job_id, reason=reason)
            return False
        self.steps.extend(steps)
        if self.activity == "driving" and not self._cancelling:
            self._lengthen_run()
        self.job_active = True
        self._proceed()
        return True

    def instant(self, command: InstantCommand) -> None:
        if self.booting:
            return
        kind = command.kind
        if kind is InstantKind.PAUSE:
            self._hold("paused")
        elif kind is InstantKind.RESUME:
            self._release("paused")
        elif kind is InstantKind.STOP:
            self.world.v[self.index] = 0.0
            self._hold(EMERGENCY_STOP)
            self._raise(EMERGENCY_STOP, Severity.FATAL, "emergency stop: RESET to carry on")
        elif kind is InstantKind.RESET:
            self._reset()
        elif kind is InstantKind.CANCEL:
            self._cancel()
        elif kind is InstantKind.INIT_POSITION:
            self._init_position(command.cell, command.heading)
        elif kind is InstantKind.STATUS:
            self.report_status()

    def status(self) -> Status:
        w, i = self.world, self.index
        x, y, theta = self._believed_pose()
        shelf = w.carried_shelf(i)
        return Status(
            robot_id=self.id, time=w.clock.now(), online=self.online, localised=self.localised,
            last_qr=self.last_qr, cell=self.cell if self.localised else None,
            heading=self.heading if self.localised else None, x=x, y=y, theta=theta,
            qr_offset=self.qr_offset, speed=float(w.v[i]), state=self.activity or "idle",
            paused="paused" in self.holds, shelf_id=shelf.id if shelf else None,
            load_kg=shelf.weight_kg if shelf else 0.0, charge=float(w.soc[i]), charging=bool(w.charging[i]),
            errors=tuple(self.errors.values()), job_id=self.job_id,
            step_index=self.at if self.job_id else None, steps_total=len(self.steps),
        )

    def report_status(self) -> None:
        """The periodic snapshot; built directly (a thousand robots send one a second)."""
        w, i = self.world, self.index
        x, y, theta = self._believed_pose()
        s = int(w.carried[i])
        self._emit(StatusReport, cell=self.cell if self.localised else None,
                   heading=self.heading if self.localised else None, x=x, y=y, theta=theta,
                   speed=float(w.v[i]), driving=self.activity in ("driving", "turning"),
                   paused="paused" in self.holds, charge=float(w.soc[i]),
                   shelf_id=w.shelf_ids[s] if s >= 0 else None, job_id=self.job_id, errors=tuple(self.errors))

    def _believed_pose(self) -> tuple[float, float, float]:
        """True pose plus what the camera misjudged at the last code plus odometry drift since."""
        w, i = self.world, self.index
        drift = self.profile.drift_per_m * float(w.since_code[i])
        dx, dy, dth = self.qr_offset
        return (float(w.x[i]) + dx + drift * self._drift_dir[0], float(w.y[i]) + dy + drift * self._drift_dir[1],
                float(w.theta[i]) + dth)

    @property
    def booting(self) -> bool:
        """A restarting controller hears nothing (a wire would not reach it either)."""
        return "booting" in self.holds

    @property
    def heading(self) -> Heading:
        return _HEADINGS[round(float(self.world.theta[self.index]) / _QUARTER) % 4]

    # ------------------------------------------------------------------ job walking
    def _refusal(self, job: Job) -> str:
        if not self.localised:
            return "not localised: initialise my position first"
        if self.job_active:
            return f"job {self.job_id!r} is in progress"
        if self.activity is not None:
            return f"busy ({self.activity}): wait until I stand still"
        blocking = self.holds - {"paused"}
        if blocking:
            return f"in error state ({', '.join(sorted(blocking))}): RESET or fix first"
        if job.steps[0].cell != self.cell or not self._centred():
            return f"job starts at {job.steps[0].cell} but I stand on {self.cell}"
        return self._outside(job.steps) or self._battery_refusal(job.steps)

    def _outside(self, steps: Sequence[Step]) -> str:
        for step in steps:
            if not self.world.map.in_bounds(step.cell):
                return f"step cell {step.cell} is outside the map"
        return ""

    def _battery_refusal(self, steps: Sequence[Step]) -> str:
        charge = float(self.world.soc[self.index])
        moves = any(s.cell != steps[0].cell for s in steps)
        if moves and charge < self.profile.critical_charge:
            return f"battery critical ({charge:.0%} < {self.profile.critical_charge:.0%}): no new motion"
        return ""

    def _proceed(self) -> None:
        """Do the next thing the job asks, if the robot is free to."""
        if not self.job_active or self.activity is not None or self.holds:
            return
        while True:
            step = self.steps[self.at]
            if step.heading is not None and step.heading != self.heading:
                self._turn(step.heading)
                return
            if self.actions_done < len(step.actions):
                self._start_action(step.actions[self.actions_done])
                return
            if self.at == len(self.steps) - 1:
                self.job_active = False
                self._emit(JobFinished, job_id=self.job_id)
                return
            nxt = self.steps[self.at + 1]
            if nxt.cell == step.cell:
                self.at += 1
                self.actions_done = 0
                continue
            direction = Heading.between(step.cell, nxt.cell)
            if direction != self.heading:
                self._turn(direction)
                return
            self._run_start = self.at
            self._run_end = self._run_end_from(self.at, direction)
            self._stop_charging()
            self.activity = "driving"
            self.world.start_run(self.index, direction, (self._run_end - self.at) * self.world.map.pitch)
            return

    def _run_end_from(self, start: int, direction: Heading) -> int:
        """Last step of the straight run from `start`: the robot stops there (a turn, an
        action, a heading to take, or the end of what it has been released)."""
        k = start + 1
        while k < len(self.steps) - 1:
            step = self.steps[k]
            if step.actions or (step.heading is not None and step.heading != direction):
                break
            nxt = self.steps[k + 1].cell
            if (nxt.x - step.cell.x, nxt.y - step.cell.y) != direction.step:
                break
            k += 1
        return k

    def _lengthen_run(self) -> None:
        end = self._run_end_from(self._run_start, self.heading)
        if end > self._run_end:
            self.world.goal[self.index] += (end - self._run_end) * self.world.map.pitch
            self._run_end = end

    def _turn(self, heading: Heading) -> None:
        self.activity = "turning"
        self._stop_charging()
        self.world.start_turn(self.index, self.heading.quarter_turns_to(heading) * math.pi / 2)

    def _start_action(self, action: CellAction) -> None:
        failure = self._action_refusal(action)
        if failure:
            self._fail_action(action, failure)
            return
        self._action = (self.job_id, action)
        if action.kind is ActionKind.LIFT:
            self.activity = "lifting"
            self.world.lifting[self.index] = True
            self._action_timer = self.world.after(self.profile.lift_time, self._lifted)
        elif action.kind is ActionKind.LOWER:
            self.activity = "lowering"
            self.world.lifting[self.index] = True
            self._action_timer = self.world.after(self.profile.lower_time, self._lowered)
        elif action.kind is ActionKind.WAIT:
            self.activity = "waiting"
            self._action_timer = self.world.after(action.duration, self._action_done)
        elif action.kind is ActionKind.START_CHARGING:
            self.world.charging[self.index] = True
            self._battery_report()
            self._action_done()
        else:
            self._stop_charging()
            self._action_done()

    def _action_refusal(self, action: CellAction) -> str:
        w, i = self.world, self.index
        if action.kind is ActionKind.LIFT:
            if w.carried_shelf(i) is not None:
                return f"already carrying shelf {w.carried_shelf(i).id}"
            shelf = w.shelf_above(i)
            if shelf is None:
                return "no shelf above me to lift"
            if action.shelf_id is not None and action.shelf_id != shelf.id:
                return f"expected shelf {action.shelf_id} but shelf {shelf.id} is above me"
            if shelf.weight_kg > self.profile.payload_kg:
                return f"shelf {shelf.id} weighs {shelf.weight_kg:.0f} kg, over my payload of {self.profile.payload_kg:.0f} kg"
        elif action.kind is ActionKind.LOWER:
            shelf = w.carried_shelf(i)
            if shelf is None:
                return "carrying no shelf to lower"
            if action.shelf_id is not None and action.shelf_id != shelf.id:
                return f"expected to lower shelf {action.shelf_id} but I carry {shelf.id}"
            if w.shelf_above(i) is not None:
                return f"cell {self.cell} already holds shelf {w.shelf_above(i).id}"
        elif action.kind is ActionKind.START_CHARGING:
            if w.map.kind(self._true_cell()) is not CellKind.CHARGER:
                return f"cell {self.cell} is not a charger"
        return ""

    def _lifted(self) -> None:
        shelf = self.world.lift_shelf(self.index)
        self._emit(LoadChanged, shelf_id=shelf.id, weight_kg=shelf.weight_kg)
        self._action_done()

    def _lowered(self) -> None:
        self.world.lower_shelf(self.index)
        self._emit(LoadChanged, shelf_id=None, weight_kg=0.0)
        self._action_done()

    def _action_done(self) -> None:
        job_id, action = self._action
        self._end_action()
        self._emit(ActionFinished, job_id=job_id, action_id=action.action_id, kind=action.kind)
        if job_id == self.job_id and self.job_active:
            self.actions_done += 1
        self._settled()

    def _fail_action(self, action: CellAction, reason: str) -> None:
        """A failed action ends the job: driving on would carry out the rest of a plan whose
        premise (this shelf lifted, that one set down) is false."""
        self._emit(ActionFailed, job_id=self.job_id, action_id=action.action_id, kind=action.kind, reason=reason)
        self._drop_job()
        self.report_status()

    def _end_action(self) -> None:
        self._action = None
        self._action_timer = None
        self.activity = None
        self.world.lifting[self.index] = False

    def _drop_job(self) -> None:
        self.job_id = None
        self.steps = []
        self.at = 0
        self.actions_done = 0
        self.job_active = False

    def _settled(self) -> None:
        """The robot stands still after a motion or action: finish a cancel or carry on."""
        if self._cancelling:
            self._cancelling = False
            self.report_status()
            return
        self._proceed()

    # ------------------------------------------------------------------ called by the World
    def on_centre(self) -> None:
        """The centre of the robot passed a cell centre: the camera sees a code (or misses it)."""
        if self.activity == "driving" and not self._cancelling and self.job_id is not None:
            self.at += 1
            self.actions_done = 0
        if self.missed_codes > 0:
            self.missed_codes -= 1
            return
        self._read_code(self._true_cell())

    def on_arrived(self) -> None:
        self.activity = None
        self._settled()

    def on_turned(self) -> None:
        self.activity = None
        self._settled()

    def on_code_overdue(self) -> None:
        self._lose_localisation(
            f"no code read for {self.profile.max_distance_without_code_m} m: stopped, dead reckoning not trusted")

    def on_laser(self, stopped: bool) -> None:
        if stopped:
            self._raise(OBSTACLE, Severity.WARNING, "laser: obstacle in the protective field, waiting")
        else:
            self._clear(OBSTACLE)

    def on_battery(self) -> None:
        charge = float(self.world.soc[self.index])
        self._battery_report()
        if charge < self.profile.critical_charge:
            self._raise(BATTERY_CRITICAL, Severity.WARNING, f"battery critical ({charge:.0%}): refusing new motion")
        else:
            self._clear(BATTERY_CRITICAL)
        if charge <= 0.0:
            self.world.v[self.index] = 0.0
            self._hold(BATTERY_EMPTY)
            self._raise(BATTERY_EMPTY, Severity.FATAL, "battery empty")
        elif BATTERY_EMPTY in self.holds:
            self._clear(BATTERY_EMPTY)
            self._release(BATTERY_EMPTY)

    def on_collision(self, what: str) -> None:
        self.world.v[self.index] = 0.0
        self._hold(COLLISION)
        self._raise(COLLISION, Severity.FATAL, f"collision with {what}: RESET to carry on")

    # faults (applied by the World)
    def stall(self, until: float) -> None:
        self.stall_until = max(self.stall_until, until)
        self.world.v[self.index] = 0.0
        self._hold(MOTOR_STALL)
        self._raise(MOTOR_STALL, Severity.FATAL, "drive motor stalled: RESET once free")

    def miss_codes(self, count: int) -> None:
        self.missed_codes += count

    def lose_localisation(self) -> None:
        self._lose_localisation("localisation lost")

    def reboot(self) -> None:
        """The controller restarts: it forgets its job, its pose and its errors (the lift
        stays as it is, it is mechanical)."""
        self._halt_motion()
        self._drop_job()
        self._cancelling = False
        self.localised = False
        self.cell = None
        self.missed_codes = 0
        self.errors.clear()
        self.stall_until = -math.inf
        self.holds = {"booting"}
        self._sync_hold()
        self._stop_charging(report=False)

    def booted(self) -> None:
        self.holds.discard("booting")
        self._sync_hold()
        self._raise(NOT_LOCALISED, Severity.WARNING, "rebooted: initialise my position")

    # ------------------------------------------------------------------ internals
    def _cancel(self) -> None:
        """Drop the job; a moving robot stops at the next cell centre it can reach braking normally."""
        if self._action is not None and self.activity == "waiting":
            job_id, action = self._action
            self.world.cancel_timer(self._action_timer)
            self._end_action()
            self._emit(ActionFailed, job_id=job_id, action_id=action.action_id, kind=action.kind, reason="cancelled")
        self._drop_job()
        if self.activity is None:
            self.report_status()
            return
        self._cancelling = True
        if self.activity == "driving":
            w, i, pitch = self.world, self.index, self.world.map.pitch
            run, v = float(w.run[i]), float(w.v[i])
            reach = run + v * v / (2 * self.profile.deceleration)
            target = math.ceil(reach / pitch - 1e-9) * pitch
            w.goal[i] = min(float(w.goal[i]), max(target - run, 0.0))

    def _reset(self) -> None:
        for code in _RESETTABLE:
            if code == MOTOR_STALL and self.world.clock.now() < self.stall_until:
                continue
            self._release(code)
            self._clear(code)
        self._proceed()

    def _init_position(self, cell: Cell | None, heading: Heading | None) -> None:
        true_cell = self._true_cell()
        cx, cy = self.world.map.position(true_cell)
        off = math.hypot(float(self.world.x[self.index]) - cx, float(self.world.y[self.index]) - cy)
        problem = ""
        if cell is None:
            problem = "INIT_POSITION needs a cell"
        elif self.activity is not None:
            problem = f"cannot initialise while {self.activity}"
        elif off > self.profile.qr_window_m or not self.world.map.traversable(true_cell):
            problem = "no code under my camera: place me on a code"
        elif true_cell != cell:
            problem = f"told I stand on {cell} but I read the code of {true_cell}"
        elif heading is not None and heading != self.heading:
            problem = f"told I face {heading.name.lower()} but the code says {self.heading.name.lower()}"
        if problem:
            self._raise(INIT_REJECTED, Severity.WARNING, problem, replace=True)
            return
        self._clear(INIT_REJECTED)
        self._clear(NOT_LOCALISED)
        self._clear(LOCALISATION_LOST)
        self._release(LOCALISATION_LOST)
        self.missed_codes = 0
        self._read_code(true_cell, announce=True)

    def _read_code(self, cell: Cell, announce: bool = True) -> None:
        w, i, p = self.world, self.index, self.profile
        self.localised = True
        self.cell = cell
        self.last_qr = w.map.qr_id(cell)
        self.qr_offset = (
            float(self._rng.normal(0.0, p.qr_offset_sigma_m)),
            float(self._rng.normal(0.0, p.qr_offset_sigma_m)),
            math.radians(float(self._rng.normal(0.0, p.qr_heading_sigma_deg))),
        )
        w.since_code[i] = 0.0
        if announce:
            on_job = self.activity == "driving" and not self._cancelling and self.job_id is not None
            self._emit(CellReached, cell=cell, heading=self.heading, job_id=self.job_id if on_job else None,
                       step_index=self.at if on_job else None)

    def _lose_localisation(self, message: str) -> None:
        self._halt_motion()
        self._drop_job()
        self._cancelling = False
        self.localised = False
        self._hold(LOCALISATION_LOST)
        self._raise(LOCALISATION_LOST, Severity.FATAL, message + "; place me on a code and initialise my position")

    def _halt_motion(self) -> None:
        if self._action is not None:
            self.world.cancel_timer(self._action_timer)
            self._end_action()
        self.world.halt(self.index)
        self.activity = None
        self._clear(OBSTACLE)

    def _true_cell(self) -> Cell:
        return self.world.map.cell_at(float(self.world.x[self.index]), float(self.world.y[self.index]))

    def _centred(self) -> bool:
        cx, cy = self.world.map.position(self._true_cell())
        return math.hypot(float(self.world.x[self.index]) - cx, float(self.world.y[self.index]) - cy) <= self.profile.qr_window_m

    def _stop_charging(self, report: bool = True) -> None:
        if self.world.charging[self.index]:
            self.world.charging[self.index] = False
            if report:
                self._battery_report()

    def _battery_report(self) -> None:
        self._emit(BatteryReport, charge=float(self.world.soc[self.index]), charging=bool(self.world.charging[self.index]))

    def _hold(self, reason: str) -> None:
        self.holds.add(reason)
        self._sync_hold()

    def _release(self, reason: str) -> None:
        if reason in self.holds:
            self.holds.discard(reason)
            self._sync_hold()
            self._proceed()

    def _sync_hold(self) -> None:
        self.world.hold[self.index] = bool(self.holds)

    def _raise(self, code: str, severity: Severity, message: str, replace: bool = False) -> None:
        if code in self.errors and not replace:
            return
        self.errors[code] = RobotError(code, severity, message)
        self._emit(ErrorRaised, code=code, severity=severity, message=message)

    def _clear(self, code: str) -> None:
        if self.errors.pop(code, None) is not None:
            self._emit(ErrorCleared, code=code)

    def _emit(self, event_type: Callable[..., RobotEvent], /, **fields: object) -> None:
        self.world.emit(self, event_type(robot_id=self.id, time=self.world.clock.now(), **fields))
