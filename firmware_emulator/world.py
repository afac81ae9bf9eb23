"""The physical world the emulated robots live in, and its independent collision witness.

The World holds the truth: every robot's and every shelf's continuous pose, speed and
battery, kept as numpy arrays (one slot per robot) so that a fixed physics step moves a
thousand robots in a handful of vectorised operations. The firmware (DriveUnit) decides;
the World moves, senses (laser, codes passing under the camera) and judges: it detects
collisions on true geometry by itself and never asks the controller what it intended.

Time comes from the clock passed in. On a SimulatedClock the World schedules its own
ticks, so whoever advances the clock advances the world (as fast as the CPU allows); on
a wall clock `run_paced` steps it in real time for demos and benches.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Protocol

import numpy as np

from drivers.commands import InstantCommand, Job, Step
from drivers.events import ConnectionChanged, RobotEvent
from firmware_emulator.drive_unit import DriveUnit
from firmware_emulator.faults import (
    BatteryDrop,
    CommunicationLoss,
    Fault,
    LaserObstacle,
    LostLocalisation,
    MissedCode,
    MotorStall,
    Reboot,
    SlowDown,
    check_fault,
)
from firmware_emulator.geometry import close_pairs, extents, rectangles_overlap
from firmware_emulator.kinematics import speed_step
from firmware_emulator.profile import DEFAULT_PROFILE, RobotProfile
from maps.model import KIND_CODES, Cell, CellKind, Heading, WarehouseMap

#: Motion modes of a robot slot.
IDLE, DRIVING, TURNING = 0, 1, 2
#: Cells of padding around the grids: everything outside the map is a wall.
_PAD = 2
_EPS = 1e-9

DEFAULT_SHELF_KG = 250.0
#: The shelves (pods) of this warehouse are 960 x 960 mm.
SHELF_SIZE_M = 0.96


def default_shelf_id(cell: Cell) -> str:
    """Shelf ids when the caller gives none: one shelf per storage cell, named after its home."""
    return f"shelf-{cell.x}-{cell.y}"


class Clock(Protocol):
    """Any clock with now() in seconds (fleet.clock's SimulatedClock and WallClock fit;
    the emulator does not import fleet/). A clock with call_at drives the world's steps."""

    def now(self) -> float: ...


class UnknownRobotError(KeyError):
    def __str__(self) -> str:
        return f"no robot {self.args[0]!r} in the world"


@dataclass(frozen=True)
class ShelfState:
    id: str
    x: float
    y: float
    theta: float
    weight_kg: float
    carried_by: str | None


@dataclass(frozen=True)
class Collision:
    """One collision as the world saw it. `kind`: 'robot' (bodies, or a carried shelf
    against a robot), 'shelf' (a carried shelf against another shelf) or 'blocked'
    (a robot or its shelf in a blocked cell or off the map)."""

    time: float
    kind: str
    robots: tuple[str, ...]
    shelves: tuple[str, ...]
    cell: Cell
    x: float
    y: float


@dataclass(order=True)
class Timer:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


_ROBOT_FIELDS: dict[str, tuple[type, float]] = {
    # true state
    "x": (float, 0.0), "y": (float, 0.0), "theta": (float, 0.0), "v": (float, 0.0),
    "ux": (float, 1.0), "uy": (float, 0.0), "goal": (float, 0.0), "run": (float, 0.0),
    "turn_left": (float, 0.0), "since_code": (float, 0.0), "soc": (float, 1.0), "factor": (float, 1.0),
    "mode": (np.int8, IDLE), "hold": (bool, False), "charging": (bool, False), "lifting": (bool, False),
    "laser_stopped": (bool, False), "carried": (np.int64, -1), "pct": (np.int64, 100),
    "phantom_on": (bool, False), "phantom_x": (float, 0.0), "phantom_y": (float, 0.0),
    "next_status": (float, 0.0),
    # from the profile
    "vmax": (float, 0.0), "vmax_loaded": (float, 0.0), "accel": (float, 1.0), "decel": (float, 1.0),
    "emergency": (float, 1.0), "omega": (float, 1.0), "half_len": (float, 0.0), "half_wid": (float, 0.0),
    "laser_range": (float, 0.0), "standoff": (float, 0.0), "side_margin": (float, 0.0),
    "max_no_code": (float, math.inf), "capacity_j": (float, 1.0), "idle_w": (float, 0.0), "drive_w": (float, 0.0),
    "drive_loaded_w": (float, 0.0), "rotate_w": (float, 0.0), "lift_w": (float, 0.0), "charge_w": (float, 0.0),
    "counter_rot": (bool, True), "status_interval": (float, 1.0),
}


class World:
    def __init__(
        self,
        wmap: WarehouseMap,
        clock: Clock,
        *,
        dt: float = 0.05,
        seed: int = 0,
        shelves: Mapping[str, Cell] | None = None,
        shelf_weight_kg: float = DEFAULT_SHELF_KG,
        shelf_size_m: float = SHELF_SIZE_M,
    ) -> None:
        """`shelves` maps shelf id to home cell; by default one shelf stands on every storage
        cell (named by default_shelf_id)."""
        if not dt > 0:
            raise ValueError(f"physics step must be positive, got {dt}")
        if not shelf_size_m > 0:
            raise ValueError(f"shelf size must be positive, got {shelf_size_m}")
        self.map = wmap
        self.clock = clock
        self.dt = dt
        self.rng = np.random.default_rng(seed)
        self.robots: dict[str, DriveUnit] = {}
        self.units: list[DriveUnit] = []
        self.collisions: list[Collision] = []
        self.laser_stops = 0
        self._contacts: set[tuple] = set()
        self._subscribers: list[Callable[[RobotEvent], None]] = []
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._offline: dict[str, set[str]] = {}
        self._tokens: dict[tuple[str, int], int] = {}
        self._capacity = 0
        self.n = 0
        self._moved = False  # a robot was put somewhere outside the physics step
        for name, (dtype, default) in _ROBOT_FIELDS.items():
            setattr(self, name, np.full(0, default, dtype=dtype))
        self._max_reach = 0.0

        h, w = wmap.height, wmap.width
        blocked = np.ones((h + 2 * _PAD, w + 2 * _PAD), dtype=bool)
        blocked[_PAD:_PAD + h, _PAD:_PAD + w] = wmap.kinds == KIND_CODES[CellKind.BLOCKED]
        self._blocked = blocked
        self._wall_cache: dict[int, np.ndarray] = {}
        self._shelf_grid = np.full(blocked.shape, -1, dtype=np.int64)
        self.shelf_ids: list[str] = []
        self._shelf_index: dict[str, int] = {}
        self.sx = np.zeros(0)
        self.sy = np.zeros(0)
        self.stheta = np.zeros(0)
        self.sweight = np.zeros(0)
        self.srel = np.zeros(0)
        self.scarrier = np.zeros(0, dtype=np.int64)
        self.shelf_half = shelf_size_m / 2
        homes = shelves if shelves is not None else {default_shelf_id(c): c for c in wmap.cells_of(CellKind.STORAGE)}
        self.add_shelves(homes, shelf_weight_kg)

        self.ticks = 0
        self._t0 = math.floor(float(clock.now()) / dt + _EPS) * dt  # steps fall on multiples of dt
        if hasattr(clock, "call_at"):
            clock.call_at(self._next_tick(), self._scheduled_tick)

    # ------------------------------------------------------------------ building
    def add_robot(
        self,
        robot_id: str,
        cell: Cell,
        heading: Heading = Heading.EAST,
        profile: RobotProfile = DEFAULT_PROFILE,
        *,
        localised: bool = True,
        charge: float = 1.0,
    ) -> DriveUnit:
        """Place a robot on the code of `cell`. `localised=False` models a robot switched on
        without being initialised: it refuses to drive until told its position."""
        if robot_id in self.robots:
            raise ValueError(f"robot {robot_id!r} is already in the world")
        if not self.map.traversable(cell):
            raise ValueError(f"cannot place robot {robot_id!r} on {cell}: not a traversable cell of {self.map.name!r}")
        if not 0.0 <= charge <= 1.0:
            raise ValueError(f"charge must be in [0, 1], got {charge}")
        if self.n == self._capacity:
            self._grow(max(8, 2 * self._capacity))
        i = self.n
        self.n += 1
        for name, (_, default) in _ROBOT_FIELDS.items():
            getattr(self, name)[i] = default
        p = profile
        self.x[i], self.y[i] = self.map.position(cell)
        self.theta[i] = heading.radians
        self.soc[i] = charge
        self.pct[i] = int(math.floor(charge * 100 + _EPS))
        self.vmax[i], self.vmax_loaded[i] = p.max_speed, p.max_speed_loaded
        self.accel[i], self.decel[i], self.emergency[i] = p.acceleration, p.deceleration, p.emergency_deceleration
        self.omega[i] = p.rotation_speed
        self.half_len[i], self.half_wid[i] = p.body_length_m / 2, p.body_width_m / 2
        self.laser_range[i], self.standoff[i], self.side_margin[i] = p.laser_range_m, p.laser_standoff_m, p.laser_side_margin_m
        self.max_no_code[i] = p.max_distance_without_code_m
        self.capacity_j[i] = p.battery_wh * 3600.0
        self.idle_w[i], self.drive_w[i], self.drive_loaded_w[i] = p.idle_w, p.drive_w, p.drive_loaded_w
        self.rotate_w[i], self.lift_w[i], self.charge_w[i] = p.rotate_w, p.lift_w, p.charge_w
        self.counter_rot[i] = p.counter_rotation
        self.status_interval[i] = p.status_interval
        self.next_status[i] = self.clock.now() + float(self.rng.uniform(0.0, p.status_interval))
        self._max_reach = max(self._max_reach, math.hypot(p.body_length_m, p.body_width_m) / 2,
                              self.shelf_half * math.sqrt(2))
        unit = DriveUnit(self, i, robot_id, p, np.random.default_rng([self.rng.integers(2**32), i]), localised)
        self.robots[robot_id] = unit
        self.units.append(unit)
        self._moved = True
        self._offline[robot_id] = set()
        return unit

    def add_shelf(self, shelf_id: str, cell: Cell, weight_kg: float = DEFAULT_SHELF_KG) -> None:
        self.add_shelves({shelf_id: cell}, weight_kg)

    def add_shelves(self, homes: Mapping[str, Cell], weight_kg: float = DEFAULT_SHELF_KG) -> None:
        """Stand shelves on their home cells (all checked before any is placed)."""
        if weight_kg < 0:
            raise ValueError("shelf weight must not be negative")
        taken: dict[Cell, str] = {}
        for shelf_id, cell in homes.items():
            if shelf_id in self._shelf_index:
                raise ValueError(f"shelf {shelf_id!r} is already in the world")
            if not self.map.traversable(cell):
                raise ValueError(f"cannot place shelf {shelf_id!r} on {cell}: not a traversable cell")
            there = self.stored_shelf_at(cell) or taken.get(cell)
            if there is not None:
                raise ValueError(f"cannot place shelf {shelf_id!r} on {cell}: shelf {there!r} stands there")
            taken[cell] = shelf_id
        first = len(self.shelf_ids)
        for k, (shelf_id, cell) in enumerate(homes.items()):
            self.shelf_ids.append(shelf_id)
            self._shelf_index[shelf_id] = first + k
            self._shelf_grid[cell.y + _PAD, cell.x + _PAD] = first + k
        xy = np.array([self.map.position(c) for c in homes.values()], dtype=float).reshape(-1, 2)
        count = len(homes)
        self.sx = np.concatenate([self.sx, xy[:, 0]])
        self.sy = np.concatenate([self.sy, xy[:, 1]])
        self.stheta = np.concatenate([self.stheta, np.zeros(count)])
        self.sweight = np.concatenate([self.sweight, np.full(count, float(weight_kg))])
        self.srel = np.concatenate([self.srel, np.zeros(count)])
        self.scarrier = np.concatenate([self.scarrier, np.full(count, -1, dtype=np.int64)])
        self._moved = True

    def set_shelf_weight(self, shelf_id: str, weight_kg: float) -> None:
        """Goods were put in or taken out (stations do this on real shelves)."""
        if weight_kg < 0:
            raise ValueError("weight must not be negative")
        self.sweight[self._shelf(shelf_id)] = weight_kg

    def place_robot(self, robot_id: str, cell: Cell, heading: Heading = Heading.EAST) -> None:
        """An operator lifts the robot off the floor (it loses its localisation, its motion
        and its job) and sets it down on the code of `cell`. It then needs INIT_POSITION,
        as on the floor."""
        unit = self.robot(robot_id)
        if not self.map.traversable(cell):
            raise ValueError(f"cannot place robot {robot_id!r} on {cell}: not traversable")
        unit.lose_localisation()
        i = unit.index
        self.x[i], self.y[i] = self.map.position(cell)
        self.theta[i] = heading.radians
        self.since_code[i] = 0.0
        self._follow_shelves()
        self._moved = True

    def _grow(self, capacity: int) -> None:
        for name, (dtype, default) in _ROBOT_FIELDS.items():
            old = getattr(self, name)
            new = np.full(capacity, default, dtype=dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self._capacity = capacity

    # ------------------------------------------------------------------ queries
    def robot(self, robot_id: str) -> DriveUnit:
        try:
            return self.robots[robot_id]
        except KeyError:
            raise UnknownRobotError(robot_id) from None

    def shelf(self, shelf_id: str) -> ShelfState:
        s = self._shelf(shelf_id)
        carrier = int(self.scarrier[s])
        return ShelfState(shelf_id, float(self.sx[s]), float(self.sy[s]), float(self.stheta[s]),
                          float(self.sweight[s]), self.units[carrier].id if carrier >= 0 else None)

    def _shelf(self, shelf_id: str) -> int:
        try:
            return self._shelf_index[shelf_id]
        except KeyError:
            raise KeyError(f"no shelf {shelf_id!r} in the world") from None

    def carried_shelf(self, i: int) -> ShelfState | None:
        s = int(self.carried[i])
        return self.shelf(self.shelf_ids[s]) if s >= 0 else None

    def shelf_above(self, i: int) -> ShelfState | None:
        """The stored shelf the robot stands centred under, if any."""
        cell = self.map.cell_at(float(self.x[i]), float(self.y[i]))
        s = int(self._shelf_grid[cell.y + _PAD, cell.x + _PAD])
        if s < 0 or math.hypot(self.sx[s] - self.x[i], self.sy[s] - self.y[i]) > self.units[i].profile.qr_window_m:
            return None
        return self.shelf(self.shelf_ids[s])

    def stored_shelf_at(self, cell: Cell) -> str | None:
        s = int(self._shelf_grid[cell.y + _PAD, cell.x + _PAD])
        return self.shelf_ids[s] if s >= 0 else None

    def now(self) -> float:
        return float(self.clock.now())

    # ------------------------------------------------------------------ commands (the firmware interface)
    def send_job(self, robot_id: str, job: Job) -> bool:
        return self.robot(robot_id).send_job(job)

    def extend_job(self, robot_id: str, job_id: str, steps: list[Step]) -> bool:
        return self.robot(robot_id).extend_job(job_id, steps)

    def instant(self, robot_id: str, command: InstantCommand) -> None:
        self.robot(robot_id).instant(command)

    def subscribe(self, callback: Callable[[RobotEvent], None]) -> Callable[[], None]:
        """Receive every event robots send while they are online; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def emit(self, unit: DriveUnit, event: RobotEvent) -> None:
        if unit.online:
            for callback in list(self._subscribers):
                callback(event)

    def _connection(self, unit: DriveUnit, online: bool, reason: str) -> None:
        event = ConnectionChanged(robot_id=unit.id, time=self.now(), online=online, reason=reason)
        for callback in list(self._subscribers):
            callback(event)

    # ------------------------------------------------------------------ motion requests from firmware
    def start_run(self, i: int, heading: Heading, distance: float) -> None:
        dx, dy = heading.step
        self.mode[i] = DRIVING
        self.ux[i], self.uy[i] = dx, -dy  # layout rows grow south, metric y grows north
        self.goal[i] = distance
        self.run[i] = 0.0

    def start_turn(self, i: int, angle: float) -> None:
        self.mode[i] = TURNING
        self.turn_left[i] = angle

    def halt(self, i: int) -> None:
        """Stop dead and forget the motion in progress."""
        self.mode[i] = IDLE
        self.v[i] = 0.0
        self.goal[i] = 0.0
        self.turn_left[i] = 0.0
        self.laser_stopped[i] = False

    def lift_shelf(self, i: int) -> ShelfState:
        cell = self.map.cell_at(float(self.x[i]), float(self.y[i]))
        s = int(self._shelf_grid[cell.y + _PAD, cell.x + _PAD])
        self._shelf_grid[cell.y + _PAD, cell.x + _PAD] = -1
        self.scarrier[s] = i
        self.carried[i] = s
        self.srel[s] = self.stheta[s] - self.theta[i]
        return self.shelf(self.shelf_ids[s])

    def lower_shelf(self, i: int) -> None:
        s = int(self.carried[i])
        cell = self.map.cell_at(float(self.x[i]), float(self.y[i]))
        self.carried[i] = -1
        self.scarrier[s] = -1
        self.sx[s], self.sy[s] = self.x[i], self.y[i]
        self._shelf_grid[cell.y + _PAD, cell.x + _PAD] = s

    # ------------------------------------------------------------------ timers and faults
    def after(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now() + delay, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    @staticmethod
    def cancel_timer(timer: Timer | None) -> None:
        if timer is not None:
            timer.cancelled = True

    def inject(self, fault: Fault, at: float | None = None) -> None:
        """Apply `fault` now, or at simulated time `at` (resolved to the physics step)."""
        check_fault(fault)
        self.robot(fault.robot_id)
        if at is None or at <= self.now():
            self._apply(fault)
        else:
            timer = Timer(at, next(self._seq), lambda: self._apply(fault))
            heapq.heappush(self._timers, timer)

    def inject_all(self, schedule: Iterable[tuple[float, Fault]]) -> None:
        for at, fault in schedule:
            self.inject(fault, at)

    def _apply(self, fault: Fault) -> None:
        unit = self.robot(fault.robot_id)
        i = unit.index
        if isinstance(fault, CommunicationLoss):
            self._go_offline(unit, "communication lost")
            self.after(fault.duration, lambda: self._come_online(unit, "communication lost"))
        elif isinstance(fault, Reboot):
            unit.reboot()
            self._go_offline(unit, "reboot")
            boot = unit.profile.boot_time if fault.boot_time is None else fault.boot_time
            self.after(boot, lambda: (unit.booted(), self._come_online(unit, "reboot")))
        elif isinstance(fault, MotorStall):
            unit.stall(self.now() + fault.duration)
        elif isinstance(fault, SlowDown):
            self.factor[i] = fault.factor
            token = self._tokens[("slow", i)] = next(self._seq)
            self.after(fault.duration, lambda: self._end_fault("slow", i, token))
        elif isinstance(fault, MissedCode):
            unit.miss_codes(fault.count)
        elif isinstance(fault, LostLocalisation):
            unit.lose_localisation()
        elif isinstance(fault, BatteryDrop):
            self.soc[i] = max(0.0, float(self.soc[i]) - fault.amount)
            self.pct[i] = int(math.floor(self.soc[i] * 100 + _EPS))
            unit.on_battery()
        elif isinstance(fault, LaserObstacle):
            c, s = math.cos(self.theta[i]), math.sin(self.theta[i])
            ahead = self._front(i) + fault.distance
            self.phantom_on[i] = True
            self.phantom_x[i], self.phantom_y[i] = self.x[i] + c * ahead, self.y[i] + s * ahead
            token = self._tokens[("phantom", i)] = next(self._seq)
            self.after(fault.duration, lambda: self._end_fault("phantom", i, token))

    def _end_fault(self, kind: str, i: int, token: int) -> None:
        """End a timed fault unless a later fault of the same kind replaced it."""
        if self._tokens.get((kind, i)) != token:
            return
        if kind == "slow":
            self.factor[i] = 1.0
        else:
            self.phantom_on[i] = False

    def _go_offline(self, unit: DriveUnit, reason: str) -> None:
        reasons = self._offline[unit.id]
        if not reasons:
            self._connection(unit, False, reason)
            unit.online = False
        reasons.add(reason)

    def _come_online(self, unit: DriveUnit, reason: str) -> None:
        reasons = self._offline[unit.id]
        reasons.discard(reason)
        if not reasons and not unit.online:
            unit.online = True
            self._connection(unit, True, "")
            unit.report_status()

    def _front(self, i: int) -> float:
        """How far the robot's footprint (with its shelf) reaches ahead of its centre."""
        s = int(self.carried[i])
        return max(float(self.half_len[i]), self.shelf_half if s >= 0 else 0.0)

    # ------------------------------------------------------------------ time
    def _scheduled_tick(self) -> None:
        self.step()
        self.clock.call_at(self._next_tick(), self._scheduled_tick)

    def _next_tick(self) -> float:
        # rounded so that step k falls exactly on k * dt: advancing the clock by 20 s runs 400 steps of 0.05 s
        return round(self._t0 + (self.ticks + 1) * self.dt, 9)

    def run_paced(self, until: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Step in real time on a wall clock (optionally sped up by the clock's `speed`)."""
        speed = float(getattr(self.clock, "speed", 1.0))
        while self._next_tick() <= until + _EPS:
            wait = (self._next_tick() - self.clock.now()) / speed
            if wait > 0:
                sleep(wait)
            self.step()

    def step(self) -> None:
        """Advance the world by one physics step, ending at the current tick time."""
        self.ticks += 1
        if self.n:
            # nothing moves, nothing new can touch: a world at rest costs next to nothing
            moving = self._moved or bool((self.mode[: self.n] != IDLE).any())
            pairs = self._near_pairs() if moving else None
            free = self._laser_free(pairs) if moving else np.full(self.n, np.inf)
            crossed, arrived, turned, overdue = self._move(free)
            battery = self._drain_batteries()
            if moving:
                self._follow_shelves()
                self._detect_collisions(pairs)
                self._moved = False
            self._callbacks(free, crossed, arrived, turned, overdue, battery)
        self._run_timers()

    def _near_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Robot pairs close enough, before this step's motion, to see each other with the
        laser or to touch after it (one broad phase serves both)."""
        n = self.n
        moving = 2 * float(self.vmax[:n].max()) * self.dt
        radius = float(self.laser_range[:n].max()) + 2 * self._max_reach + moving + 0.1
        return close_pairs(self.x[:n], self.y[:n], radius)

    def _move(self, free: np.ndarray) -> tuple[np.ndarray, ...]:
        n, dt, pitch = self.n, self.dt, self.map.pitch
        mode, hold = self.mode[:n], self.hold[:n]
        driving = np.flatnonzero(mode == DRIVING)
        crossed = arrived = overdue = np.zeros(0, dtype=np.int64)
        if len(driving):
            d = driving
            loaded = self.carried[d] >= 0
            cap = np.where(hold[d], 0.0, np.where(loaded, self.vmax_loaded[d], self.vmax[d]) * self.factor[d])
            stop = np.minimum(self.goal[d], free[d])
            ds, v = speed_step(self.v[d], stop, cap, self.accel[d], self.decel[d], self.emergency[d], dt)
            before = np.floor(self.run[d] / pitch + 1e-6)
            self.x[d] += self.ux[d] * ds
            self.y[d] += self.uy[d] * ds
            self.v[d] = v
            self.goal[d] -= ds
            self.run[d] += ds
            self.since_code[d] += ds
            crossed = d[np.floor(self.run[d] / pitch + 1e-6) > before]
            done = (self.goal[d] <= 1e-7) & (v == 0.0)
            arrived = d[done]
            self.goal[arrived] = 0.0
            self.mode[arrived] = IDLE
            overdue = d[self.since_code[d] > self.max_no_code[d]]
        turning = np.flatnonzero(mode == TURNING)
        turned = np.zeros(0, dtype=np.int64)
        if len(turning):
            t = turning
            rate = np.where(hold[t], 0.0, self.omega[t] * self.factor[t] * dt)
            left = self.turn_left[t]
            delta = np.sign(left) * np.minimum(np.abs(left), rate)
            self.theta[t] += delta
            self.turn_left[t] = left - delta
            done = np.abs(self.turn_left[t]) <= _EPS
            turned = t[done]
            quarter = math.pi / 2
            # snap to the exact grid heading, in (-pi, pi]
            quarters = np.mod(np.round(self.theta[turned] / quarter), 4)  # 0..3: east, north, west, south
            self.theta[turned] = np.where(quarters == 3, -quarter, quarters * quarter)
            self.turn_left[turned] = 0.0
            self.mode[turned] = IDLE
        return crossed, arrived, turned, overdue

    def _follow_shelves(self) -> None:
        carried = np.flatnonzero(self.scarrier >= 0)
        if len(carried):
            r = self.scarrier[carried]
            self.sx[carried] = self.x[r]
            self.sy[carried] = self.y[r]
            turns = ~self.counter_rot[r]
            self.stheta[carried] = np.where(turns, self.theta[r] + self.srel[carried], self.stheta[carried])

    def _drain_batteries(self) -> np.ndarray:
        n, dt = self.n, self.dt
        loaded = self.carried[:n] >= 0
        moving = (self.mode[:n] == DRIVING) & (self.v[:n] > 0)
        rotating = (self.mode[:n] == TURNING) & ~self.hold[:n]
        power = (self.idle_w[:n]
                 + np.where(moving, np.where(loaded, self.drive_loaded_w[:n], self.drive_w[:n]), 0.0)
                 + np.where(rotating, self.rotate_w[:n], 0.0)
                 + np.where(self.lifting[:n], self.lift_w[:n], 0.0)
                 - np.where(self.charging[:n], self.charge_w[:n], 0.0))
        self.soc[:n] = np.minimum(np.maximum(self.soc[:n] - power * dt / self.capacity_j[:n], 0.0), 1.0)
        pct = np.floor(self.soc[:n] * 100 + _EPS).astype(np.int64)
        changed = np.flatnonzero(pct != self.pct[:n])
        self.pct[changed] = pct[changed]
        return changed

    def _callbacks(self, free: np.ndarray, crossed: np.ndarray, arrived: np.ndarray, turned: np.ndarray,
                   overdue: np.ndarray, battery: np.ndarray) -> None:
        n = self.n
        units = self.units
        for i in crossed:
            units[i].on_centre()
        for i in overdue:
            if units[i].localised and self.mode[i] == DRIVING and self.since_code[i] > self.max_no_code[i]:
                units[i].on_code_overdue()
        for i in arrived:
            units[i].on_arrived()
        for i in turned:
            units[i].on_turned()
        # the laser: stopped short of the goal by an obstacle, not by a hold
        blocked = (self.mode[:n] == DRIVING) & (self.v[:n] == 0.0) & ~self.hold[:n] & (free < self.goal[:n] - 1e-6)
        started = np.flatnonzero(blocked & ~self.laser_stopped[:n])
        ended = np.flatnonzero(~blocked & self.laser_stopped[:n])
        self.laser_stopped[:n] = blocked
        self.laser_stops += len(started)
        for i in started:
            units[i].on_laser(True)
        for i in ended:
            units[i].on_laser(False)
        for i in battery:
            units[i].on_battery()
        now = self.now()
        due = np.flatnonzero(self.next_status[:n] <= now + _EPS)
        self.next_status[due] += self.status_interval[due]
        for i in due:
            units[i].report_status()

    def _run_timers(self) -> None:
        now = self.now()
        while self._timers and self._timers[0].due <= now + _EPS:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

    # ------------------------------------------------------------------ the laser
    def _footprint_extents(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned half sizes of each robot with the shelf it carries."""
        n = self.n
        ex, ey = extents(self.half_len[:n], self.half_wid[:n], self.theta[:n])
        s = self.carried[:n]
        loaded = np.flatnonzero(s >= 0)
        if len(loaded):
            sh = np.full(len(loaded), self.shelf_half)
            sex, sey = extents(sh, sh, self.stheta[s[loaded]])
            ex[loaded] = np.maximum(ex[loaded], sex)
            ey[loaded] = np.maximum(ey[loaded], sey)
        return ex, ey

    def _laser_free(self, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """For each driving robot, how far it may still drive before its laser makes it
        stand off an obstacle that lies on its way to its goal (inf: nothing in the way)."""
        n, pitch = self.n, self.map.pitch
        free = np.full(n, np.inf)
        watch = np.flatnonzero((self.mode[:n] == DRIVING) & (self.laser_range[:n] > 0))
        if not len(watch):
            return free
        ex, ey = self._footprint_extents()
        gap = np.full(n, np.inf)
        ux, uy = self.ux[watch], self.uy[watch]
        px, py = self.x[watch], self.y[watch]
        front = np.abs(ux) * ex[watch] + np.abs(uy) * ey[watch]

        # walls and (for a loaded robot) stored shelves: the cells ahead on its line
        reach = int(math.ceil((float(self.laser_range[watch].max()) + self._max_reach + pitch) / pitch)) + 1
        k = np.arange(reach + 1)
        col = np.rint(px / pitch).astype(np.int64)[:, None] + k * np.rint(ux).astype(np.int64)[:, None]
        row = (self.map.height - 1 - np.rint(py / pitch)).astype(np.int64)[:, None] - k * np.rint(uy).astype(np.int64)[:, None]
        gx, gy = self._grid_index(col, row)
        along = (col * pitch - px[:, None]) * ux[:, None] + ((self.map.height - 1 - row) * pitch - py[:, None]) * uy[:, None]
        ahead = along > 1e-6
        g = np.where(self._blocked[gy, gx] & ahead, along - pitch / 2 - front[:, None], np.inf)
        loaded = (self.carried[watch] >= 0)[:, None]
        stored = loaded & (self._shelf_grid[gy, gx] >= 0) & ahead
        g = np.minimum(g, np.where(stored, along - self.shelf_half - front[:, None], np.inf))
        gap[watch] = g.min(axis=1)

        # other robots (and what they carry)
        a, b = pairs
        obs = np.concatenate([a, b])
        tgt = np.concatenate([b, a])
        observing = np.zeros(n, dtype=bool)
        observing[watch] = True
        keep = observing[obs]
        obs, tgt = obs[keep], tgt[keep]
        if len(obs):
            oux, ouy = self.ux[obs], self.uy[obs]
            dx, dy = self.x[tgt] - self.x[obs], self.y[tgt] - self.y[obs]
            along = dx * oux + dy * ouy
            lateral = np.abs(-dx * ouy + dy * oux)
            o_front = np.abs(oux) * ex[obs] + np.abs(ouy) * ey[obs]
            o_side = np.abs(ouy) * ex[obs] + np.abs(oux) * ey[obs]
            t_along = np.abs(oux) * ex[tgt] + np.abs(ouy) * ey[tgt]
            t_side = np.abs(ouy) * ex[tgt] + np.abs(oux) * ey[tgt]
            seen = (along > 0) & (lateral < o_side + t_side + self.side_margin[obs])
            np.minimum.at(gap, obs[seen], (along - t_along - o_front)[seen])

        # phantom obstacles (injected faults)
        ph = watch[self.phantom_on[watch]]
        if len(ph):
            dx, dy = self.phantom_x[ph] - self.x[ph], self.phantom_y[ph] - self.y[ph]
            along = dx * self.ux[ph] + dy * self.uy[ph]
            lateral = np.abs(-dx * self.uy[ph] + dy * self.ux[ph])
            f = np.abs(self.ux[ph]) * ex[ph] + np.abs(self.uy[ph]) * ey[ph]
            side = np.abs(self.uy[ph]) * ex[ph] + np.abs(self.ux[ph]) * ey[ph]
            g = np.where((along > 0) & (lateral < side + self.side_margin[ph]), along - f, np.inf)
            gap[ph] = np.minimum(gap[ph], g)

        in_way = (gap[watch] < self.laser_range[watch]) & (gap[watch] < self.goal[watch] - 1e-6)
        free[watch] = np.where(in_way, gap[watch] - self.standoff[watch], np.inf)
        return free

    # ------------------------------------------------------------------ the witness
    def _wall_nearby(self, reach: int) -> np.ndarray:
        """Padded grid: whether a wall lies within `reach` cells (the walls never move)."""
        cached = self._wall_cache.get(reach)
        if cached is None:
            b = self._blocked
            cached = b.copy()
            for dy in range(-reach, reach + 1):
                for dx in range(-reach, reach + 1):
                    shifted = np.zeros_like(b)
                    ys = slice(max(dy, 0), b.shape[0] + min(dy, 0))
                    xs = slice(max(dx, 0), b.shape[1] + min(dx, 0))
                    shifted[ys, xs] = b[max(-dy, 0):b.shape[0] - max(dy, 0), max(-dx, 0):b.shape[1] - max(dx, 0)]
                    cached |= shifted
            self._wall_cache[reach] = cached
        return cached

    def _grid_index(self, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indexes into the padded grids; anything beyond the padding reads as its edge (a wall)."""
        h, w = self._blocked.shape
        return np.minimum(np.maximum(col + _PAD, 0), w - 1), np.minimum(np.maximum(row + _PAD, 0), h - 1)

    def _detect_collisions(self, pairs: tuple[np.ndarray, np.ndarray]) -> None:
        n, pitch = self.n, self.map.pitch
        now = self.now()
        contacts: set[tuple] = set()
        new: list[Collision] = []
        x, y, th = self.x[:n], self.y[:n], self.theta[:n]
        hl, hw = self.half_len[:n], self.half_wid[:n]
        sh = self.shelf_half
        carried = self.carried[:n]

        # robot against robot (bodies and carried shelves)
        a, b = pairs
        close = np.hypot(x[a] - x[b], y[a] - y[b]) < 2 * self._max_reach + 0.01
        a, b = a[close], b[close]
        if len(a):
            hit = rectangles_overlap(x[a], y[a], hl[a], hw[a], th[a], x[b], y[b], hl[b], hw[b], th[b])
            shelf_hit = np.zeros(len(a), dtype=bool)
            la, lb = carried[a] >= 0, carried[b] >= 0
            for sel, shelf_of, other in ((la, a, b), (lb, b, a)):
                k = np.flatnonzero(sel)
                if len(k):
                    s = carried[shelf_of[k]]
                    o = other[k]
                    hit[k] |= rectangles_overlap(self.sx[s], self.sy[s], sh, sh, self.stheta[s],
                                                 x[o], y[o], hl[o], hw[o], th[o])
            k = np.flatnonzero(la & lb)
            if len(k):
                s1, s2 = carried[a[k]], carried[b[k]]
                shelf_hit[k] = rectangles_overlap(self.sx[s1], self.sy[s1], sh, sh, self.stheta[s1],
                                                  self.sx[s2], self.sy[s2], sh, sh, self.stheta[s2])
            for k in np.flatnonzero(hit | shelf_hit):
                i, j = int(a[k]), int(b[k])
                key = ("robot", i, j)
                contacts.add(key)
                if key not in self._contacts:
                    shelves = tuple(self.shelf_ids[s] for s in (carried[i], carried[j]) if s >= 0) if shelf_hit[k] else ()
                    new.append(self._collision(now, "shelf" if shelf_hit[k] else "robot", (i, j), shelves,
                                               (x[i] + x[j]) / 2, (y[i] + y[j]) / 2))

        # the cells around each robot: walls for everyone, stored shelves for loaded robots
        reach = max(1, int(math.ceil((pitch / 2 + self._max_reach + pitch / 2) / pitch)) - 1)
        offsets = np.arange(-reach, reach + 1)
        ox, oy = np.repeat(offsets, len(offsets)), np.tile(offsets, len(offsets))
        col = np.rint(x / pitch).astype(np.int64)
        row = (self.map.height - 1 - np.rint(y / pitch)).astype(np.int64)
        # only robots with a wall in reach, or a shelf on board, need their neighbourhood
        near = self._wall_nearby(reach)[self._grid_index(col, row)[::-1]]
        look = np.flatnonzero(near | (carried >= 0))
        gx, gy = self._grid_index(col[look, None] + ox, row[look, None] + oy)
        r, o = np.nonzero(self._blocked[gy, gx])
        r_look = r
        r = look[r]
        if len(r):
            cgx, cgy = gx[r_look, o], gy[r_look, o]
            wx, wy = (cgx - _PAD) * pitch, (self.map.height - 1 - (cgy - _PAD)) * pitch
            half = np.full(len(r), pitch / 2)
            hit = rectangles_overlap(x[r], y[r], hl[r], hw[r], th[r], wx, wy, half, half, 0.0)
            lw = np.flatnonzero(carried[r] >= 0)
            if len(lw):
                s = carried[r[lw]]
                hit[lw] |= rectangles_overlap(self.sx[s], self.sy[s], sh, sh, self.stheta[s],
                                              wx[lw], wy[lw], half[lw], half[lw], 0.0)
            for k in np.flatnonzero(hit):
                i = int(r[k])
                cell = Cell(int(cgx[k] - _PAD), int(cgy[k] - _PAD))
                key = ("blocked", i, cell)
                contacts.add(key)
                if key not in self._contacts:
                    new.append(self._collision(now, "blocked", (i,), (), x[i], y[i], cell))
        loaded = np.flatnonzero(carried[look] >= 0)  # rows of gx/gy
        if len(loaded):
            other = self._shelf_grid[gy[loaded], gx[loaded]]
            r, o = np.nonzero(other >= 0)
            if len(r):
                robots, stored = look[loaded[r]], other[r, o]
                s = carried[robots]
                hit = rectangles_overlap(self.sx[s], self.sy[s], sh, sh, self.stheta[s],
                                         self.sx[stored], self.sy[stored], sh, sh, self.stheta[stored])
                for r_i, s_i, o_i in zip(robots[hit], s[hit], stored[hit]):
                    key = ("stored", int(r_i), int(o_i))
                    contacts.add(key)
                    if key not in self._contacts:
                        new.append(self._collision(
                            now, "shelf", (int(r_i),), (self.shelf_ids[s_i], self.shelf_ids[o_i]),
                            (self.sx[s_i] + self.sx[o_i]) / 2, (self.sy[s_i] + self.sy[o_i]) / 2))
        self._contacts = contacts
        for collision in new:
            self.collisions.append(collision)
            others = ", ".join([*collision.robots, *collision.shelves]) or collision.kind
            for robot_id in collision.robots:
                self.robots[robot_id].on_collision(f"{collision.kind} ({others}) at {collision.cell}")

    def _collision(self, now: float, kind: str, robots: tuple[int, ...], shelves: tuple[str, ...],
                   x: float, y: float, cell: Cell | None = None) -> Collision:
        return Collision(now, kind, tuple(self.units[i].id for i in robots), shelves,
                         cell or self.map.cell_at(float(x), float(y)), float(x), float(y))
