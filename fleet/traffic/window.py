"""Anytime improvement of the lifelong plan: large neighbourhood search over a short window.

PIBT decides one step at a time, greedily, and a robot it pushes aside or holds back
costs the fleet steps that a plan looking a few steps ahead would have saved. Windowed
PIBT-LNS (the League of Robot Runners 2023 winner, Jiang et al., SoCS 2024) keeps a
plan of the next `window` steps for every robot and spends the planning time left in
each step improving it: take a few robots out (the neighbourhood), plan them again one
after the other against the others' paths, fixed, and keep the new paths if the fleet's
cost dropped. A robot's cost is the step it reaches its goal if it does within the
window, else the window plus its distance left at the end (by the table it follows).

The plan is kept from step to step: the step just made is dropped, and PIBT (with the
planner's priorities and rules) adds one step at the end. So the first plan costs a
window of PIBT steps, and every later one one PIBT step plus the search it has time for:
no robot waits for the planner. The search only ever lowers the fleet's cost, so it may
trade one robot's progress for the others': waiting is measured, not bounded by proof.

A replanned path obeys the floor's rules: never two robots in one cell, never a swap;
without following, never entering a cell that another robot stood on the step before;
with following, only at the tail of a chain of robots each entering the cell the next
one leaves that ends at a free cell: a chain that comes round to the robot's own cell
is a cycle, legal in unit time but with no first mover on a real floor.

One robot is planned by A* over (cell, heading, step, arrived) states, compiled with
numba: a window of 10 steps on Kiva is thousands of states, a loop numpy cannot
vectorise.
"""

from __future__ import annotations

import time
from typing import Collection, Sequence

import numba
import numpy as np

from fleet.traffic.grid import UNREACHABLE, Grid
from fleet.traffic.guidance import GUIDE_FAR
from fleet.traffic.pibt import PIBT

#: Steps planned ahead. WPPL's default is 15; on Kiva 10 did better than 15, and as well
#: as 6 with following and better without.
WINDOW = 10
#: Robots replanned together: 4 did as well as 8 and better than 2 on Kiva.
NEIGHBOURHOOD = 4
#: Neighbourhoods replanned per step. On Kiva (190 robots, rotation, 5000 steps) 300
#: gained 8 % (with following) and 26 % (without) over PIBT alone at 14 ms a step; 1,000
#: added under 1 % more at 25 ms (docs/benchmarks.md).
SEARCHES = 300
#: Share of neighbourhoods drawn at random (the rest: a delayed robot and those in its way).
RANDOM_SHARE = 0.2
#: Memory for the robots' distance tables, copied side by side for the compiled search
#: (190 robots on Kiva with rotation: 4.6 MB; 10,000 on 500 x 140 would need 11 GB).
TABLE_BYTES = 2 * 2**30
#: Cap on the time a step may spend searching (ms): keeps a loaded machine's steps short,
#: at the price of reproducibility when it cuts a step's searches short.
TIME_CAP_MS = 40.0
#: Neighbourhoods per call of the compiled search, between looks at the clock.
BATCH = 16
#: States one search may create before it gives up.
NODE_LIMIT = 100_000


class WindowedRefinement:
    """The fleet's plan for the next `window` steps, improved step after step.

    `paths[i, t]` and `turns[i, t]` are robot i's cell and heading t steps from now;
    `occupied[t, cell]` the robot on `cell` at step t (-1 for nobody). Work per step is
    counted in neighbourhoods (`searches`), so a seeded run is reproducible; `deadline`
    only caps it on a slow machine."""

    def __init__(self, grid: Grid, rotation: bool, following: bool, window: int = WINDOW,
                 searches: int = SEARCHES, neighbourhood: int = NEIGHBOURHOOD, seed: int = 0) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 step, got {window}")
        if searches < 0:
            raise ValueError(f"searches must be 0 or more, got {searches}")
        self.grid = grid
        self.rotation = rotation
        self.following = following
        self.window = window
        self.searches = searches
        self.neighbourhood = neighbourhood
        self.ahead = np.ascontiguousarray(grid.ahead, dtype=np.int64)
        self.paths = np.zeros((0, window + 1), dtype=np.int64)
        self.turns = np.zeros((0, window + 1), dtype=np.int64)
        self.occupied = np.full((window + 1, grid.size), -1, dtype=np.int64)
        self._closed = np.zeros((window + 1) * grid.size * 8, dtype=np.int64)
        self._nodes = np.empty((NODE_LIMIT, 5), dtype=np.int64)
        self._heap = np.empty((NODE_LIMIT, 2), dtype=np.int64)
        self._state = np.zeros(3, dtype=np.int64)  # search stamp, neighbourhoods replanned, kept
        self._rng = np.random.default_rng(seed)
        self._tables = np.zeros((0, grid.size * (4 if rotation else 1)), dtype=np.int32)
        self._table_of: list[object] = []
        self._goals: list[int] = []
        self._frozen: frozenset[int] = frozenset()

    @property
    def iterations(self) -> int:
        return int(self._state[1])

    @property
    def improvements(self) -> int:
        return int(self._state[2])

    @property
    def counts(self) -> tuple[int, int]:
        """(neighbourhoods replanned, kept): carried over when the floor changes."""
        return self.iterations, self.improvements

    @counts.setter
    def counts(self, value: tuple[int, int]) -> None:
        self._state[1], self._state[2] = value

    def step(self, pibt: PIBT, cells: Sequence[int], headings: Sequence[int], goals: Sequence[int],
             tables: Sequence[Sequence[int]], priorities: Sequence[float], deadline: float,
             fixed: dict[int, int] | None = None, floors: Sequence[Grid | None] | None = None,
             frozen: Collection[int] = ()) -> tuple[list[int], list[int]]:
        """The next (cells, headings) of all robots. `tables[i]` is the distance table robot
        i follows (flat, as `Grid.distance_list`); PIBT, with `priorities`, `fixed` (robots
        pinned where they stand) and `floors` (as for `PIBT.step`), extends the plan. The
        search leaves the fixed robots and those in `frozen` (robots on floors of their own,
        such as loaded ones) to PIBT."""
        n, w = len(cells), self.window
        fixed = fixed or {}
        self._load_tables(tables)
        start = np.asarray(cells, dtype=np.int64)
        # The plan holds if everyone did as planned, pinned robots were planned to stay, and
        # no robot changed floors (a robot loaded since must not follow a path under shelves).
        frozen = frozenset(frozen)
        kept = self.paths.shape[0] == n and np.array_equal(self.paths[:, 1], start) and np.array_equal(
            self.turns[:, 1], np.asarray(headings)) and all((self.paths[i, 1:] == c).all() for i, c in fixed.items()) and (
            frozen == self._frozen)
        self._frozen = frozen
        extend = (lambda t: self._extend(pibt, t, goals, tables, priorities, fixed, floors))
        if kept:
            self.paths[:, :-1] = self.paths[:, 1:]
            self.turns[:, :-1] = self.turns[:, 1:]
            extend(w)
        else:  # the first step, or robots did not do as planned (late, stopped): plan afresh
            self.paths = np.zeros((n, w + 1), dtype=np.int64)
            self.turns = np.zeros((n, w + 1), dtype=np.int64)
            self.paths[:, 0] = start
            self.turns[:, 0] = headings
            for t in range(1, w + 1):
                extend(t)
        self.occupied.fill(-1)
        robots = np.arange(n)
        for t in range(w + 1):
            self.occupied[t, self.paths[:, t]] = robots
        goal = np.asarray(goals, dtype=np.int64)
        costs = _costs(self.paths, self.turns, goal, self._tables, self.rotation)
        ideal = _alone(self.ahead, self._tables, self.paths, self.turns, goal, self.rotation)
        movable = np.ones(n, dtype=np.bool_)
        movable[list(fixed)] = False
        movable[list(frozen)] = False
        # Robots whose goal changed since their path was planned come first, one by one.
        fresh = np.array([i for i in range(n) if movable[i] and (i >= len(self._goals) or self._goals[i] != goals[i])],
                         dtype=np.int64)
        self._goals = list(goals)
        self._rng.shuffle(fresh)
        budget = self.searches if movable.any() else 0
        while budget > 0 and time.perf_counter() < deadline:
            batch = min(BATCH, budget)
            _search(self.ahead, self._tables, self.rotation, self.following, goal, self.paths, self.turns,
                    self.occupied, costs, ideal, movable, fresh, batch, self.neighbourhood,
                    int(self._rng.integers(2**62)), self._closed, self._nodes, self._heap, self._state)
            budget -= batch
            fresh = fresh[:0]
        return self.paths[:, 1].tolist(), self.turns[:, 1].tolist()

    def _load_tables(self, tables: Sequence[Sequence[int]]) -> None:
        """Copy the robots' tables into one array for the compiled search: only those that
        changed (a robot keeps its table until it gets a new goal)."""
        n = len(tables)
        if self._tables.shape[0] != n:
            needed = n * self._tables.shape[1] * 4
            if needed > TABLE_BYTES:
                raise ValueError(f"the windowed search keeps every robot's distance table: {n} robots on this floor "
                                 f"need {needed / 2**30:.1f} GB, over its {TABLE_BYTES / 2**30:.0f} GB; it is meant "
                                 f"for floors of hundreds of robots (Kiva), PIBT alone for thousands")
            self._tables = np.zeros((n, self._tables.shape[1]), dtype=np.int32)
            self._table_of = [None] * n
        for i, table in enumerate(tables):
            # A table fetched again for the same goal is a new view of the same array.
            source = table.obj if isinstance(table, memoryview) else table
            if isinstance(source, np.ndarray) and source.base is not None:
                source = source.base
            if self._table_of[i] is not source:
                values = np.asarray(table)
                self._tables[i] = values
                if values.dtype == np.uint16:  # a guide table's (guidance.py)
                    self._tables[i, values == GUIDE_FAR] = UNREACHABLE
                self._table_of[i] = source

    def _extend(self, pibt: PIBT, t: int, goals: Sequence[int], tables: Sequence[Sequence[int]],
                priorities: Sequence[float], fixed: dict[int, int], floors: Sequence[Grid | None] | None) -> None:
        """Step t of the plan from step t - 1, by PIBT."""
        result = pibt.step(self.paths[:, t - 1].tolist(), self.turns[:, t - 1].tolist(), goals, priorities,
                           fixed, floors, tables)
        if result is None:
            raise RuntimeError("pinned robots overlap: two robots report the same cell")
        self.paths[:, t] = result[0]
        self.turns[:, t] = result[1]


@numba.njit(cache=True)
def _costs(paths: np.ndarray, turns: np.ndarray, goals: np.ndarray, tables: np.ndarray, rotation: bool) -> np.ndarray:
    costs = np.empty(paths.shape[0], dtype=np.int64)
    for i in range(paths.shape[0]):
        costs[i] = _path_cost(paths[i], turns[i], goals[i], tables[i], rotation)
    return costs


@numba.njit(cache=True)
def _search(ahead: np.ndarray, tables: np.ndarray, rotation: bool, following: bool, goals: np.ndarray,
            paths: np.ndarray, turns: np.ndarray, occupied: np.ndarray, costs: np.ndarray, ideal: np.ndarray,
            movable: np.ndarray, fresh: np.ndarray, searches: int, neighbourhood: int, seed: int, closed: np.ndarray,
            nodes: np.ndarray, heap: np.ndarray, state: np.ndarray) -> None:
    """Replan the robots in `fresh` one by one, then `searches` neighbourhoods: a robot
    drawn by its delay (cost over what it would cost alone) with the robots standing on its
    unhindered way at some step of the window, or (one time in five) robots at random."""
    np.random.seed(seed)
    n, w = paths.shape[0], paths.shape[1] - 1
    group = np.empty(neighbourhood, dtype=np.int64)
    for k in range(fresh.size + searches):
        if k < fresh.size:
            group[0] = fresh[k]
            size = 1
        else:
            size = _neighbourhood(ahead, tables, rotation, goals, paths, turns, occupied, costs, ideal, movable,
                                  group)
            if size == 0:
                return
        _replan(ahead, tables, rotation, following, goals, paths, turns, occupied, costs, group[:size], closed,
                nodes, heap, state)


@numba.njit(cache=True)
def _neighbourhood(ahead: np.ndarray, tables: np.ndarray, rotation: bool, goals: np.ndarray, paths: np.ndarray,
                   turns: np.ndarray, occupied: np.ndarray, costs: np.ndarray, ideal: np.ndarray,
                   movable: np.ndarray, group: np.ndarray) -> int:
    """Fill `group` with robots to replan together and return how many (0: nobody may be
    replanned, or nobody is delayed)."""
    n, w = paths.shape[0], paths.shape[1] - 1
    total = 0
    for i in range(n):
        if movable[i]:
            total += max(costs[i] - ideal[i], 0)
    if total == 0:
        return 0  # everyone's path costs what its own way alone would: nothing to gain
    if np.random.random() < RANDOM_SHARE:
        candidates = np.nonzero(movable)[0]
        size = min(group.size, candidates.size)
        group[:size] = np.random.choice(candidates, size, replace=False)
        return size
    pick = np.random.randint(total)
    i = -1
    while pick >= 0:
        i += 1
        if movable[i]:
            pick -= max(costs[i] - ideal[i], 0)
    group[0] = i
    size = 1
    way = _free_way(ahead, tables[i], paths[i, 0], turns[i, 0], goals[i], w, rotation)[0]
    others = np.empty(way.size * (w + 1), dtype=np.int64)
    count = 0
    for c in way:
        for t in range(w + 1):
            k = occupied[t, c]
            if k >= 0 and k != i and movable[k] and k not in others[:count]:
                others[count] = k
                count += 1
    np.random.shuffle(others[:count])
    for m in range(min(count, group.size - 1)):
        group[size] = others[m]
        size += 1
    return size


@numba.njit(cache=True)
def _replan(ahead: np.ndarray, tables: np.ndarray, rotation: bool, following: bool, goals: np.ndarray,
            paths: np.ndarray, turns: np.ndarray, occupied: np.ndarray, costs: np.ndarray, group: np.ndarray,
            closed: np.ndarray, nodes: np.ndarray, heap: np.ndarray, state: np.ndarray) -> None:
    """Plan `group` again one robot after the other, in random order; keep the new paths if
    they cost less than the old, else put the old back."""
    w = paths.shape[1] - 1
    state[1] += 1
    size = group.size
    old_paths = paths[group].copy()
    old_turns = turns[group].copy()
    old = 0
    for i in group:
        old += costs[i]
        for t in range(w + 1):
            occupied[t, paths[i, t]] = -1
    order = np.random.permutation(size)
    new_costs = np.empty(size, dtype=np.int64)
    planned = 0
    new = 0
    for k in order:
        i = group[k]
        state[0] += 1
        cost = _plan_one(ahead, tables[i], rotation, following, paths[i, 0], turns[i, 0], goals[i], w, occupied,
                         paths, closed, state[0], nodes, heap, paths[i], turns[i])
        if cost < 0:
            break
        for t in range(w + 1):
            occupied[t, paths[i, t]] = i
        new_costs[k] = cost
        planned += 1
        new += cost
        if new >= old:
            break
    if planned == size and new < old:
        state[2] += 1
        for k in range(size):
            costs[group[k]] = new_costs[k]
        return
    for m in range(planned):
        i = group[order[m]]
        for t in range(w + 1):
            occupied[t, paths[i, t]] = -1
    for k in range(size):
        i = group[k]
        paths[i] = old_paths[k]
        turns[i] = old_turns[k]
        for t in range(w + 1):
            occupied[t, paths[i, t]] = i


@numba.njit(cache=True)
def _path_cost(cells: np.ndarray, heads: np.ndarray, goal: int, table: np.ndarray, rotation: bool) -> int:
    """The step a path first stands on its goal, else its length plus the distance left."""
    w = cells.size - 1
    for t in range(w + 1):
        if cells[t] == goal:
            return t
    last = cells[w] * 4 + heads[w] if rotation else cells[w]
    return w + min(int(table[last]), UNREACHABLE)


@numba.njit(cache=True)
def _free_way(ahead: np.ndarray, table: np.ndarray, cell: int, heading: int, goal: int, steps: int,
              rotation: bool) -> tuple[np.ndarray, int]:
    """A robot's way down its table, ignoring everyone else, `steps` long at most: its
    cells, and what it would cost (as a path of the window costs)."""
    way = np.empty(steps + 1, dtype=np.int64)
    way[0] = cell
    k = 1
    c, h = cell, heading
    for t in range(steps):
        if c == goal:
            return way[:k], t
        if rotation:
            here = table[c * 4 + h]
            v = ahead[c, h]
            if v >= 0 and table[v * 4 + h] < here:
                c = v
                way[k] = c
                k += 1
                continue
            left, right = (h + 1) % 4, (h + 3) % 4
            if table[c * 4 + left] < here and table[c * 4 + left] <= table[c * 4 + right]:
                h = left
            elif table[c * 4 + right] < here:
                h = right
            else:
                break
        else:
            best, nxt = table[c], -1
            for d in range(4):
                v = ahead[c, d]
                if v >= 0 and table[v] < best:
                    best, nxt = table[v], v
            if nxt < 0:
                break
            c = nxt
            way[k] = c
            k += 1
    if c == goal:
        return way[:k], steps
    return way[:k], steps + min(table[c * 4 + h] if rotation else table[c], UNREACHABLE)


@numba.njit(cache=True)
def _alone(ahead: np.ndarray, tables: np.ndarray, paths: np.ndarray, turns: np.ndarray, goals: np.ndarray,
           rotation: bool) -> np.ndarray:
    """What each robot's path would cost with nobody in its way: its delay is what it
    costs over that."""
    w = paths.shape[1] - 1
    costs = np.empty(paths.shape[0], dtype=np.int64)
    for i in range(paths.shape[0]):
        costs[i] = _free_way(ahead, tables[i], paths[i, 0], turns[i, 0], goals[i], w, rotation)[1]
    return costs


@numba.njit(cache=True)
def _may_stand(occupied: np.ndarray, paths: np.ndarray, following: bool, c: int, v: int, t: int) -> bool:
    """Whether a robot may go from c (at step t) to v (at step t + 1), everyone else fixed."""
    nt = t + 1
    if occupied[nt, v] >= 0:
        return False
    if v == c:
        return True
    if not following:
        # Entering a cell someone stood on, or leaving one someone enters, in one step.
        return occupied[t, v] < 0 and occupied[nt, c] < 0
    # Following: walk the chain of robots ahead, each entering the cell the next one
    # leaves; it must end at a free cell, not come round to c (a swap or a cycle).
    b = occupied[t, v]
    for _ in range(paths.shape[0]):
        if b < 0:
            return True
        w = paths[b, nt]
        if w == c:
            return False
        b = occupied[t, w]
    return False  # longer than the fleet: a cycle elsewhere (never in a valid plan)


@numba.njit(cache=True)
def _plan_one(ahead: np.ndarray, table: np.ndarray, rotation: bool, following: bool, start: int, heading: int,
              goal: int, window: int, occupied: np.ndarray, paths: np.ndarray, closed: np.ndarray, stamp: int,
              nodes: np.ndarray, heap: np.ndarray, cells: np.ndarray, heads: np.ndarray) -> int:
    """A* for one robot over the window against everyone else's fixed paths. Writes the
    path into `cells` and `heads` and returns its cost (the step it first reaches its goal,
    else the window plus the distance left), or -1 if no path keeps clear of the others.
    A node is (cell, heading, step, arrival step or -1, parent); `heap` holds (key, node)."""
    size = ahead.shape[0]
    limit = nodes.shape[0]
    nodes[0, 0], nodes[0, 1], nodes[0, 2], nodes[0, 3], nodes[0, 4] = start, heading, 0, 0 if start == goal else -1, -1
    first = table[start * 4 + heading] if rotation else table[start]
    heap[0, 0], heap[0, 1] = (0 if start == goal else first) * (window + 2) + window, 0
    count, queued, found = 1, 1, -1
    moves = np.empty((5, 2), dtype=np.int64)
    while queued > 0:
        node = heap[0, 1]
        queued -= 1
        last_key, last_node = heap[queued, 0], heap[queued, 1]
        p = 0
        while True:
            child = 2 * p + 1
            if child >= queued:
                break
            if child + 1 < queued and heap[child + 1, 0] < heap[child, 0]:
                child += 1
            if heap[child, 0] >= last_key:
                break
            heap[p, 0], heap[p, 1] = heap[child, 0], heap[child, 1]
            p = child
        if queued > 0:
            heap[p, 0], heap[p, 1] = last_key, last_node
        c, h, t, arrival = nodes[node, 0], nodes[node, 1], nodes[node, 2], nodes[node, 3]
        key = ((t * size + c) * 4 + h) * 2 + (1 if arrival >= 0 else 0)
        if closed[key] == stamp:
            continue
        closed[key] = stamp
        if t == window:
            found = node
            break
        k = 1
        moves[0, 0], moves[0, 1] = c, h
        if rotation:
            moves[1, 0], moves[1, 1] = c, (h + 1) % 4
            moves[2, 0], moves[2, 1] = c, (h + 3) % 4
            k = 3
            if ahead[c, h] >= 0:
                moves[3, 0], moves[3, 1] = ahead[c, h], h
                k = 4
        else:
            for d in range(4):
                if ahead[c, d] >= 0:
                    moves[k, 0], moves[k, 1] = ahead[c, d], 0
                    k += 1
        nt = t + 1
        for m in range(k):
            v, nh = moves[m, 0], moves[m, 1]
            if not _may_stand(occupied, paths, following, c, v, t):
                continue
            arrived = arrival
            if arrived < 0 and v == goal:
                arrived = nt
            if arrived >= 0:
                f = arrived
            else:
                left = table[v * 4 + nh] if rotation else table[v]
                if left >= UNREACHABLE:
                    continue
                f = nt + left
            if closed[((nt * size + v) * 4 + nh) * 2 + (1 if arrived >= 0 else 0)] == stamp:
                continue
            if count >= limit:
                return -1
            nodes[count, 0], nodes[count, 1], nodes[count, 2], nodes[count, 3], nodes[count, 4] = v, nh, nt, arrived, node
            # Ties go to the deeper state: it is closer to a complete path.
            new_key = f * (window + 2) + (window - nt)
            q = queued
            queued += 1
            while q > 0:
                up = (q - 1) // 2
                if heap[up, 0] <= new_key:
                    break
                heap[q, 0], heap[q, 1] = heap[up, 0], heap[up, 1]
                q = up
            heap[q, 0], heap[q, 1] = new_key, count
            count += 1
    if found < 0:
        return -1
    node = found
    while node >= 0:
        cells[nodes[node, 2]] = nodes[node, 0]
        heads[nodes[node, 2]] = nodes[node, 1]
        node = nodes[node, 4]
    if nodes[found, 3] >= 0:
        return nodes[found, 3]
    return window + table[nodes[found, 0] * 4 + nodes[found, 1] if rotation else nodes[found, 0]]


def warm_up() -> None:
    """Load the compiled search now (compiled once per machine, then cached on disk), so
    that the first plan is not charged for it."""
    ahead = np.array([[1, -1, -1, -1], [-1, -1, 0, -1]], dtype=np.int64)
    tables = np.array([[1, 2, 2, 2, 0, 0, 0, 0]], dtype=np.int32).repeat(2, axis=0)
    paths = np.zeros((2, 2), dtype=np.int64)
    paths[1] = 1
    occupied = np.full((2, 2), -1, dtype=np.int64)
    occupied[:, 0], occupied[:, 1] = 0, 1
    goals = np.array([1, 0], dtype=np.int64)
    costs = _costs(paths, paths, goals, tables, True)
    _search(ahead, tables, True, False, goals, paths, paths.copy(), occupied, costs, np.zeros(2, dtype=np.int64),
            np.ones(2, dtype=np.bool_), np.array([0], dtype=np.int64), 1, 2, 0, np.zeros(64, dtype=np.int64),
            np.empty((16, 5), dtype=np.int64), np.empty((16, 2), dtype=np.int64), np.zeros(3, dtype=np.int64))
