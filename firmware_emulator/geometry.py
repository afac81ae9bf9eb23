"""Compiled geometry for the world's own collision detection and laser.

Footprints are oriented rectangles (centre, half length along the heading, half width,
heading). Pairs are found with a uniform grid (broad phase), then tested exactly with
the separating-axis theorem (narrow phase), so the cost grows with the number of
neighbours, not with the square of the number of robots.

The scalar functions are compiled with numba and called from the world's compiled step
(firmware_emulator/physics.py), where a few dozen robots cost microseconds instead of the
fixed cost of a hundred numpy calls per step; the array functions wrap them for callers
and tests that hold numpy arrays.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True)
def overlap(ax: float, ay: float, a_half_len: float, a_half_wid: float, a_theta: float,
            bx: float, by: float, b_half_len: float, b_half_wid: float, b_theta: float,
            tolerance: float = 1e-3) -> bool:
    """Whether two oriented rectangles overlap by more than `tolerance`.

    The tolerance ignores touching (two shelves 4 cm apart never collide, and rounding
    must not make two flush rectangles collide either).
    """
    ca, sa = math.cos(a_theta), math.sin(a_theta)
    cb, sb = math.cos(b_theta), math.sin(b_theta)
    dx, dy = bx - ax, by - ay
    for k in range(4):
        if k == 0:
            ux, uy = ca, sa
        elif k == 1:
            ux, uy = -sa, ca
        elif k == 2:
            ux, uy = cb, sb
        else:
            ux, uy = -sb, cb
        ra = a_half_len * abs(ca * ux + sa * uy) + a_half_wid * abs(-sa * ux + ca * uy)
        rb = b_half_len * abs(cb * ux + sb * uy) + b_half_wid * abs(-sb * ux + cb * uy)
        if not abs(dx * ux + dy * uy) < ra + rb - tolerance:
            return False
    return True


@numba.njit(cache=True)
def _overlaps(ax, ay, ahl, ahw, ath, bx, by, bhl, bhw, bth, tolerance):  # type: ignore[no-untyped-def]
    out = np.empty(len(ax), dtype=np.bool_)
    for k in range(len(ax)):
        out[k] = overlap(ax[k], ay[k], ahl[k], ahw[k], ath[k], bx[k], by[k], bhl[k], bhw[k], bth[k], tolerance)
    return out


def rectangles_overlap(
    ax: np.ndarray, ay: np.ndarray, a_half_len: np.ndarray, a_half_wid: np.ndarray, a_theta: np.ndarray,
    bx: np.ndarray, by: np.ndarray, b_half_len: np.ndarray, b_half_wid: np.ndarray, b_theta: np.ndarray,
    tolerance: float = 1e-3,
) -> np.ndarray:
    """For each pair of oriented rectangles (arguments broadcast), whether they overlap."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in
                                   (ax, ay, a_half_len, a_half_wid, a_theta, bx, by, b_half_len, b_half_wid, b_theta)))
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    return _overlaps(*flat, float(tolerance)).reshape(shape)


@numba.njit(cache=True)
def footprint(half_len: float, half_wid: float, theta: float) -> tuple[float, float]:
    """Half sizes of the axis-aligned box around an oriented rectangle."""
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    return half_len * c + half_wid * s, half_len * s + half_wid * c


@numba.njit(cache=True)
def close_pairs(x: np.ndarray, y: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of points closer than `radius`, found through a grid of that size.

    Points are bucketed with a counting sort over the grid; each point then meets the
    later points of its own and its eight neighbouring buckets. Pairs come out ordered by
    their first index, so what the world does with them does not depend on the grid.
    """
    n = len(x)
    if n < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    x0, y0 = x.min(), y.min()
    gx = np.empty(n, dtype=np.int64)
    gy = np.empty(n, dtype=np.int64)
    for i in range(n):
        gx[i] = int(math.floor(x[i] / radius) - math.floor(x0 / radius)) + 1  # a free border: neighbours stay in range
        gy[i] = int(math.floor(y[i] / radius) - math.floor(y0 / radius)) + 1
    span = gy.max() + 2
    cells = (gx.max() + 2) * span
    ids = gx * span + gy
    starts = np.zeros(cells + 1, dtype=np.int64)
    for i in range(n):
        starts[ids[i] + 1] += 1
    for c in range(cells):
        starts[c + 1] += starts[c]
    order = np.empty(n, dtype=np.int64)
    fill = starts[:-1].copy()
    for i in range(n):
        order[fill[ids[i]]] = i
        fill[ids[i]] += 1
    limit = radius * radius
    scratch = np.empty(n, dtype=np.int64)
    first = np.empty(4 * n, dtype=np.int64)
    second = np.empty(4 * n, dtype=np.int64)
    total = 0
    for i in range(n):
        count = _later_neighbours(i, x, y, ids, order, starts, span, limit, scratch)
        if total + count > len(first):
            size = 2 * (total + count)
            first, second = _grown(first, size), _grown(second, size)
        first[total:total + count] = i
        for k in range(count):  # insertion sort: a point has a handful of neighbours
            j = scratch[k]
            at = total + k
            while at > total and second[at - 1] > j:
                second[at] = second[at - 1]
                at -= 1
            second[at] = j
        total += count
    return first[:total], second[:total]


@numba.njit(cache=True)
def _later_neighbours(i: int, x: np.ndarray, y: np.ndarray, ids: np.ndarray, order: np.ndarray, starts: np.ndarray,
                      span: int, limit: float, out: np.ndarray) -> int:
    """Write into `out` the points after `i` closer to it than sqrt(limit), from its own
    bucket and the eight around it; returns how many."""
    count = 0
    for ox in range(-1, 2):
        for oy in range(-1, 2):
            c = ids[i] + ox * span + oy
            for k in range(starts[c], starts[c + 1]):
                j = order[k]
                if j > i:
                    dx, dy = x[i] - x[j], y[i] - y[j]
                    if dx * dx + dy * dy < limit:
                        out[count] = j
                        count += 1
    return count


@numba.njit(cache=True)
def _grown(a: np.ndarray, size: int) -> np.ndarray:
    bigger = np.empty(size, dtype=a.dtype)
    bigger[: len(a)] = a
    return bigger
