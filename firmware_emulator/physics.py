"""One physics step of the whole world, compiled: the laser, motion, batteries, the witness.

A step used to be a few hundred numpy calls over all robots, about 2 ms whatever the
number of robots, and a whole-warehouse simulation takes 72,000 steps per simulated hour.
Compiled with numba, the same arithmetic is a few loops over the robot table: robots at
rest cost a comparison each, and a step of 60 robots costs tens of microseconds. The
World keeps the Python side (the firmware callbacks, timers, Collision records). What
happens here is the arithmetic numpy did before, robot by robot and in the same order,
so the motion, the laser and the witness judge as they did, to the last bit, except that
a robot's step no longer depends on the other robots stepped with it (the vectorised
phases ran until the slowest robot was done, adding a phase of ~1e-17 s to the others).

`advance` returns what the firmware must hear about as rows (event, robot), in the order
the World calls back: codes crossed, codes overdue, runs ended, turns ended. `settle`
runs after those callbacks (they start new runs and turns) and reports laser stops and
their end, battery percents crossed, and status reports due.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from firmware_emulator.geometry import close_pairs, footprint
from firmware_emulator.kinematics import run_step
from firmware_emulator.laser import laser_free
from firmware_emulator.state import DRIVING, IDLE, TURNING
from firmware_emulator.witness import contacts

#: Events (the first column of the rows advance and settle return).
CROSSED, OVERDUE, ARRIVED, TURNED, LASER_ON, LASER_OFF, BATTERY, STATUS = range(8)

_EPS = 1e-9
_QUARTER = math.pi / 2


@numba.njit(cache=True)
def _extents(robots, stheta: np.ndarray, shelf_half: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned half sizes of each robot with the shelf it carries."""
    n = len(robots)
    ex, ey = np.empty(n), np.empty(n)
    for i in range(n):
        r = robots[i]
        ex[i], ey[i] = footprint(r.half_len, r.half_wid, r.theta)
        if r.carried >= 0:
            sex, sey = footprint(shelf_half, shelf_half, stheta[r.carried])
            ex[i], ey[i] = max(ex[i], sex), max(ey[i], sey)
    return ex, ey


@numba.njit(cache=True)
def _near_pairs(robots, max_reach: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Robot pairs close enough, before this step's motion, to see each other with the
    laser or to touch after it (one broad phase serves both)."""
    n = len(robots)
    fastest, longest = 0.0, 0.0
    x, y = np.empty(n), np.empty(n)
    for i in range(n):
        fastest = max(fastest, robots[i].vmax)
        longest = max(longest, robots[i].laser_range)
        x[i], y[i] = robots[i].x, robots[i].y
    return close_pairs(x, y, longest + 2 * max_reach + 2 * fastest * dt + 0.1)


@numba.njit(cache=True)
def _move(robots, free: np.ndarray, pitch: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Drive and turn every robot in motion by one step. Returns the robots that crossed
    a code, went too far without one, ended their run, ended their turn (as _rows groups)."""
    marks, counts = np.empty((4, len(robots)), dtype=np.int64), np.zeros(4, dtype=np.int64)
    for i in range(len(robots)):
        r = robots[i]
        if r.mode == DRIVING:
            cap = 0.0 if r.hold else (r.vmax_loaded if r.carried >= 0 else r.vmax) * r.factor
            ds, v = run_step(r.v, min(r.goal, free[i]), cap, r.accel, r.decel, r.emergency, dt)
            before = math.floor(r.run / pitch + 1e-6)
            r.x += r.ux * ds
            r.y += r.uy * ds
            r.v = v
            r.goal -= ds
            r.run += ds
            r.since_code += ds
            if math.floor(r.run / pitch + 1e-6) > before:
                _mark(marks, counts, CROSSED, i)
            if r.goal <= 1e-7 and v == 0.0:
                r.goal = 0.0
                r.mode = IDLE
                _mark(marks, counts, ARRIVED, i)
            if r.since_code > r.max_no_code:
                _mark(marks, counts, OVERDUE, i)
        elif r.mode == TURNING:
            rate = 0.0 if r.hold else r.omega * r.factor * dt
            left = r.turn_left
            delta = np.sign(left) * min(abs(left), rate)
            r.theta += delta
            r.turn_left = left - delta
            if abs(r.turn_left) <= _EPS:
                # snap to the exact grid heading, in (-pi, pi]
                quarters = np.round(r.theta / _QUARTER) % 4  # 0..3: east, north, west, south
                r.theta = -_QUARTER if quarters == 3 else quarters * _QUARTER
                r.turn_left = 0.0
                r.mode = IDLE
                _mark(marks, counts, TURNED, i)
    return marks, counts


@numba.njit(cache=True)
def _mark(marks: np.ndarray, counts: np.ndarray, group: int, i: int) -> None:
    """Note robot `i` in `group` (marks[group, :counts[group]] are its robots, in order)."""
    marks[group, counts[group]] = i
    counts[group] += 1


@numba.njit(cache=True)
def _rows(first_event: int, marks: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows (event, robot): the robots of each group with event first_event + group, in order."""
    rows = np.empty((counts.sum(), 2), dtype=np.int64)
    row = 0
    for group in range(len(counts)):
        for k in range(counts[group]):
            rows[row, 0], rows[row, 1] = first_event + group, marks[group, k]
            row += 1
    return rows


@numba.njit(cache=True)
def _drain_batteries(robots, dt: float) -> np.ndarray:
    """Battery use of the step by activity; the robots whose percent changed."""
    changed = np.empty(len(robots), dtype=np.int64)
    count = 0
    for i in range(len(robots)):
        r = robots[i]
        moving = r.mode == DRIVING and r.v > 0
        rotating = r.mode == TURNING and not r.hold
        power = (r.idle_w
                 + ((r.drive_loaded_w if r.carried >= 0 else r.drive_w) if moving else 0.0)
                 + (r.rotate_w if rotating else 0.0)
                 + (r.lift_w if r.lifting else 0.0)
                 - (r.charge_w if r.charging else 0.0))
        r.soc = min(max(r.soc - power * dt / r.capacity_j, 0.0), 1.0)
        pct = int(math.floor(r.soc * 100 + _EPS))
        if pct != r.pct:
            r.pct = pct
            changed[count] = i
            count += 1
    return changed[:count]


@numba.njit(cache=True)
def follow_shelves(robots, sx: np.ndarray, sy: np.ndarray, stheta: np.ndarray, srel: np.ndarray) -> None:
    """Carried shelves go where their robot goes (turning with it unless it counter-rotates)."""
    for i in range(len(robots)):
        r = robots[i]
        s = r.carried
        if s >= 0:
            sx[s], sy[s] = r.x, r.y
            if not r.counter_rot:
                stheta[s] = r.theta + srel[s]


@numba.njit(cache=True)
def advance(robots, moved: bool, sx: np.ndarray, sy: np.ndarray, stheta: np.ndarray, srel: np.ndarray,
            blocked: np.ndarray, shelf_grid: np.ndarray, wall_near: np.ndarray, reach: int, pitch: float,
            height: int, shelf_half: float, max_reach: float, dt: float):  # type: ignore[no-untyped-def]
    """Advance every robot by `dt`. Returns (moving, free, events, battery, touching):
    whether anything moved (else the laser and the witness were skipped: nothing new can
    touch), each robot's laser distance, the rows (event, robot) of the motion, the robots
    whose battery percent changed, and the witness's contacts (when moving)."""
    n = len(robots)
    moving = moved
    for i in range(n):
        moving = moving or robots[i].mode != IDLE
    free = np.full(n, np.inf)
    touching = np.zeros((0, 4), dtype=np.int64)
    pairs_a = pairs_b = np.zeros(0, dtype=np.int64)
    if moving:
        pairs_a, pairs_b = _near_pairs(robots, max_reach, dt)
        ex, ey = _extents(robots, stheta, shelf_half)
        free = laser_free(robots, ex, ey, pairs_a, pairs_b, blocked, shelf_grid, pitch, height, shelf_half, max_reach)
    marks, counts = _move(robots, free, pitch, dt)
    events = _rows(CROSSED, marks, counts)
    battery = _drain_batteries(robots, dt)
    if moving:
        follow_shelves(robots, sx, sy, stheta, srel)
        touching = contacts(robots, pairs_a, pairs_b, sx, sy, stheta, blocked, shelf_grid, wall_near, reach, pitch,
                            height, shelf_half, max_reach)
    return moving, free, events, battery, touching


@numba.njit(cache=True)
def settle(robots, free: np.ndarray, battery: np.ndarray, now: float) -> np.ndarray:
    """After the motion callbacks: rows (event, robot) for laser stops starting and ending
    (a robot stopped short of its goal by an obstacle, not by a hold), battery percents
    crossed and status reports due, in that order."""
    marks, counts = np.empty((4, len(robots)), dtype=np.int64), np.zeros(4, dtype=np.int64)
    for i in battery:
        _mark(marks, counts, BATTERY - LASER_ON, i)
    for i in range(len(robots)):
        r = robots[i]
        stopped = r.mode == DRIVING and r.v == 0.0 and not r.hold and free[i] < r.goal - 1e-6
        if stopped and not r.laser_stopped:
            _mark(marks, counts, LASER_ON - LASER_ON, i)
        elif r.laser_stopped and not stopped:
            _mark(marks, counts, LASER_OFF - LASER_ON, i)
        r.laser_stopped = stopped
        if r.next_status <= now + _EPS:
            r.next_status += r.status_interval
            _mark(marks, counts, STATUS - LASER_ON, i)
    return _rows(LASER_ON, marks, counts)
