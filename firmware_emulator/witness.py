"""The independent collision witness, compiled: which footprints touch after a step.

It judges true geometry only (oriented rectangles: robot bodies, carried shelves at their
true heading, stored shelves, blocked cells and everything off the map) and never asks a
controller what it meant to do. The World turns the contacts into Collision records.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from firmware_emulator.geometry import overlap
from firmware_emulator.state import PAD

#: Contact kinds (the first column of `contacts`).
ROBOTS, SHELVES, BLOCKED, STORED = 0, 1, 2, 3


@numba.njit(cache=True)
def contacts(robots, pairs_a: np.ndarray, pairs_b: np.ndarray, sx: np.ndarray, sy: np.ndarray,
             stheta: np.ndarray, blocked: np.ndarray, shelf_grid: np.ndarray, wall_near: np.ndarray, reach: int,
             pitch: float, height: int, shelf_half: float, max_reach: float) -> np.ndarray:
    """Every contact now, one row each: (kind, robot, other, extra).

    ROBOTS (robot, robot, 0): bodies, or a carried shelf against a robot; SHELVES (robot,
    robot, 0): their carried shelves touch; BLOCKED (robot, cell x, cell y): the robot or
    its shelf in a blocked cell or off the map; STORED (robot, stored shelf, 0): its
    shelf against a stored one. `pairs` are the robots close enough to touch;
    `wall_near` marks the padded cells with a wall within `reach` cells.
    """
    sh = shelf_half
    kinds = []
    first = []
    second = []
    third = []

    # robot against robot (bodies and carried shelves)
    close = 2 * max_reach + 0.01
    for p in range(len(pairs_a)):
        i, j = pairs_a[p], pairs_b[p]
        a, b = robots[i], robots[j]
        if not math.hypot(a.x - b.x, a.y - b.y) < close:
            continue
        hit = overlap(a.x, a.y, a.half_len, a.half_wid, a.theta, b.x, b.y, b.half_len, b.half_wid, b.theta)
        si, sj = a.carried, b.carried
        if si >= 0:
            hit |= overlap(sx[si], sy[si], sh, sh, stheta[si], b.x, b.y, b.half_len, b.half_wid, b.theta)
        if sj >= 0:
            hit |= overlap(sx[sj], sy[sj], sh, sh, stheta[sj], a.x, a.y, a.half_len, a.half_wid, a.theta)
        shelf_hit = si >= 0 and sj >= 0 and overlap(sx[si], sy[si], sh, sh, stheta[si],
                                                     sx[sj], sy[sj], sh, sh, stheta[sj])
        if hit or shelf_hit:
            kinds.append(SHELVES if shelf_hit else ROBOTS)
            first.append(i)
            second.append(j)
            third.append(0)

    # the cells around each robot: walls for everyone, stored shelves for loaded robots
    rows, cols = blocked.shape
    half = pitch / 2
    for kind in (BLOCKED, STORED):
        for i in range(len(robots)):
            r = robots[i]
            s = r.carried
            col = int(np.rint(r.x / pitch))
            row = int(height - 1 - np.rint(r.y / pitch))
            if kind == STORED and s < 0:
                continue
            # only robots with a wall in reach, or a shelf on board, need their neighbourhood
            if s < 0 and not wall_near[min(max(row + PAD, 0), rows - 1), min(max(col + PAD, 0), cols - 1)]:
                continue
            for ox in range(-reach, reach + 1):
                for oy in range(-reach, reach + 1):
                    gx, gy = min(max(col + ox + PAD, 0), cols - 1), min(max(row + oy + PAD, 0), rows - 1)
                    if kind == BLOCKED and blocked[gy, gx]:
                        wx, wy = (gx - PAD) * pitch, (height - 1 - (gy - PAD)) * pitch
                        hit = overlap(r.x, r.y, r.half_len, r.half_wid, r.theta, wx, wy, half, half, 0.0)
                        if s >= 0:
                            hit |= overlap(sx[s], sy[s], sh, sh, stheta[s], wx, wy, half, half, 0.0)
                        if hit:
                            kinds.append(BLOCKED)
                            first.append(i)
                            second.append(gx - PAD)
                            third.append(gy - PAD)
                    elif kind == STORED and shelf_grid[gy, gx] >= 0:
                        o = shelf_grid[gy, gx]
                        if overlap(sx[s], sy[s], sh, sh, stheta[s], sx[o], sy[o], sh, sh, stheta[o]):
                            kinds.append(STORED)
                            first.append(i)
                            second.append(o)
                            third.append(0)
    found = np.empty((len(kinds), 4), dtype=np.int64)
    for k in range(len(kinds)):
        found[k, 0], found[k, 1], found[k, 2], found[k, 3] = kinds[k], first[k], second[k], third[k]
    return found
