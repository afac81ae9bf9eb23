"""The floor as the planner sees it: cells as integers, neighbours as tables, distances as arrays.

A planner touches neighbours and distances millions of times per second of planning;
WarehouseMap's Cell tuples and generators are the right shape for people and the wrong
one for that loop. Here a cell is the integer y * width + x, a state with a heading is
cell * 4 + heading, and each distance table is one numpy array computed by a vectorised
breadth-first search backwards from the goal (backwards, because one-way lanes make the
distance to a goal differ from the distance from it).

A Grid is immutable: blocking a cell, parking a faulted robot or carrying a shelf gives a
different floor, so each is a new Grid (`without`) with its own distance cache, and no
stale distance can outlive the floor it was computed on.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import numba
import numpy as np

from maps.model import KIND_CODES, Cell, CellKind, Heading, WarehouseMap

#: Distance of a cell or state from which the goal cannot be reached.
UNREACHABLE = np.iinfo(np.int32).max // 2

_DX = np.array([h.step[0] for h in Heading])
_DY = np.array([h.step[1] for h in Heading])


class Grid:
    """Passability and moves of one floor, for planning.

    `ahead[c, h]` is the cell a robot on c facing h reaches by one forward move, or -1
    if that move is not allowed (wall, blocked cell, map edge, or against a one-way lane).
    """

    def __init__(self, wmap: WarehouseMap, passable: np.ndarray, cache_size: int = 4096) -> None:
        self.map = wmap
        self.width = wmap.width
        self.height = wmap.height
        self.size = wmap.width * wmap.height
        self.passable = passable
        ahead = np.full((self.size, 4), -1, dtype=np.int64)
        ys, xs = np.divmod(np.arange(self.size), self.width)
        for h in Heading:
            nx, ny = xs + _DX[h], ys + _DY[h]
            inside = (nx >= 0) & (nx < self.width) & (ny >= 0) & (ny < self.height)
            target = np.where(inside, ny * self.width + nx, 0)
            ok = inside & passable & passable[target]
            ahead[:, h] = np.where(ok, target, -1)
        for cell, arrow in wmap.one_way.items():
            for h in Heading:
                if h != arrow:
                    ahead[self.index(cell), h] = -1
        self.ahead = ahead
        # behind[c, h]: the cell from which a forward move facing h arrives on c.
        behind = np.full((self.size, 4), -1, dtype=np.int64)
        for h in Heading:
            src = np.nonzero(ahead[:, h] >= 0)[0]
            behind[ahead[src, h], h] = src
        self.behind = behind
        #: Python lists of (heading, next cell) per cell: the planner's inner loop reads these.
        self.moves: list[list[tuple[int, int]]] = [
            [(h, int(ahead[c, h])) for h in range(4) if ahead[c, h] >= 0] for c in range(self.size)
        ]
        self._cache_size = cache_size
        self._distances: OrderedDict[int, np.ndarray] = OrderedDict()
        self._oriented: OrderedDict[int, np.ndarray] = OrderedDict()

    @classmethod
    def from_map(cls, wmap: WarehouseMap, cache_size: int = 4096) -> "Grid":
        passable = (wmap.kinds != KIND_CODES[CellKind.BLOCKED]).ravel()
        return cls(wmap, passable, cache_size)

    def without(self, cells: Iterable[Cell | int]) -> "Grid":
        """This floor with `cells` impassable: operator blocks, faulted robots, or (for a
        loaded robot) the cells where shelves stand."""
        passable = self.passable.copy()
        for cell in cells:
            passable[cell if isinstance(cell, (int, np.integer)) else self.index(cell)] = False
        return Grid(self.map, passable, self._cache_size)

    # --- cells --------------------------------------------------------------------
    def index(self, cell: Cell) -> int:
        if not self.map.in_bounds(cell):
            raise ValueError(f"cell {cell} is outside map {self.map.name!r} ({self.width} x {self.height})")
        return cell.y * self.width + cell.x

    def cell(self, index: int) -> Cell:
        y, x = divmod(int(index), self.width)
        return Cell(x, y)

    def free_cells(self) -> np.ndarray:
        return np.nonzero(self.passable)[0]

    # --- distances ----------------------------------------------------------------
    def distances(self, goal: int) -> np.ndarray:
        """Fewest forward moves from every cell to `goal` (headings ignored)."""
        table = self._cached(self._distances, goal)
        if table is None:
            table = self._bfs_cells(goal)
            self._store(self._distances, goal, table)
        return table

    def oriented_distances(self, goal: int) -> np.ndarray:
        """Fewest actions (forward one cell or turn 90 degrees) from every (cell, heading)
        state to standing on `goal` with any heading; shape (size, 4)."""
        table = self._cached(self._oriented, goal)
        if table is None:
            table = self._bfs_states(goal)
            self._store(self._oriented, goal, table)
        return table

    def _cached(self, cache: OrderedDict, goal: int) -> np.ndarray | None:
        table = cache.get(goal)
        if table is not None:
            cache.move_to_end(goal)
        return table

    def _store(self, cache: OrderedDict, goal: int, table: np.ndarray) -> None:
        cache[goal] = table
        while len(cache) > self._cache_size:
            cache.popitem(last=False)

    def _bfs_cells(self, goal: int) -> np.ndarray:
        dist = np.full(self.size, UNREACHABLE, dtype=np.int32)
        if self.passable[goal]:
            _bfs_cells(self.behind, goal, dist)
        return dist

    def _bfs_states(self, goal: int) -> np.ndarray:
        dist = np.full((self.size, 4), UNREACHABLE, dtype=np.int32)
        if self.passable[goal]:
            _bfs_states(self.behind, goal, dist)
        return dist


# Breadth-first search is a queue loop, the one shape numpy cannot vectorise without a
# Python loop per level; compiled, a 150,000-state search takes about a millisecond
# instead of tens (measured in docs/traffic.md).
@numba.njit(cache=True)
def _bfs_cells(behind: np.ndarray, goal: int, dist: np.ndarray) -> None:
    queue = np.empty(dist.size, dtype=np.int64)
    queue[0] = goal
    dist[goal] = 0
    head, tail = 0, 1
    while head < tail:
        c = queue[head]
        head += 1
        for h in range(4):
            p = behind[c, h]
            if p >= 0 and dist[p] == UNREACHABLE:
                dist[p] = dist[c] + 1
                queue[tail] = p
                tail += 1


@numba.njit(cache=True)
def _bfs_states(behind: np.ndarray, goal: int, dist: np.ndarray) -> None:
    """Backwards over (cell, heading): a state is reached from the same cell turned one
    way or the other, or from the cell behind it along its heading."""
    queue = np.empty(dist.size, dtype=np.int64)
    for h in range(4):
        dist[goal, h] = 0
        queue[h] = goal * 4 + h
    head, tail = 0, 4
    while head < tail:
        s = queue[head]
        head += 1
        c, h = s >> 2, s & 3
        d = dist[c, h] + 1
        for ph in ((h + 1) % 4, (h + 3) % 4):
            if dist[c, ph] == UNREACHABLE:
                dist[c, ph] = d
                queue[tail] = c * 4 + ph
                tail += 1
        p = behind[c, h]
        if p >= 0 and dist[p, h] == UNREACHABLE:
            dist[p, h] = d
            queue[tail] = p * 4 + h
            tail += 1
