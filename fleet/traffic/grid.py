"""The floor as the planner sees it: cells as integers, neighbours as tables, distances as arrays.

A planner touches neighbours and distances millions of times per second of planning;
WarehouseMap's Cell tuples and generators are the right shape for people and the wrong
one for that loop. Here a cell is the integer y * width + x, a state with a heading is
cell * 4 + heading, and each distance table is one numpy array computed by a compiled
search backwards from the goal (backwards, because one-way lanes make the distance to
a goal differ from the distance from it).

Lanes. A one-wide corridor (blocked on both sides) carries traffic both ways, and two
robots meeting head-on in it must back out: in a warehouse the gaps between shelf blocks
are exactly such corridors, and they jam. Each corridor is therefore given a preferred
direction, alternating between neighbouring parallel corridors, and a move against it
costs `lane_penalty` steps in the guidance tables the planner follows. The preference
is soft: a robot still takes a corridor the "wrong" way when the detour would be longer
than the penalty, so no goal becomes unreachable. True distances (`guided=False`) ignore
lanes; they measure progress and the throughput ceiling.

Streets. Lanes only sort out the narrowest places; in the open, robots crossing each
other's paths in every direction still meet head-on. So every row and column is also a
street with a preferred direction, alternating like Manhattan's one-way grid (even rows
east, odd rows west, even columns south, odd columns north), with a smaller soft
penalty (`street_penalty`) against it: a two-wide aisle becomes a two-lane road, and
crossing traffic sorts itself into streams.

A Grid is immutable: blocking a cell, parking a faulted robot or carrying a shelf gives a
different floor, so each is a new Grid (`without`) with its own distance cache, and no
stale distance can outlive the floor it was computed on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property
from typing import Iterable, Sequence

import numba
import numpy as np

from maps.model import KIND_CODES, Cell, CellKind, Heading, WarehouseMap

#: Distance of a cell or state from which the goal cannot be reached.
UNREACHABLE = np.iinfo(np.int32).max // 2
#: Steps a move against a street's direction costs in the guidance (1 = no streets).
#: Off by default: on Kiva streets at 4 raise throughput by 5-35 %, on the generated
#: 500 x 140 floor they halve it (docs/traffic.md), so they are a per-floor setting.
STREET_PENALTY = 1
#: Memory for cached distance tables. A lifelong planner needs one table per distinct
#: goal in play (1.1 MB each with rotation on a 500 x 140 floor), or it recomputes them
#: every step.
CACHE_BYTES = 2 * 1024**3
#: Tables searched at once by `prefetch`: enough to keep every core busy, few enough
#: that a batch does not hold much memory the cache has not accounted for yet.
PREFETCH_BATCH = 256
#: Fewer missing tables than this are searched one by one, as they are asked for.
PREFETCH_MIN = 8
#: numba's default threading layer (workqueue) aborts the whole process when two threads
#: launch parallel code at once, and a service runs a planner per fleet runtime thread.
_ONE_BATCH_AT_A_TIME = threading.Lock()
#: Steps a move against a corridor's preferred direction costs in the guidance (measured
#: on the Kiva floor, see docs/traffic.md: 1 = no lanes).
LANE_PENALTY = 8

_DX = np.array([h.step[0] for h in Heading])
_DY = np.array([h.step[1] for h in Heading])


def _queues_one_way(wmap: WarehouseMap, ahead: np.ndarray) -> None:
    """A port's queue is a conveyor: robots enter at its entry, move up one slot at a
    time, and leave the working cell away from the queue. Without this, a robot leaving
    the working cell took the queue back out whenever that was as short as the aisle,
    pushing every waiting robot back with it, and passers-by cut into the middle (half
    of a busy port's idle time on the medium map). A robot may still leave a queue cell
    sideways, so a faulted robot at the working cell does not lock the queue in."""
    for working, queue in ((w, q) for station in wmap.stations for w, q in zip(station.working, station.queues)):
        if not queue:
            continue
        line = [c.y * wmap.width + c.x for c in (*queue, working)]
        inside = set(line)
        before = dict(zip(line[1:], line[:-1]))
        for cell in line:
            x, y = cell % wmap.width, cell // wmap.width
            for h in Heading:
                nx, ny = x + int(_DX[h]), y + int(_DY[h])
                if not (0 <= nx < wmap.width and 0 <= ny < wmap.height):
                    continue
                neighbour = ny * wmap.width + nx
                if neighbour in inside and before.get(neighbour) != cell:
                    ahead[cell, h] = -1  # backwards along the line, or from the working cell into it
                if cell in before and before[cell] != neighbour:
                    ahead[neighbour, h.opposite()] = -1  # into the line past its entry: only from the slot behind


class Grid:
    """Passability and moves of one floor, for planning.

    `ahead[c, h]` is the cell a robot on c facing h reaches by one forward move, or -1
    if that move is not allowed (wall, blocked cell, map edge, or against a one-way lane).
    `cost[c, h]` is what that move costs in the guidance tables.
    """

    def __init__(
        self, wmap: WarehouseMap, passable: np.ndarray, lane_penalty: int = LANE_PENALTY,
        cache_bytes: int = CACHE_BYTES, street_penalty: int = STREET_PENALTY,
        lanes: np.ndarray | None = None, one_way_lanes: bool = False,
    ) -> None:
        for name, value in (("lane_penalty", lane_penalty), ("street_penalty", street_penalty)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1 (1 = none), got {value}")
        self.map = wmap
        self.width = wmap.width
        self.height = wmap.height
        self.size = wmap.width * wmap.height
        self.passable = passable
        self.lane_penalty = lane_penalty
        self.street_penalty = street_penalty
        ahead = np.full((self.size, 4), -1, dtype=np.int64)
        ys, xs = np.divmod(np.arange(self.size), self.width)
        open_towards = np.zeros((self.size, 4), dtype=bool)
        for h in Heading:
            nx, ny = xs + _DX[h], ys + _DY[h]
            inside = (nx >= 0) & (nx < self.width) & (ny >= 0) & (ny < self.height)
            target = np.where(inside, ny * self.width + nx, 0)
            open_towards[:, h] = inside & passable[target]
            ahead[:, h] = np.where(open_towards[:, h] & passable, target, -1)
        for cell, arrow in wmap.one_way.items():
            for h in Heading:
                if h != arrow:
                    ahead[self.index(cell), h] = -1
        _queues_one_way(wmap, ahead)
        self.lanes = _lanes(passable, open_towards, xs, ys) if lanes is None else np.where(passable, lanes, -1)
        self.one_way_lanes = one_way_lanes
        against_lane = np.zeros((self.size, 4), dtype=bool)
        for h in Heading:
            target = np.maximum(ahead[:, h], 0)
            wrong = (self.lanes == int(h.opposite())) | (self.lanes[target] == int(h.opposite()))
            against_lane[:, h] = (ahead[:, h] >= 0) & wrong
        if one_way_lanes:
            ahead[against_lane] = -1
        self.ahead = ahead
        # behind[c, h]: the cell from which a forward move facing h arrives on c.
        behind = np.full((self.size, 4), -1, dtype=np.int64)
        for h in Heading:
            src = np.nonzero(ahead[:, h] >= 0)[0]
            behind[ahead[src, h], h] = src
        self.behind = behind
        self.cost = np.ones((self.size, 4), dtype=np.int32)
        for h in Heading:
            moves = ahead[:, h] >= 0
            # Streets: even rows run east, odd rows west, even columns south, odd north.
            coord = ys if h in (Heading.EAST, Heading.WEST) else xs
            with_street = Heading.EAST if h in (Heading.EAST, Heading.WEST) else Heading.SOUTH
            wrong_way = (coord % 2 == 0) != (h == with_street)
            self.cost[moves & wrong_way, h] = street_penalty
            wrong = moves & against_lane[:, h]
            self.cost[wrong, h] = np.maximum(self.cost[wrong, h], lane_penalty)
        self._ones = np.ones((self.size, 4), dtype=np.int32)
        #: Whether guidance changes any cost: without lanes and streets (one-shot runs) a
        #: guided table equals the plain one, and is neither searched nor stored twice.
        self._guiding = bool((self.cost != 1).any())
        #: (heading, next cell) per cell, as plain Python ints: the planner's inner loop
        #: reads these (indexing numpy scalars one by one is 20x slower).
        self.moves = _Moves(ahead)
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._tables: OrderedDict[tuple[int, bool, bool], np.ndarray] = OrderedDict()
        self._cell_tables: dict[tuple[int, bool, bool], np.ndarray] = {}
        self._reach: dict[tuple[int, bool, bool], np.ndarray] = {}

    @classmethod
    def from_map(cls, wmap: WarehouseMap, lane_penalty: int = LANE_PENALTY, cache_bytes: int = CACHE_BYTES,
                 street_penalty: int = STREET_PENALTY) -> "Grid":
        passable = (wmap.kinds != KIND_CODES[CellKind.BLOCKED]).ravel()
        return cls(wmap, passable, lane_penalty, cache_bytes, street_penalty)

    def without(self, cells: Iterable[Cell | int]) -> "Grid":
        """This floor with `cells` impassable: operator blocks, faulted robots, or (for a
        loaded robot) the cells where shelves stand."""
        passable = self.passable.copy()
        for cell in cells:
            passable[cell if isinstance(cell, (int, np.integer)) else self.index(cell)] = False
        return Grid(self.map, passable, self.lane_penalty, self._cache_bytes, self.street_penalty)

    def one_way(self, closed: Iterable[int], lanes: np.ndarray) -> "Grid":
        """This floor with `closed` cells impassable and the corridors of `lanes` driven
        only in their direction. For loaded robots: a soft lane preference still lets two
        of them meet head-on in a one-wide aisle, where neither can back out (behind each
        is a queue, beside each are shelves), and they stand there for good. `lanes` comes
        from the map's floor, not from this one, so that every loaded robot's floor (each
        opens its own goal) and every later one (after a block) agrees on the directions."""
        passable = self.passable.copy()
        passable[list(closed)] = False
        return Grid(self.map, passable, self.lane_penalty, self._cache_bytes, self.street_penalty,
                    lanes=lanes, one_way_lanes=True)

    def two_lane_roads(self) -> np.ndarray:
        """`lanes`, plus keep-right lanes on every two-wide road (two passable rows or
        columns between blocked ones): driven both ways on both lanes, such a road at the
        edge of a crowded floor jammed for good (docs/benchmarks.md, the 10,000-robot run)."""
        free = np.zeros((self.height + 4, self.width + 4), dtype=bool)
        free[2:-2, 2:-2] = self.passable.reshape(self.height, self.width)

        def shifted(dy: int, dx: int) -> np.ndarray:
            return free[2 + dy:free.shape[0] - 2 + dy, 2 + dx:free.shape[1] - 2 + dx]

        here = shifted(0, 0)
        lanes = self.lanes.reshape(self.height, self.width).copy()
        for side, heading in (
            (here & ~shifted(-1, 0) & shifted(1, 0) & ~shifted(2, 0), Heading.WEST),  # upper lane
            (here & shifted(-1, 0) & ~shifted(-2, 0) & ~shifted(1, 0), Heading.EAST),  # lower lane
            (here & ~shifted(0, -1) & shifted(0, 1) & ~shifted(0, 2), Heading.SOUTH),  # left lane
            (here & shifted(0, -1) & ~shifted(0, -2) & ~shifted(0, 1), Heading.NORTH),  # right lane
        ):
            lanes[side & (lanes < 0)] = int(heading)
        return lanes.ravel()

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
    def distances(self, goal: int, oriented: bool = False, guided: bool = False) -> np.ndarray:
        """Cost of the cheapest way from every cell (shape (size,)) or, if `oriented`, every
        (cell, heading) state (shape (size, 4), a turn of 90 degrees costing one step) to
        standing on `goal` with any heading. `guided` counts moves against lanes at
        `lane_penalty`; otherwise every move costs one step. UNREACHABLE where no way exists."""
        key = (goal, oriented, guided and self._guiding)
        table = self._tables.get(key)
        if table is not None:
            self._tables.move_to_end(key)
            return table
        seeds = ([goal * 4 + h for h in range(4)] if oriented else [goal]) if self.passable[goal] else []
        table = self.search(seeds, [0] * len(seeds), self.cost if guided else self._ones, oriented)
        self._keep(key, table)
        return table

    def prefetch(self, goals: Iterable[int], oriented: bool = False, guided: bool = False) -> None:
        """Search the tables of those `goals` not cached yet, on all cores at once: at
        10,000 robots the first step needs 10,000 tables, and a steady step fifty. A few
        are left to `distances`: a batch costs a copy per table and a thread start."""
        fresh = {(g, oriented, guided and self._guiding) for g in goals if self.passable[g]}
        missing = [key for key in fresh if key not in self._tables]
        if len(missing) < PREFETCH_MIN:
            return
        cost = self.cost if guided else self._ones
        search = _search_many_states if oriented else _search_many_cells
        for start in range(0, len(missing), PREFETCH_BATCH):
            keys = missing[start:start + PREFETCH_BATCH]
            batch = np.full((len(keys), *self._shape(oriented)), UNREACHABLE, dtype=np.int32)
            with _ONE_BATCH_AT_A_TIME:
                search(self.behind, cost, np.array([goal for goal, *_ in keys]), batch)
            for key, table in zip(keys, batch):
                self._keep(key, table.copy())  # its own memory, so that evicting it frees it

    def _shape(self, oriented: bool) -> tuple[int, ...]:
        return (self.size, 4) if oriented else (self.size,)

    def _blank(self, oriented: bool) -> np.ndarray:
        return np.full(self._shape(oriented), UNREACHABLE, dtype=np.int32)

    def _keep(self, key: tuple[int, bool, bool], table: np.ndarray) -> None:
        self._tables[key] = table
        self._cached_bytes += table.nbytes
        while self._cached_bytes > self._cache_bytes and len(self._tables) > 1:
            old, evicted = self._tables.popitem(last=False)
            self._cached_bytes -= evicted.nbytes
            for derived in (self._cell_tables, self._reach):
                gone = derived.pop(old, None)
                if gone is not None:
                    self._cached_bytes -= gone.nbytes

    def _derived(self, store: dict[tuple[int, bool, bool], np.ndarray], key: tuple[int, bool, bool],
                 table: np.ndarray, make) -> np.ndarray:
        """A table derived from a cached distance table, cached and evicted with it."""
        derived = store.get(key)
        if derived is None:
            derived = store[key] = make(table)
            self._cached_bytes += derived.nbytes
        return derived

    def search(self, seeds: Sequence[int], offsets: Sequence[int], cost: np.ndarray, oriented: bool) -> np.ndarray:
        """Cheapest way from every cell (or, if `oriented`, every (cell, heading) state, a
        quarter turn costing one step) to any seed (a cell, or a state cell * 4 + heading),
        plus that seed's offset, moving at `cost` per (cell, heading). Not cached: for
        costs that change as robots come and go, such as a guide path's congestion.
        `offsets` must be ascending."""
        table = self._blank(oriented)
        search = _search_states if oriented else _search_cells
        search(self.behind, cost, np.asarray(seeds, dtype=np.int64), np.asarray(offsets, dtype=np.int32), table)
        return table

    def distance_list(self, goal: int, oriented: bool = False, guided: bool = False) -> memoryview:
        """`distances` flattened (state cell * 4 + heading if `oriented`) as a memoryview:
        PIBT reads a handful of entries per robot per step, and a memoryview hands them out
        as Python ints twice as fast as numpy indexing, without a copy. (A list of ints did
        that a fifth faster but cost 10 MB and 10 ms per oriented table on the 500 x 140
        floor: at 1,000 robots 18 GB, and more time building lists than planning.)"""
        return memoryview(self.distances(goal, oriented, guided).reshape(-1))

    def cell_distance_list(self, goal: int, oriented: bool = False, guided: bool = False) -> memoryview:
        """Per cell, `distances` from it (from its best heading if `oriented`), read a cell
        at a time: a way is traced downhill one cell at a time."""
        key = (goal, oriented, guided and self._guiding)
        table = self.distances(goal, oriented, guided)
        if not oriented:
            return memoryview(table)
        return memoryview(self._derived(self._cell_tables, key, table, _best_heading))

    @cached_property
    def cost_list(self) -> list[int]:
        """`cost` flattened (state cell * 4 + heading) into one list of Python ints, for
        loops that read it one move at a time. One flat list, not a list per cell: a
        floor is derived for every loaded robot's goal, and thousands of small lists per
        floor cost more to build (and to garbage-collect) than the loop saves."""
        return self.cost.ravel().tolist()

    def reaches(self, goal: int, oriented: bool) -> np.ndarray:
        """Per cell, whether the goal can be reached from it: asked for every robot at
        every planning step, so kept apart from the tables. (A robot can always turn in
        place, so one heading tells for all.)"""
        key = (goal, oriented, self._guiding)
        table = self.distances(goal, oriented=oriented, guided=True)
        return self._derived(self._reach, key, table, lambda t: (t[:, 0] if oriented else t) < UNREACHABLE)


def _best_heading(table: np.ndarray) -> np.ndarray:
    """Per cell, the least of its four headings' distances (min(axis=1) is 8x slower:
    numpy reduces a four-wide axis element by element)."""
    return np.minimum(np.minimum(table[:, 0], table[:, 1]), np.minimum(table[:, 2], table[:, 3]))


class _Moves(dict):
    """Moves per cell, built on first use: a floor derived for one loaded robot's goal is
    asked for the few cells that robot passes, not all of them."""

    def __init__(self, ahead: np.ndarray) -> None:
        super().__init__()
        self._ahead = ahead

    def __missing__(self, cell: int) -> list[tuple[int, int]]:
        row = self[cell] = [(h, v) for h, v in enumerate(self._ahead[cell].tolist()) if v >= 0]
        return row


def warm_up() -> None:
    """Load the compiled searches now (about a second the first time in a process), so
    that the first plan is not charged for it."""
    behind = np.full((1, 4), -1, dtype=np.int64)
    ones = np.ones((1, 4), dtype=np.int32)
    seeds, offsets = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int32)
    _search_cells(behind, ones, seeds, offsets, np.full(1, UNREACHABLE, dtype=np.int32))
    _search_states(behind, ones, seeds, offsets, np.full((1, 4), UNREACHABLE, dtype=np.int32))
    goals = np.zeros(1, dtype=np.int64)
    _search_many_cells(behind, ones, goals, np.full((1, 1), UNREACHABLE, dtype=np.int32))
    _search_many_states(behind, ones, goals, np.full((1, 1, 4), UNREACHABLE, dtype=np.int32))


def _lanes(passable: np.ndarray, open_towards: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Preferred heading of every one-wide corridor cell (-1 elsewhere): corridors along
    one axis alternate direction in the order of their column (or row)."""
    lanes = np.full(passable.size, -1, dtype=np.int64)
    e, n, w, s = (open_towards[:, h] for h in Heading)
    vertical = passable & n & s & ~e & ~w
    horizontal = passable & e & w & ~n & ~s
    for mask, coord, even, odd in ((vertical, xs, Heading.NORTH, Heading.SOUTH),
                                   (horizontal, ys, Heading.EAST, Heading.WEST)):
        lines = np.unique(coord[mask])
        rank = np.searchsorted(lines, coord[mask])
        lanes[mask] = np.where(rank % 2 == 0, int(even), int(odd))
    return lanes


# Shortest-path search is a queue loop, the one shape numpy cannot vectorise without a
# Python loop per level; compiled, a search over 280,000 states takes milliseconds
# instead of seconds (measured in docs/traffic.md). Move costs are small integers, so
# Dial's bucket queue replaces the heap: bucket d % (max cost + 1) holds the states at
# distance d, and a state is final when its bucket comes round. A search starts from
# seeds, each with its own distance (the goal at 0; a guide path's cells at what is left
# of the path from them), sorted by it: a seed enters its bucket when d comes round to it.
@numba.njit(cache=True)
def _search_cells(behind: np.ndarray, cost: np.ndarray, seeds: np.ndarray, offsets: np.ndarray,
                  dist: np.ndarray) -> None:
    span = cost.max() + 1
    buckets = np.empty((span, dist.size), dtype=np.int64)
    counts = np.zeros(span, dtype=np.int64)
    pending, d, s = 0, 0, 0
    while pending or s < seeds.size:
        if not pending:
            d = max(d, offsets[s])
        b = d % span
        while s < seeds.size and offsets[s] == d:
            if d < dist[seeds[s]]:
                dist[seeds[s]] = d
                buckets[b, counts[b]] = seeds[s]
                counts[b] += 1
                pending += 1
            s += 1
        while counts[b]:
            counts[b] -= 1
            pending -= 1
            c = buckets[b, counts[b]]
            if dist[c] != d:
                continue  # superseded by a shorter way
            for h in range(4):
                p = behind[c, h]
                if p >= 0:
                    nd = d + cost[p, h]
                    if nd < dist[p]:
                        dist[p] = nd
                        nb = nd % span
                        buckets[nb, counts[nb]] = p
                        counts[nb] += 1
                        pending += 1
        d += 1


@numba.njit(cache=True)
def _search_states(behind: np.ndarray, cost: np.ndarray, seeds: np.ndarray, offsets: np.ndarray,
                   dist: np.ndarray) -> None:
    """Backwards over (cell, heading), seeds being states (cell * 4 + heading): a state is
    reached from the same cell turned one way or the other (one step), or from the cell
    behind it along its heading."""
    span = cost.max() + 1
    buckets = np.empty((span, dist.size), dtype=np.int64)
    counts = np.zeros(span, dtype=np.int64)
    pending, d, k = 0, 0, 0
    while pending or k < seeds.size:
        if not pending:
            d = max(d, offsets[k])
        b = d % span
        while k < seeds.size and offsets[k] == d:
            c, h = seeds[k] >> 2, seeds[k] & 3
            if d < dist[c, h]:
                dist[c, h] = d
                buckets[b, counts[b]] = seeds[k]
                counts[b] += 1
                pending += 1
            k += 1
        while counts[b]:
            counts[b] -= 1
            pending -= 1
            s = buckets[b, counts[b]]
            c, h = s >> 2, s & 3
            if dist[c, h] != d:
                continue
            for ph in ((h + 1) % 4, (h + 3) % 4):
                if d + 1 < dist[c, ph]:
                    dist[c, ph] = d + 1
                    nb = (d + 1) % span
                    buckets[nb, counts[nb]] = c * 4 + ph
                    counts[nb] += 1
                    pending += 1
            p = behind[c, h]
            if p >= 0:
                nd = d + cost[p, h]
                if nd < dist[p, h]:
                    dist[p, h] = nd
                    nb = nd % span
                    buckets[nb, counts[nb]] = p * 4 + h
                    counts[nb] += 1
                    pending += 1
        d += 1


@numba.njit(cache=True, parallel=True)
def _search_many_states(behind: np.ndarray, cost: np.ndarray, goals: np.ndarray, tables: np.ndarray) -> None:
    """`_search_states` to each of many goals (standing on it in any heading), spread
    over the cores."""
    for k in numba.prange(goals.size):
        _search_states(behind, cost, goals[k] * 4 + np.arange(4), np.zeros(4, dtype=np.int32), tables[k])


@numba.njit(cache=True, parallel=True)
def _search_many_cells(behind: np.ndarray, cost: np.ndarray, goals: np.ndarray, tables: np.ndarray) -> None:
    for k in numba.prange(goals.size):
        _search_cells(behind, cost, goals[k:k + 1], np.zeros(1, dtype=np.int32), tables[k])
