"""The physical world the emulated robots live in, and its independent collision witness.

The World holds the truth: every robot's and every shelf's continuous pose, speed and
battery, kept in a numpy record table (one record per robot, firmware_emulator/state.py)
that the compiled physics step (firmware_emulator/physics.py) works through in one call.
The firmware (DriveUnit) decides; the World moves, senses (laser, codes passing under the
camera) and judges: it detects collisions on true geometry by itself and never asks the
controller what it intended.

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
from firmware_emulator import physics, witness
from firmware_emulator.profile import DEFAULT_PROFILE, RobotProfile
from firmware_emulator.state import DRIVING, IDLE, PAD, ROBOT_FIELDS, TURNING, robot_table
from maps.model import KIND_CODES, Cell, CellKind, Heading, WarehouseMap

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
        self._robots = robot_table(0)
        self._grow(0)
        self._max_reach = 0.0
        self._reach = 1  # cells around a robot the witness looks at

        h, w = wmap.height, wmap.width
        blocked = np.ones((h + 2 * PAD, w + 2 * PAD), dtype=bool)
        blocked[PAD:PAD + h, PAD:PAD + w] = wmap.kinds == KIND_CODES[CellKind.BLOCKED]
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

        self._compile_physics()
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
        pitch = self.map.pitch
        self._reach = max(1, int(math.ceil((pitch / 2 + self._max_reach + pitch / 2) / pitch)) - 1)
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
            self._shelf_grid[cell.y + PAD, cell.x + PAD] = first + k
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
        physics.follow_shelves(self._robots[: self.n], self.sx, self.sy, self.stheta, self.srel)
        self._moved = True

    def _grow(self, capacity: int) -> None:
        """A bigger robot table; every field (`self.x`, `self.v`, ...) is a view of it."""
        self._robots = robot_table(capacity, self._robots)
        for name in ROBOT_FIELDS:
            setattr(self, name, self._robots[name])
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
        s = int(self._shelf_grid[cell.y + PAD, cell.x + PAD])
        if s < 0 or math.hypot(self.sx[s] - self.x[i], self.sy[s] - self.y[i]) > self.units[i].profile.qr_window_m:
            return None
        return self.shelf(self.shelf_ids[s])

    def stored_shelf_at(self, cell: Cell) -> str | None:
        s = int(self._shelf_grid[cell.y + PAD, cell.x + PAD])
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
        s = int(self._shelf_grid[cell.y + PAD, cell.x + PAD])
        self._shelf_grid[cell.y + PAD, cell.x + PAD] = -1
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
        self._shelf_grid[cell.y + PAD, cell.x + PAD] = s

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
        """Step in real time on a wall clock (optionally sped up by the clock's `speed`)
        until it reads `until`: a step never runs ahead of the clock it ends at."""
        speed = float(getattr(self.clock, "speed", 1.0))
        while self._next_tick() <= until + _EPS:
            self._sleep_until(self._next_tick(), speed, sleep)
            self.step()
        self._sleep_until(until, speed, sleep)

    def _sleep_until(self, when: float, speed: float, sleep: Callable[[float], None]) -> None:
        wait = (when - self.clock.now()) / speed
        if wait > 0:
            sleep(wait)

    def step(self) -> None:
        """Advance the world by one physics step, ending at the current tick time."""
        self.ticks += 1
        if self.n:
            robots = self._robots[: self.n]
            moving, free, events, battery, touching = self._advance(robots)
            if moving:  # at rest nothing new can touch, and old contacts stand
                self._moved = False
                self._record_contacts(touching)
            self._callbacks(robots, free, events, battery)
        self._run_timers()

    def _advance(self, robots: np.ndarray) -> tuple:
        """physics.advance with this world's grids and numbers, typed alike on every call
        (one compiled version serves them all)."""
        return physics.advance(robots, bool(self._moved), self.sx, self.sy, self.stheta, self.srel, self._blocked,
                               self._shelf_grid, self._wall_nearby(self._reach), int(self._reach),
                               float(self.map.pitch), int(self.map.height), float(self.shelf_half),
                               float(self._max_reach), float(self.dt))

    def _compile_physics(self) -> None:
        """Compile the physics now (or load it from numba's cache), on an empty robot table:
        the first step of a world paced by a wall clock must not stall for the compiler
        while robots on serial lines or MQTT wait for it."""
        robots = self._robots[:0]
        self._advance(robots)
        physics.settle(robots, np.zeros(0), np.zeros(0, dtype=np.int64), 0.0)
        physics.follow_shelves(robots, self.sx, self.sy, self.stheta, self.srel)

    def _callbacks(self, robots: np.ndarray, free: np.ndarray, events: np.ndarray, battery: np.ndarray) -> None:
        """Tell the firmware what happened to it, in physics.advance's and settle's order."""
        units = self.units
        for event, i in events.tolist():
            unit = units[i]
            if event == physics.CROSSED:
                unit.on_centre()
            elif event == physics.OVERDUE:
                # a code read by an earlier callback of this step resets the distance
                if unit.localised and self.mode[i] == DRIVING and self.since_code[i] > self.max_no_code[i]:
                    unit.on_code_overdue()
            elif event == physics.ARRIVED:
                unit.on_arrived()
            else:
                unit.on_turned()
        for event, i in physics.settle(robots, free, battery, self.now()).tolist():
            unit = units[i]
            if event == physics.LASER_ON:
                self.laser_stops += 1
                unit.on_laser(True)
            elif event == physics.LASER_OFF:
                unit.on_laser(False)
            elif event == physics.BATTERY:
                unit.on_battery()
            else:
                unit.report_status()

    def _run_timers(self) -> None:
        now = self.now()
        while self._timers and self._timers[0].due <= now + _EPS:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

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

    def _record_contacts(self, touching: np.ndarray) -> None:
        """Record the contacts that started this step (a contact is one collision however
        long it lasts) and stop every robot involved."""
        now = self.now()
        contacts: set[tuple] = set()
        new: list[Collision] = []
        x, y, carried = self.x, self.y, self.carried
        for kind, i, j, k in touching.tolist():
            if kind in (witness.ROBOTS, witness.SHELVES):
                key: tuple = ("robot", i, j)
                if key not in self._contacts and key not in contacts:
                    shelf_hit = kind == witness.SHELVES
                    shelves = tuple(self.shelf_ids[s] for s in (carried[i], carried[j]) if s >= 0) if shelf_hit else ()
                    new.append(self._collision(now, "shelf" if shelf_hit else "robot", (i, j), shelves,
                                               (x[i] + x[j]) / 2, (y[i] + y[j]) / 2))
            elif kind == witness.BLOCKED:
                cell = Cell(j, k)
                key = ("blocked", i, cell)
                if key not in self._contacts and key not in contacts:
                    new.append(self._collision(now, "blocked", (i,), (), x[i], y[i], cell))
            else:
                s, o = int(carried[i]), j
                key = ("stored", i, o)
                if key not in self._contacts and key not in contacts:
                    new.append(self._collision(now, "shelf", (i,), (self.shelf_ids[s], self.shelf_ids[o]),
                                               (self.sx[s] + self.sx[o]) / 2, (self.sy[s] + self.sy[o]) / 2))
            contacts.add(key)
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
