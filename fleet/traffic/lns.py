"""Anytime refinement of a one-shot plan: large neighbourhood search (MAPF-LNS).

LaCAM's first solution comes fast but is far from cheap: every robot follows PIBT's
greedy step, and without following each queue of robots also gets one-step gaps. MAPF-LNS
(Li et al., IJCAI 2021, "Anytime Multi-Agent Path Finding via Large Neighborhood
Search") spends the rest of the time limit improving it: take a few robots out (the
neighbourhood), plan them again one after the other against every other robot's path,
fixed, and keep the new paths if the sum of costs dropped (prioritized planning). Repeated
thousands of times, the plan converges towards the optimum.

Neighbourhoods come from four rules, picked adaptively by how much each has gained per
unit of search (ALNS): around the most delayed robot (who stands in its way, found by
random walks through space-time towards its goal), over the goal of the robot kept off
it longest (the robots that drive over it last; that robot is planned first), around a
crossing of aisles (who drives through it), and at random.

A replanned path obeys the same rules as the first solution: never two robots in one
cell, never a swap, and without following never entering a cell in the step before or
after another robot stands on it. With following allowed, a group of robots moving round
a cycle (each entering the cell the next one leaves) is legal in unit time but has no
first mover on a real floor; the search never makes the move that closes one.

One robot is planned by safe interval path planning (SIPP) with a weighted estimate,
compiled with numba: a search creates thousands of states, the loop numpy cannot
vectorise (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numba
import numpy as np

from fleet.traffic.grid import Grid

#: Robots replanned together. The paper's default is 8; at 400 robots on
#: warehouse-10-20-10-2-1, 4 improved faster than 2, 8 or 16 (docs/benchmarks.md).
NEIGHBOURHOOD = 4
#: How fast a rule's weight follows its recent gains (ALNS reaction factor).
REACTION = 0.1
#: A rule's weight never falls below this, so every rule keeps a chance. Late in the
#: search every rule gains little and sat at the earlier floor of 0.01, so the rules were
#: drawn alike although random neighbourhoods gained three times as much per second as
#: the goal rule (400 robots); at 0.001 the weights tell them apart (docs/benchmarks.md).
LEAST_WEIGHT = 0.001
#: Weight on the distance to the goal in the search's estimate (weighted A*). 1 is
#: plain A*, optimal per robot; but in a congested first plan a robot's best path waits
#: a hundred steps or more, every state under that cost is as promising, and one search
#: took 65 ms at 400 robots. A greedy estimate finds a good, not best, path in a
#: fraction of that. Measured at 400 robots, 30 s: 5 beat 1, 3, 10 and ALNS choosing
#: among 1, 2, 5 (docs/benchmarks.md).
GREED = 5
#: Nodes one space-time search may create before it gives up (memory: 28 bytes each).
NODE_LIMIT = 1_000_000
_NEVER = np.iinfo(np.int32).max
#: Bits of each of the three fields of a search node's key (arrival, step, distance).
_FIELD_BITS = 21


@dataclass
class Refinement:
    #: per robot, its cells from step 0 until it reaches its goal for good
    paths: list[np.ndarray]
    sum_of_costs: int
    iterations: int  # neighbourhoods replanned
    improvements: int  # of which kept


class LargeNeighbourhoodSearch:
    """Holds a solution as a space-time occupancy table and improves it in place.

    `occupied[cell, t]` is the robot standing on `cell` at step t (-1 for nobody) while
    it is under way (a cell's timeline is contiguous: the search scans it);
    `resting[cell]` is the step from which a robot that has arrived for good stands on
    it (its goal) forever; `position[robot, t]` is where a robot stands at step t (-1
    while it is being replanned), for the cycle rule.
    """

    def __init__(
        self, grid: Grid, goals: Sequence[int], paths: Sequence[Sequence[int]], following: bool = False,
        seed: int = 0, neighbourhood: int = NEIGHBOURHOOD,
    ) -> None:
        self.grid = grid
        self.goals = np.asarray(goals, dtype=np.int64)
        self.following = following
        self.rng = random.Random(seed)
        self.size = min(neighbourhood, len(goals))
        self.paths = [_trimmed(np.asarray(p, dtype=np.int64), g) for p, g in zip(paths, goals)]
        self.heuristics = [grid.distances(int(g)) for g in goals]
        self.lower = np.array([h[p[0]] for h, p in zip(self.heuristics, self.paths)], dtype=np.int64)
        #: Each robot's cost (len(path) - 1), kept by _place: summing 400 path lengths
        #: in Python for every neighbourhood was a tenth of the refinement's time.
        self.costs = np.zeros(len(self.paths), dtype=np.int64)
        makespan = max(len(p) for p in self.paths)
        # Room for paths to grow: a replanned robot may wait longer than it did before.
        self.horizon = 2 * makespan + 64
        self.occupied = np.full((grid.size, self.horizon), -1, dtype=np.int32)
        self.resting = np.full(grid.size, _NEVER, dtype=np.int32)
        self.position = np.full((len(self.paths), self.horizon), -1, dtype=np.int32)
        for robot in range(len(self.paths)):
            self._place(robot)
        self._stamp = np.zeros(self.horizon * grid.size, dtype=np.int32)
        self._mark = 0
        self._node_cell = np.empty(NODE_LIMIT, dtype=np.int32)
        self._node_parent = np.empty(NODE_LIMIT, dtype=np.int32)
        self._node_step = np.empty(NODE_LIMIT, dtype=np.int32)
        self._node_end = np.empty(NODE_LIMIT, dtype=np.int32)
        self._best = np.zeros(self.horizon * grid.size, dtype=np.int32)
        self._keys = np.empty(NODE_LIMIT, dtype=np.int64)
        self._items = np.empty(NODE_LIMIT, dtype=np.int32)
        degree = (grid.ahead >= 0).sum(axis=1)
        self._crossings = np.nonzero(grid.passable & (degree >= 3))[0]
        self._crossing_set = set(self._crossings.tolist())
        self._rules = (self._around_delayed, self._over_goal, self._around_crossing, self._at_random)
        self.weights = [1.0] * len(self._rules)
        self._spent = np.zeros(1, dtype=np.int64)  # search nodes created: effort, without a clock
        self._tabu = np.zeros(len(self.paths), dtype=bool)  # delayed robots picked lately
        self._goal_tabu = np.zeros(len(self.paths), dtype=bool)  # robots kept off their goals picked lately

    @property
    def sum_of_costs(self) -> int:
        return int(self.costs.sum())

    def run(self, out_of_time: Callable[[], bool]) -> Refinement:
        """Improve until `out_of_time()`, or until every robot drives a shortest way (the
        lower bound: nothing left to gain)."""
        iterations = improvements = 0
        bound = int(self.lower.sum())
        while len(self.paths) > 1 and self.sum_of_costs > bound and not out_of_time():
            rule = self.rng.choices(range(len(self._rules)), weights=self.weights)[0]
            group, lead = self._rules[rule]()
            # A rule that finds no neighbourhood (nobody is kept off a goal) gains
            # nothing: left at its weight, it was drawn nearly every time at 100 robots.
            credit = 0.0
            if len(group) >= 2:
                iterations += 1
                before = int(self._spent[0])
                gain = self._replan(group, lead)
                improvements += gain > 0
                # Credit is gain per thousand search nodes: a rule whose neighbourhoods
                # gain less but are searched in a tenth of the time is the better buy.
                credit = gain / ((int(self._spent[0]) - before) / 1000 + len(group))
            self.weights[rule] = (1 - REACTION) * self.weights[rule] + REACTION * credit
            self.weights[rule] = max(self.weights[rule], LEAST_WEIGHT)
        return Refinement(list(self.paths), self.sum_of_costs, iterations, improvements)

    # --- one neighbourhood --------------------------------------------------------
    def _replan(self, group: list[int], lead: bool = False) -> int:
        """Replan `group` in random order, or its first robot first if `lead`; keep the new
        paths if cheaper. Returns the gain."""
        old = {r: self.paths[r] for r in group}
        old_cost = sum(len(p) - 1 for p in old.values())
        for r in group:
            self._lift(r)
        # Robots not yet replanned still stand on their starts at step 0, so nobody is
        # planned into them there.
        for r in group:
            self.occupied[old[r][0], 0] = r
        if lead:
            group[1:] = self.rng.sample(group[1:], len(group) - 1)
        else:
            self.rng.shuffle(group)
        budget = old_cost - 1 - int(self.lower[group].sum())
        new: dict[int, np.ndarray] = {}
        for r in group:
            budget += int(self.lower[r])
            start = int(old[r][0])
            self.occupied[start, 0] = -1
            latest = min(budget, self.horizon - 2)
            path = _space_time_astar(self.grid.ahead, self.heuristics[r], self.occupied, self.resting, start,
                                     int(self.goals[r]), self.following, GREED, latest, self._stamp,
                                     self._best, self._next_mark(), self.position, self._node_cell,
                                     self._node_parent, self._node_step, self._node_end, self._keys, self._items,
                                     self._spent)
            if len(path) == 0:
                break
            new[r] = path
            self.paths[r] = path
            self._place(r)
            budget -= len(path) - 1
        if len(new) < len(group):
            for r in group:
                if r in new:
                    self._lift(r)
                self.occupied[old[r][0], 0] = -1
            for r in group:
                self.paths[r] = old[r]
                self._place(r)
            return 0
        return old_cost - sum(len(new[r]) - 1 for r in group)

    def _next_mark(self) -> int:
        self._mark += 1
        if self._mark == _NEVER:
            self._stamp[:] = 0
            self._mark = 1
        return self._mark

    def _place(self, robot: int) -> None:
        path = self.paths[robot]
        self.occupied[path, np.arange(len(path))] = robot
        self.resting[path[-1]] = len(path) - 1
        self.position[robot, : len(path)] = path
        self.position[robot, len(path):] = path[-1]
        self.costs[robot] = len(path) - 1

    def _lift(self, robot: int) -> None:
        path = self.paths[robot]
        self.occupied[path, np.arange(len(path))] = -1
        self.resting[path[-1]] = _NEVER
        self.position[robot] = -1

    # --- neighbourhood rules ------------------------------------------------------
    def _around_delayed(self) -> tuple[list[int], bool]:
        """The most delayed robot (not picked lately) and whoever stands where it could
        have driven: random walks through space-time that would still arrive earlier."""
        robot = _most(self.costs - self.lower, self._tabu)
        if robot < 0:
            return [], False
        group = {robot}
        cost, table = len(self.paths[robot]) - 1, self.heuristics[robot]
        for _ in range(10 * self.size):
            if len(group) >= self.size:
                break
            t = self.rng.randrange(cost)
            cell = int(self.paths[robot][t])
            while t < cost and len(group) < self.size:
                options = [cell] + [v for _, v in self.grid.moves[cell]]
                options = [v for v in options if t + 1 + table[v] < cost]
                if not options:
                    break
                cell, t = self.rng.choice(options), t + 1
                for step in (t - 1, t, t + 1) if not self.following else (t,):
                    other = self._standing(step, cell)
                    if other >= 0:
                        group.add(other)
        return list(group), False

    def _over_goal(self) -> tuple[list[int], bool]:
        """The robot kept off its goal longest by others driving over it (not picked
        lately), planned first, and the last of those others. A robot rests on its goal
        for good, so it cannot arrive before the last robot crossing it has gone; on
        one-wide aisles that was most of the delay left at 400 robots (docs/traffic.md),
        and random walks towards the goal rarely meet robots that cross it much later."""
        gap = 1 if self.following else 2  # a robot may stand on a cell this many steps after another
        last = _last_crossings(self.occupied, self.goals, int(self.costs.max()))
        robot = _most(np.minimum(self.costs - self.lower, last + gap - self.lower), self._goal_tabu)
        if robot < 0:
            return [], False
        timeline = self.occupied[self.goals[robot]]
        group = [robot]
        # those on the goal at a step that keeps the robot from arriving by its lower bound
        for step in range(int(last[robot]), max(int(self.lower[robot]) - gap, -1), -1):
            other = int(timeline[step])
            if other >= 0 and other not in group:
                group.append(other)
                if len(group) == self.size:
                    break
        return group, True

    def _around_crossing(self) -> tuple[list[int], bool]:
        """Robots that drive through the crossings of aisles near a random one."""
        if not len(self._crossings):
            return self._at_random()
        crossings = self._crossing_set
        first = int(self.rng.choice(self._crossings))
        frontier, visited, robots = [first], {first}, set()
        while frontier and len(robots) < 2 * self.size:
            cell = frontier.pop(0)
            if cell in crossings:
                timeline = self.occupied[cell]
                robots.update(np.unique(timeline[timeline >= 0]).tolist())
            for _, v in self.grid.moves[cell]:
                if v not in visited and len(visited) < 200:
                    visited.add(v)
                    frontier.append(v)
        robots = list(robots)
        return self.rng.sample(robots, min(self.size, len(robots))), False

    def _at_random(self) -> tuple[list[int], bool]:
        return self.rng.sample(range(len(self.paths)), self.size), False

    def _standing(self, t: int, cell: int) -> int:
        if t < 0 or t >= self.horizon:
            return -1
        who = int(self.occupied[cell, t])
        if who < 0 and t >= self.resting[cell]:
            who = int(np.nonzero(self.goals == cell)[0][0])
        return who


def _most(scores: np.ndarray, tabu: np.ndarray) -> int:
    """The robot with the highest positive score that `tabu` does not mark (it is marked
    now), so that a rule's neighbourhoods go round the worst robots instead of retrying
    one that cannot be helped; once all are marked, the marks are cleared. -1 if no
    robot scores above 0."""
    robot = int(np.argmax(np.where(tabu, 0, scores)))
    if scores[robot] <= 0 or tabu[robot]:
        tabu[:] = False
        robot = int(np.argmax(scores))
        if scores[robot] <= 0:
            return -1
    tabu[robot] = True
    return robot


def refine(
    grid: Grid, goals: Sequence[int], configurations: Sequence[Sequence[int]], out_of_time: Callable[[], bool],
    following: bool = False, seed: int = 0,
) -> Refinement:
    """Improve a solution given as configurations (one per step, every robot's cell)
    until `out_of_time()`; the result is never costlier than the input."""
    per_robot = np.asarray(configurations, dtype=np.int64).T
    return LargeNeighbourhoodSearch(grid, goals, per_robot, following, seed).run(out_of_time)


def configurations(paths: Sequence[np.ndarray]) -> np.ndarray:
    """(steps + 1, robots) cells, every robot held on its goal after it arrives."""
    makespan = max(len(p) for p in paths)
    return np.stack([np.concatenate((p, np.full(makespan - len(p), p[-1]))) for p in paths], axis=1)


def _trimmed(path: np.ndarray, goal: int) -> np.ndarray:
    """The path up to the step after which the robot never leaves its goal again."""
    away = np.nonzero(path != goal)[0]
    return path[: (away[-1] + 2 if len(away) else 1)]


def warm_up() -> None:
    """Load the compiled search now, so that the first refinement is not charged for it."""
    ahead = np.full((1, 4), -1, dtype=np.int64)
    table = np.full((1, 4), -1, dtype=np.int32)
    nodes = [np.empty(4, dtype=np.int32) for _ in range(4)]
    _space_time_astar(ahead, np.zeros(1, dtype=np.int32), table, np.full(1, _NEVER, dtype=np.int32), 0, 0, False,
                      1, 2, np.zeros(4, dtype=np.int32), np.zeros(4, dtype=np.int32), 1, table, *nodes,
                      np.empty(4, dtype=np.int64), np.empty(4, dtype=np.int32), np.zeros(1, dtype=np.int64))
    _last_crossings(table, np.zeros(1, dtype=np.int64), 1)


@numba.njit(cache=True)
def _last_crossings(occupied: np.ndarray, goals: np.ndarray, makespan: int) -> np.ndarray:
    """Per robot, the last step another robot stands on its goal (-1 if nobody does);
    nobody is under way after `makespan`."""
    last = np.full(goals.size, -1, dtype=np.int64)
    for robot in range(goals.size):
        timeline = occupied[goals[robot]]
        for t in range(min(makespan, timeline.size - 1), -1, -1):
            if timeline[t] >= 0 and timeline[t] != robot:
                last[robot] = t
                break
    return last


@numba.njit(cache=True)
def _busy(occupied: np.ndarray, resting: np.ndarray, cell: int, t: int) -> bool:
    if t < 0:
        return False
    if t >= resting[cell]:
        return True
    return t < occupied.shape[1] and occupied[cell, t] >= 0


@numba.njit(cache=True)
def _free(occupied: np.ndarray, resting: np.ndarray, following: bool, cell: int, t: int) -> bool:
    """May a robot stand on `cell` at step t? Without following nobody may stand there
    one step before (we would follow) or after (they would follow us); that also rules
    out swaps."""
    if _busy(occupied, resting, cell, t):
        return False
    return following or not (_busy(occupied, resting, cell, t - 1) or _busy(occupied, resting, cell, t + 1))


@numba.njit(cache=True)
def _free_until(occupied: np.ndarray, resting: np.ndarray, following: bool, cell: int, t: int, cap: int) -> int:
    """The last step of the safe interval of `cell` that contains step t (t must be
    free), or `cap` if the interval reaches it. A tight scan of the cell's timeline:
    this runs for every state the search creates."""
    row = occupied[cell]
    stop = min(resting[cell], row.size, cap + 2)
    busy = t + 1
    while busy < stop and row[busy] < 0:
        busy += 1
    return min(busy - 1 if following else busy - 2, cap)


@numba.njit(cache=True)
def _closes_cycle(occupied: np.ndarray, position: np.ndarray, cell: int, nxt: int, arrive: int) -> bool:
    """With following: would moving from `cell` to `nxt` (arriving at step `arrive`)
    close a chain of robots, each entering the cell the next one leaves, back onto
    `cell`? Two robots swapping is the shortest such chain. Legal in unit time, but
    such a group has no first mover on a real floor."""
    here = nxt
    for _ in range(position.shape[0]):
        robot = occupied[here, arrive - 1]
        if robot < 0:
            return False
        there = position[robot, arrive]
        if there < 0 or there == here:
            return False  # not planned yet, or standing (then it is a vertex conflict)
        if there == cell:
            return True
        here = there
    return False


@numba.njit(cache=True)
def _push(keys: np.ndarray, items: np.ndarray, count: int, key: np.int64, item: int) -> int:
    i = count
    keys[i], items[i] = key, item
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        items[parent], items[i] = items[i], items[parent]
        i = parent
    return count + 1


@numba.njit(cache=True)
def _pop(keys: np.ndarray, items: np.ndarray, count: int) -> int:
    """The item with the smallest key; the heap then holds `count - 1`."""
    top = items[0]
    count -= 1
    keys[0], items[0] = keys[count], items[count]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= count:
            break
        if child + 1 < count and keys[child + 1] < keys[child]:
            child += 1
        if keys[i] <= keys[child]:
            break
        keys[i], keys[child] = keys[child], keys[i]
        items[i], items[child] = items[child], items[i]
        i = child
    return top


@numba.njit(cache=True)
def _key(arrival: int, step: int, near: int) -> np.int64:
    """Earliest arrival first; among equals the state nearer the goal, then the later
    step. Nearer before later matters when the goal is crossed late by others: then
    every state's estimate is that crossing, and going by step explored the whole floor
    before heading for the goal to wait there."""
    mask = (1 << _FIELD_BITS) - 1
    return (np.int64(arrival) << (2 * _FIELD_BITS)) | (np.int64(min(near, mask)) << _FIELD_BITS) | (mask - step)


@numba.njit(cache=True)
def _space_time_astar(
    ahead: np.ndarray, heuristic: np.ndarray, occupied: np.ndarray, resting: np.ndarray, start: int, goal: int,
    following: bool, greed: int, latest: int, stamp: np.ndarray, best: np.ndarray, mark: int,
    position: np.ndarray, node_cell: np.ndarray, node_parent: np.ndarray, node_step: np.ndarray,
    node_end: np.ndarray, keys: np.ndarray, items: np.ndarray, spent: np.ndarray,
) -> np.ndarray:
    """Cheapest path from `start` at step 0 to standing on `goal` for good, arriving by
    step `latest`, that avoids every robot in the tables; empty if there is none.

    Safe interval path planning (SIPP, Phillips and Likhachev 2011): a state is a cell
    and one of its safe intervals (a run of steps in which the robot may stand there),
    reached at its earliest step; waiting is folded into the moves. Plain space-time A*
    over (cell, step) created a million states (0.4 s) for one robot at 400 robots whose
    goal another robot crosses late: every state arriving before that is as promising.
    The arrival estimate is never below the step after another robot last stands on
    the goal. `greed` > 1 weighs the distance to the goal more (weighted A*): the path
    is then good rather than best, and found far sooner; the bound `latest` is always
    checked with the true distance. Nodes created are added to `spent[0]`."""
    size, steps = occupied.shape
    last = -1  # the last step another robot stands on the goal: arrive after it
    for t in range(steps):
        if occupied[goal, t] >= 0:
            last = t
    empty = np.empty(0, dtype=np.int64)
    if resting[goal] != np.iinfo(np.int32).max or max(heuristic[start], last + 1) > latest:
        return empty
    if not _free(occupied, resting, following, start, 0):
        return empty
    cap = min(latest + 1, steps - 1)  # intervals reaching past the latest arrival are all alike
    end = _free_until(occupied, resting, following, start, 0, cap)
    node_cell[0], node_parent[0], node_step[0], node_end[0] = start, -1, 0, end
    nodes = 1
    stamp[end * size + start], best[end * size + start] = mark, 0
    count = _push(keys, items, 0, _key(max(greed * heuristic[start], last + 1), 0, heuristic[start]), 0)
    while count:
        node = _pop(keys, items, count)
        count -= 1
        t, cell, end = node_step[node], node_cell[node], node_end[node]
        if best[end * size + cell] < t:
            continue  # reached earlier by another way
        if cell == goal and t > last:
            path = np.empty(t + 1, dtype=np.int64)
            while node >= 0:
                parent = node_parent[node]
                since = node_step[parent] if parent >= 0 else 0
                path[since:t] = node_cell[parent] if parent >= 0 else cell
                path[t] = node_cell[node]
                node, t = parent, since
            spent[0] += nodes
            return path
        for h in range(4):
            nxt = ahead[cell, h]
            if nxt < 0:
                continue
            # Leave at any step of this interval; one successor per safe interval of nxt.
            arrive = t + 1
            leave_by = min(end + 1, resting[nxt] - (1 if following else 2), latest - heuristic[nxt])
            while arrive <= leave_by:
                if not _free(occupied, resting, following, nxt, arrive):
                    arrive += 1
                    continue
                if following and _closes_cycle(occupied, position, cell, nxt, arrive):
                    arrive += 1
                    continue
                until = _free_until(occupied, resting, following, nxt, arrive, cap)
                state = until * size + nxt
                if stamp[state] != mark or arrive < best[state]:
                    if nodes >= node_cell.size:
                        spent[0] += nodes
                        return empty
                    stamp[state], best[state] = mark, arrive
                    node_cell[nodes], node_parent[nodes], node_step[nodes], node_end[nodes] = nxt, node, arrive, until
                    estimate = max(arrive + greed * heuristic[nxt], last + 1)
                    count = _push(keys, items, count, _key(estimate, arrive, heuristic[nxt]), nodes)
                    nodes += 1
                arrive = until + 2  # until + 1 is not free
    spent[0] += nodes
    return empty
