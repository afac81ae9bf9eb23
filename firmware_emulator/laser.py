"""The laser scanners of every driving robot, compiled: how far each may still drive.

For each driving robot with a working scanner, the world looks ahead on its line for
walls (blocked cells and the map edge), other robots and what they carry, stored shelves
(only when loaded: an unloaded robot drives under them) and injected phantom obstacles.
An obstacle between the robot and its goal, within the scanner's range, becomes a stop
point the stand-off before it; obstacles beyond the goal do not stop it short.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from firmware_emulator.state import DRIVING, PAD


@numba.njit(cache=True)
def _watching(robot) -> bool:  # type: ignore[no-untyped-def]
    return robot.mode == DRIVING and robot.laser_range > 0


@numba.njit(cache=True)
def _sight(robots, ex: np.ndarray, ey: np.ndarray, gap: np.ndarray, o: int, t: int) -> None:
    """Robot `o`'s scanner against robot `t` (and the shelf it carries)."""
    me, other = robots[o], robots[t]
    oux, ouy = me.ux, me.uy
    dx, dy = other.x - me.x, other.y - me.y
    along = dx * oux + dy * ouy
    lateral = abs(-dx * ouy + dy * oux)
    o_front = abs(oux) * ex[o] + abs(ouy) * ey[o]
    o_side = abs(ouy) * ex[o] + abs(oux) * ey[o]
    t_along = abs(oux) * ex[t] + abs(ouy) * ey[t]
    t_side = abs(ouy) * ex[t] + abs(oux) * ey[t]
    if along > 0 and lateral < o_side + t_side + me.side_margin:
        gap[o] = min(gap[o], along - t_along - o_front)


@numba.njit(cache=True)
def laser_free(robots, ex: np.ndarray, ey: np.ndarray, pairs_a: np.ndarray, pairs_b: np.ndarray,
               blocked: np.ndarray, shelf_grid: np.ndarray, pitch: float, height: int, shelf_half: float,
               max_reach: float) -> np.ndarray:
    """For each robot, how far it may still drive before its laser makes it stand off an
    obstacle on its way to its goal (inf: nothing in the way, or not driving).

    `ex`, `ey` are the axis-aligned half sizes of each footprint with its shelf; the pairs
    are every two robots close enough to see each other.
    """
    n = len(robots)
    free = np.full(n, np.inf)
    gap = np.full(n, np.inf)
    longest = -1.0
    for i in range(n):
        if _watching(robots[i]):
            longest = max(longest, robots[i].laser_range)
    if longest < 0:
        return free
    rows, cols = blocked.shape

    # walls and (for a loaded robot) stored shelves: the cells ahead on its line
    reach = int(math.ceil((longest + max_reach + pitch) / pitch)) + 1
    for i in range(n):
        me = robots[i]
        if not _watching(me):
            continue
        ux, uy, px, py = me.ux, me.uy, me.x, me.y
        front = abs(ux) * ex[i] + abs(uy) * ey[i]
        col0 = int(np.rint(px / pitch))
        row0 = int(height - 1 - np.rint(py / pitch))
        dcol, drow = int(np.rint(ux)), int(np.rint(uy))
        loaded = me.carried >= 0
        for k in range(reach + 1):
            col, row = col0 + k * dcol, row0 - k * drow
            along = (col * pitch - px) * ux + ((height - 1 - row) * pitch - py) * uy
            if not along > 1e-6:
                continue
            gx, gy = min(max(col + PAD, 0), cols - 1), min(max(row + PAD, 0), rows - 1)
            if blocked[gy, gx]:
                gap[i] = min(gap[i], along - pitch / 2 - front)
            if loaded and shelf_grid[gy, gx] >= 0:
                gap[i] = min(gap[i], along - shelf_half - front)

    # other robots (and what they carry)
    for p in range(len(pairs_a)):
        a, b = pairs_a[p], pairs_b[p]
        if _watching(robots[a]):
            _sight(robots, ex, ey, gap, a, b)
        if _watching(robots[b]):
            _sight(robots, ex, ey, gap, b, a)

    for i in range(n):
        me = robots[i]
        if not _watching(me):
            continue
        if me.phantom_on:  # an injected fault
            dx, dy = me.phantom_x - me.x, me.phantom_y - me.y
            along = dx * me.ux + dy * me.uy
            lateral = abs(-dx * me.uy + dy * me.ux)
            f = abs(me.ux) * ex[i] + abs(me.uy) * ey[i]
            side = abs(me.uy) * ex[i] + abs(me.ux) * ey[i]
            if along > 0 and lateral < side + me.side_margin:
                gap[i] = min(gap[i], along - f)
        if gap[i] < me.laser_range and gap[i] < me.goal - 1e-6:
            free[i] = gap[i] - me.standoff
    return free
