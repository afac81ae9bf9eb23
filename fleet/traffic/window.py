"""Anytime improvement of the lifelong plan: large neighbourhood search over a short window.

PIBT decides one step at a time, greedily, and a robot it pushes aside or holds back
costs the fleet steps that a plan looking a few steps ahead would have saved. Windowed
PIBT-LNS (the League of Robot Runners 2023 winner, Jiang et al., SoCS 2024) keeps a
plan of the next `window` steps for every robot and spends the planning time left in
each step improving it: take a few robots out (the neighbourhood), plan them again one
after the other against the others' paths, fixed, and keep the new paths if the fleet's
cost dropped. A robot's cost is the step it reaches its goal if it does within the
window, else the window plus its distance left at the end (by the table it follows).

The plan is kept from step to step: the step just made is dropped, and PIBT (with its
priorities, so its liveness argument still holds for the tail) adds one step at the
end. So the first plan costs a window of PIBT steps, and every later one one PIBT step
plus the search it has time for: the robot never waits for the planner.

A replanned path obeys the floor's rules: never two robots in one cell, never a swap;
without following, never entering a cell that another robot stood on the step before;
with following, only behind a robot that moves into a free cell, so no cycle of robots
each entering the cell the next one leaves can form (it has no first mover on a real
floor).

One robot is planned by A* over (cell, heading, step, arrived) states, compiled with
numba: a window of 10 steps on Kiva is thousands of states, a loop numpy cannot
vectorise.
"""

from __future__ import annotations

import random
import time
from typing import Sequence

import numba
import numpy as np

from fleet.traffic.grid import UNREACHABLE, Grid
from fleet.traffic.pibt import PIBT

#: Steps planned ahead. WPPL's default is 15.
WINDOW = 10
#: Robots replanned together.
NEIGHBOURHOOD = 4
#: States one search may create before it gives up.
NODE_LIMIT = 200_000


class WindowedRefinement:
    """The fleet's plan for the next `window` steps, improved in the time each step leaves.

    `paths[i, t]` and `turns[i, t]` are robot i's cell and heading t steps from now;
    `occupied[t, cell]` the robot on `cell` at step t (-1 for nobody)."""

    def __init__(self, grid: Grid, rotation: bool, following: bool, window: int = WINDOW,
                 neighbourhood: int = NEIGHBOURHOOD, seed: int = 0) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 step, got {window}")
        self.grid = grid
        self.rotation = rotation
        self.following = following
        self.window = window
        self.neighbourhood = neighbourhood
        self.rng = random.Random(seed)
        self.ahead = np.ascontiguousarray(grid.ahead, dtype=np.int64)
        self.paths = np.zeros((0, window + 1), dtype=np.int64)
        self.turns = np.zeros((0, window + 1), dtype=np.int64)
        self.occupied = np.full((window + 1, grid.size), -1, dtype=np.int64)
        self._closed = np.zeros((window + 1) * grid.size * 8, dtype=np.int64)
        self._stamp = 0
        self._goals: list[int] = []
        self.iterations = 0
        self.improvements = 0

    def step(self, pibt: PIBT, cells: Sequence[int], headings: Sequence[int], goals: Sequence[int],
             tables: Sequence[Sequence[int]], priorities: Sequence[float], deadline: float) -> tuple[list[int], list[int]]:
        """The next (cells, headings) of all robots. `tables[i]` is the distance table robot
        i follows (flat, as `Grid.distance_list`); improvement stops at `deadline`
        (time.perf_counter())."""
        n, w = len(cells), self.window
        arrays = [np.asarray(t) for t in tables]
        start = np.asarray(cells, dtype=np.int64)
        if self.paths.shape[0] == n and np.array_equal(self.paths[:, 1], start) and (
                np.array_equal(self.turns[:, 1], np.asarray(headings))):
            self.paths[:, :-1] = self.paths[:, 1:]
            self.turns[:, :-1] = self.turns[:, 1:]
            self._extend(pibt, w, goals, tables, priorities)
        else:
            self.paths = np.zeros((n, w + 1), dtype=np.int64)
            self.turns = np.zeros((n, w + 1), dtype=np.int64)
            self.paths[:, 0] = start
            self.turns[:, 0] = headings
            for t in range(1, w + 1):
                self._extend(pibt, t, goals, tables, priorities)
        occupied = self.occupied
        occupied.fill(-1)
        robots = np.arange(n)
        for t in range(w + 1):
            occupied[t, self.paths[:, t]] = robots
        goal = np.asarray(goals, dtype=np.int64)
        costs = np.array([self._cost(i, goal[i], arrays[i]) for i in range(n)], dtype=np.int64)
        # What each robot would cost with nobody in its way (as far as its table knows).
        here = self.paths[:, 0] * 4 + self.turns[:, 0] if self.rotation else self.paths[:, 0]
        self._ideal = np.array([min(int(arrays[i][here[i]]), w) for i in range(n)], dtype=np.int64)
        # Robots whose goal changed since their path was planned come first, one by one.
        queue = [[i] for i in range(n) if i >= len(self._goals) or self._goals[i] != goals[i]]
        self.rng.shuffle(queue)
        self._goals = list(goals)
        while time.perf_counter() < deadline:
            group = queue.pop() if queue else self._neighbourhood(costs, goal, arrays)
            if not group:
                break
            self._improve(group, goal, arrays, costs)
        return self.paths[:, 1].tolist(), self.turns[:, 1].tolist()

    def _extend(self, pibt: PIBT, t: int, goals: Sequence[int], tables: Sequence[Sequence[int]],
                priorities: Sequence[float]) -> None:
        """Step t of the plan from step t - 1, by PIBT."""
        cells = self.paths[:, t - 1].tolist()
        heads = self.turns[:, t - 1].tolist()
        result = pibt.step(cells, heads, goals, priorities, guides=tables)
        assert result is not None  # nothing pinned: PIBT always finds a step
        self.paths[:, t] = result[0]
        self.turns[:, t] = result[1]

    def _cost(self, i: int, goal: int, table: np.ndarray) -> int:
        return _path_cost(self.paths[i], self.turns[i], goal, table, self.rotation)

    def _neighbourhood(self, costs: np.ndarray, goal: np.ndarray, tables: list[np.ndarray]) -> list[int]:
        """A robot chosen by its delay (cost over its distance left), and robots standing,
        at some step of the window, on the cells of its unhindered way."""
        n = len(costs)
        delay = np.maximum(costs - self._ideal, 0)
        total = int(delay.sum())
        if total == 0 or self.rng.random() < 0.2:
            return self.rng.sample(range(n), min(self.neighbourhood, n))
        pick = self.rng.random() * total
        i = int(np.searchsorted(np.cumsum(delay), pick, side="right"))
        i = min(i, n - 1)
        way = _free_way(self.ahead, tables[i], int(self.paths[i, 0]), int(self.turns[i, 0]), int(goal[i]),
                        self.window, self.rotation)
        seen = np.unique(self.occupied[:, way])
        others = [int(k) for k in seen if k >= 0 and k != i]
        self.rng.shuffle(others)
        return [i] + others[:self.neighbourhood - 1]

    def _improve(self, group: list[int], goal: np.ndarray, tables: list[np.ndarray], costs: np.ndarray) -> None:
        """Replan `group` one robot after the other; keep the new paths if they cost less."""
        self.iterations += 1
        w, steps = self.window, np.arange(self.window + 1)
        old_paths, old_turns = self.paths[group].copy(), self.turns[group].copy()
        old = int(costs[group].sum())
        for i in group:
            self.occupied[steps, self.paths[i]] = -1
        planned: list[tuple[int, int]] = []
        new = 0
        for i in self.rng.sample(group, len(group)):
            self._stamp += 1
            found = _plan_one(self.ahead, tables[i], self.rotation, self.following, int(self.paths[i, 0]),
                              int(self.turns[i, 0]), int(goal[i]), w, self.occupied, self.paths, self._closed,
                              self._stamp, NODE_LIMIT)
            if found is None:
                break
            cost, cells, heads = found
            self.paths[i], self.turns[i] = cells, heads
            self.occupied[steps, cells] = i
            planned.append((i, cost))
            new += cost
            if new >= old:
                break
        else:
            if new < old:
                self.improvements += 1
                for i, cost in planned:
                    costs[i] = cost
                return
        for i, _ in planned:
            self.occupied[steps, self.paths[i]] = -1
        self.paths[group], self.turns[group] = old_paths, old_turns
        for i in group:
            self.occupied[steps, self.paths[i]] = i


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
              rotation: bool) -> np.ndarray:
    """The cells of a robot's way down its table, ignoring everyone else, `steps` long at most."""
    way = np.empty(steps + 1, dtype=np.int64)
    way[0] = cell
    k = 1
    c, h = cell, heading
    for _ in range(steps):
        if c == goal:
            break
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
    return way[:k]


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
    b = occupied[t, v]
    if b >= 0:
        w = paths[b, nt]
        if w == c or occupied[t, w] >= 0:
            return False  # a swap, or following a robot that follows another
    return True


@numba.njit(cache=True)
def _plan_one(ahead: np.ndarray, table: np.ndarray, rotation: bool, following: bool, start: int, heading: int,
              goal: int, window: int, occupied: np.ndarray, paths: np.ndarray, closed: np.ndarray, stamp: int,
              node_limit: int):
    """A* for one robot over the window against everyone else's fixed paths: (cost, cells,
    headings), or None if no path keeps clear of them (a state's cost is the step it first
    reached the goal, else the step plus the distance left)."""
    size = ahead.shape[0]
    cell = np.empty(node_limit, dtype=np.int64)
    head = np.empty(node_limit, dtype=np.int64)
    step = np.empty(node_limit, dtype=np.int64)
    arrival = np.empty(node_limit, dtype=np.int64)  # -1: not arrived yet
    parent = np.empty(node_limit, dtype=np.int64)
    heap_key = np.empty(node_limit, dtype=np.int64)
    heap_node = np.empty(node_limit, dtype=np.int64)
    count, heap = 0, 0
    cell[0], head[0], step[0], parent[0] = start, heading, 0, -1
    arrival[0] = 0 if start == goal else -1
    first = table[start * 4 + heading] if rotation else table[start]
    heap_key[0] = (0 if start == goal else first) * (window + 2) + window
    heap_node[0] = 0
    count, heap = 1, 1
    found = -1
    moves = np.empty((5, 2), dtype=np.int64)
    while heap > 0:
        node = heap_node[0]
        key = heap_key[0]
        heap -= 1
        # sift down the last entry from the root
        lk, ln = heap_key[heap], heap_node[heap]
        p = 0
        while True:
            ch = 2 * p + 1
            if ch >= heap:
                break
            if ch + 1 < heap and heap_key[ch + 1] < heap_key[ch]:
                ch += 1
            if heap_key[ch] >= lk:
                break
            heap_key[p], heap_node[p] = heap_key[ch], heap_node[ch]
            p = ch
        if heap > 0:
            heap_key[p], heap_node[p] = lk, ln
        c, h, t = cell[node], head[node], step[node]
        arrived = 1 if arrival[node] >= 0 else 0
        state = ((t * size + c) * 4 + h) * 2 + arrived
        if closed[state] == stamp:
            continue
        closed[state] = stamp
        if t == window:
            found = node
            break
        k = 0
        moves[k, 0], moves[k, 1] = c, h
        k += 1
        if rotation:
            moves[k, 0], moves[k, 1] = c, (h + 1) % 4
            moves[k + 1, 0], moves[k + 1, 1] = c, (h + 3) % 4
            k += 2
            if ahead[c, h] >= 0:
                moves[k, 0], moves[k, 1] = ahead[c, h], h
                k += 1
        else:
            for d in range(4):
                if ahead[c, d] >= 0:
                    moves[k, 0], moves[k, 1] = ahead[c, d], 0
                    k += 1
        for m in range(k):
            v, nh = moves[m, 0], moves[m, 1]
            if not _may_stand(occupied, paths, following, c, v, t):
                continue
            nt = t + 1
            arr = arrival[node]
            if arr < 0 and v == goal:
                arr = nt
            if arr >= 0:
                f = arr
            else:
                left = table[v * 4 + nh] if rotation else table[v]
                if left >= UNREACHABLE:
                    continue
                f = nt + left
            a2 = 1 if arr >= 0 else 0
            if closed[((nt * size + v) * 4 + nh) * 2 + a2] == stamp:
                continue
            if count >= node_limit:
                return None
            cell[count], head[count], step[count], arrival[count], parent[count] = v, nh, nt, arr, node
            # Ties go to the deeper state: it is closer to a complete path.
            nk = f * (window + 2) + (window - nt)
            q = heap
            heap += 1
            while q > 0:
                up = (q - 1) // 2
                if heap_key[up] <= nk:
                    break
                heap_key[q], heap_node[q] = heap_key[up], heap_node[up]
                q = up
            heap_key[q], heap_node[q] = nk, count
            count += 1
    if found < 0:
        return None
    cells = np.empty(window + 1, dtype=np.int64)
    heads = np.empty(window + 1, dtype=np.int64)
    node = found
    while node >= 0:
        cells[step[node]] = cell[node]
        heads[step[node]] = head[node]
        node = parent[node]
    if arrival[found] >= 0:
        cost = arrival[found]
    else:
        last = cell[found] * 4 + head[found] if rotation else cell[found]
        cost = window + table[last]
    return cost, cells, heads
