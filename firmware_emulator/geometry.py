"""Vectorised geometry for the world's own collision detection and laser.

Footprints are oriented rectangles (centre, half length along the heading, half width,
heading). Pairs are found with a uniform grid (broad phase), then tested exactly with
the separating-axis theorem (narrow phase), so the cost grows with the number of
neighbours, not with the square of the number of robots.
"""

from __future__ import annotations

import numpy as np


def close_pairs(x: np.ndarray, y: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of points closer than `radius`, found through a grid of that size.

    Points are bucketed with a counting sort over the grid (no per-query binary search),
    then each point meets the points of its own bucket and of four neighbours, so every
    pair of adjacent buckets is visited once.
    """
    n = len(x)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    gx = np.floor(x / radius)
    gy = np.floor(y / radius)
    gx = (gx - gx.min()).astype(np.int64) + 1  # a free border so that neighbours stay in range
    gy = (gy - gy.min()).astype(np.int64) + 1
    span = int(gy.max()) + 2
    cells = (int(gx.max()) + 2) * span
    ids = gx * span + gy
    order = np.argsort(ids.astype(np.int16) if cells < 2**15 else ids, kind="stable")
    counts = np.bincount(ids, minlength=cells)
    starts = np.cumsum(counts) - counts
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for offset in (0, span - 1, span, span + 1, 1):  # own, then (1,-1), (1,0), (1,1), (0,1)
        neighbour = ids + offset
        count = counts[neighbour]
        total = int(count.sum())
        if total == 0:
            continue
        i = np.repeat(np.arange(n), count)
        j = order[np.repeat(starts[neighbour] - np.cumsum(count) + count, count) + np.arange(total)]
        keep = (i < j) if offset == 0 else (i != j)
        first.append(i[keep])
        second.append(j[keep])
    if not first:
        return empty, empty
    i = np.concatenate(first)
    j = np.concatenate(second)
    dx, dy = x[i] - x[j], y[i] - y[j]
    near = dx * dx + dy * dy < radius * radius
    i, j = i[near], j[near]
    return np.minimum(i, j), np.maximum(i, j)


def rectangles_overlap(
    ax: np.ndarray, ay: np.ndarray, a_half_len: np.ndarray, a_half_wid: np.ndarray, a_theta: np.ndarray,
    bx: np.ndarray, by: np.ndarray, b_half_len: np.ndarray, b_half_wid: np.ndarray, b_theta: np.ndarray,
    tolerance: float = 1e-3,
) -> np.ndarray:
    """For each pair of oriented rectangles, whether they overlap by more than `tolerance`.

    The tolerance ignores touching (two shelves 4 cm apart never collide, and rounding
    must not make two flush rectangles collide either).
    """
    ca, sa = np.cos(a_theta), np.sin(a_theta)
    cb, sb = np.cos(b_theta), np.sin(b_theta)
    dx, dy = bx - ax, by - ay
    overlap = np.ones(np.broadcast(ax, bx).shape, dtype=bool)
    for ux, uy in ((ca, sa), (-sa, ca), (cb, sb), (-sb, cb)):
        ra = a_half_len * np.abs(ca * ux + sa * uy) + a_half_wid * np.abs(-sa * ux + ca * uy)
        rb = b_half_len * np.abs(cb * ux + sb * uy) + b_half_wid * np.abs(-sb * ux + cb * uy)
        overlap &= np.abs(dx * ux + dy * uy) < ra + rb - tolerance
    return overlap


def extents(half_len: np.ndarray, half_wid: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half sizes of the axis-aligned box around each oriented rectangle."""
    c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    return half_len * c + half_wid * s, half_len * s + half_wid * c
