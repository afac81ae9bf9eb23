"""An independent replay of executed paths that counts every conflict and illegal move.

It shares nothing with the planner but the map: it reads cells as (x, y) columns and
rows, checks moves against WarehouseMap itself (traversable cells, one-way arrows,
Heading.step), and so a planner bug cannot hide behind the planner's own tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from maps.model import KIND_CODES, CellKind, Heading, WarehouseMap


@dataclass
class Conflicts:
    vertex: int = 0  # two robots in one cell
    swap: int = 0  # two robots through each other
    following: int = 0  # entering a cell in the step its occupant leaves it
    illegal_moves: int = 0  # jumps, blocked cells, against a one-way lane, sideways with rotation

    @property
    def collisions(self) -> int:
        return self.vertex + self.swap + self.following

    def as_dict(self) -> dict:
        return asdict(self) | {"collisions": self.collisions}


def check_paths(
    wmap: WarehouseMap,
    xy: np.ndarray,
    headings: np.ndarray | None = None,
    following_allowed: bool = False,
) -> Conflicts:
    """Replay `xy` (steps + 1, robots, 2) of executed cells; `headings` (steps + 1, robots)
    if robots move only forward and turn 90 degrees per step (rotation model)."""
    xy = np.asarray(xy, dtype=np.int64)
    if xy.ndim != 3 or xy.shape[2] != 2:
        raise ValueError(f"paths must have shape (steps + 1, robots, 2), got {xy.shape}")
    found = Conflicts()
    width, size = wmap.width, wmap.width * wmap.height
    free = (wmap.kinds != KIND_CODES[CellKind.BLOCKED]).ravel()
    arrow = np.full(size, -1)
    for cell, heading in wmap.one_way.items():
        arrow[cell.y * width + cell.x] = int(heading)
    # Heading of a one-cell move, looked up by (dx + 1) * 3 + (dy + 1); -1 for "no move".
    heading_of = np.full(9, -1)
    for h in Heading:
        dx, dy = h.step
        heading_of[(dx + 1) * 3 + dy + 1] = int(h)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < wmap.height)
    flat = np.where(inside, xy[..., 1] * width + xy[..., 0], 0)
    found.illegal_moves += int(np.count_nonzero(~inside)) + int(np.count_nonzero(inside & ~free[flat]))
    found.vertex += _duplicates(flat[0])
    occupant = np.full(size, -1)
    robots = np.arange(flat.shape[1])
    for t in range(len(flat) - 1):
        a, b = flat[t], flat[t + 1]
        found.vertex += _duplicates(b)
        delta = xy[t + 1] - xy[t]
        moved = np.any(delta != 0, axis=1)
        jump = np.abs(delta).sum(axis=1) > 1
        found.illegal_moves += int(np.count_nonzero(jump))
        step = moved & ~jump
        way = heading_of[(np.clip(delta[:, 0], -1, 1) + 1) * 3 + np.clip(delta[:, 1], -1, 1) + 1]
        found.illegal_moves += int(np.count_nonzero(step & (arrow[a] >= 0) & (arrow[a] != way)))
        if headings is not None:
            sideways = step & ((headings[t] != way) | (headings[t + 1] != way))
            turned_twice = (headings[t + 1] - headings[t]) % 4 == 2
            found.illegal_moves += int(np.count_nonzero(sideways | turned_twice))
        occupant[a] = robots
        other = occupant[b]
        occupant[a] = -1
        entering = moved & (other >= 0) & (other != robots)
        swapped = entering & (b[np.maximum(other, 0)] == a)
        found.swap += int(np.count_nonzero(swapped)) // 2
        if not following_allowed:
            found.following += int(np.count_nonzero(entering & ~swapped & moved[np.maximum(other, 0)]))
    return found


def _duplicates(cells: np.ndarray) -> int:
    return int(cells.size - np.unique(cells).size)
