"""One planning step for every robot at once: Priority Inheritance with Backtracking.

PIBT (Okumura et al., AIJ 2022) decides each robot's next cell in priority order. A
robot that wants a cell held by a lower-priority robot lends it its priority: the lower
one is planned at once, with the sole aim of getting out of the way, and if it cannot,
the higher one tries its next-best cell (backtracking). Work per step is linear in the
number of robots, which is what makes hundreds to thousands of robots plannable in
Python.

Two rules of our floor change the textbook algorithm:

- No following (the default): a robot may not enter a cell in the same step another
  robot leaves it, so a cell occupied now is never a move target. Priority inheritance
  still pays: the occupant is pushed out now and the robot behind waits one step, so a
  blocked chain unwinds from its free end (a "caterpillar" with one-cell gaps). With
  following allowed the textbook rule applies (move into a cell being vacated).
- Rotation (League of Robot Runners action model): a robot moves only forward. The
  planner still chooses cells, costed by the distance over (cell, heading) states, and
  a robot whose chosen cell is not ahead of it turns towards it this step instead
  ("turn, then go"), holding its cell. Without following, a robot that turns holds
  only its own cell, so nobody behind can be caught out by a robot that did not leave.

`fixed` pins some robots' next cell (LaCAM's constraints); pinned robots are placed
first and are never pushed.
"""

from __future__ import annotations

import random
import sys
from typing import Sequence

from fleet.traffic.grid import Grid

# Outcomes of planning one robot.
STUCK, WAITING, MOVED = 0, 1, 2
_FREE = -1
_BUSY = -2  # being planned: may not be pushed again in the same chain


class PIBT:
    def __init__(self, grid: Grid, rotation: bool = False, following: bool = False, seed: int = 0) -> None:
        if rotation and following:
            raise ValueError("following is not supported together with rotation: a robot that turns instead "
                             "of leaving would be run into by the robot following it")
        self.grid = grid
        self.rotation = rotation
        self.following = following
        self.rng = random.Random(seed)
        self._cost = grid.cost.tolist()
        self._occupant = [_FREE] * grid.size  # who stands on a cell now
        self._reserved = [_FREE] * grid.size  # who stands on it after this step

    def step(
        self,
        cells: Sequence[int],
        headings: Sequence[int],
        goals: Sequence[int],
        priorities: Sequence[float],
        fixed: dict[int, int] | None = None,
    ) -> tuple[list[int], list[int]] | None:
        """Next (cells, headings) of all robots, or None if a pinned move is impossible."""
        n = len(cells)
        if sys.getrecursionlimit() < 4 * n + 1000:
            sys.setrecursionlimit(4 * n + 1000)  # a push chain can run through every robot
        self._cells, self._headings = cells, headings
        self._next = [_FREE] * n
        self._next_heading = list(headings)
        self._tables = [self.grid.distances(g, oriented=self.rotation, guided=True).ravel() for g in goals]
        occupant, reserved = self._occupant, self._reserved
        for i, c in enumerate(cells):
            occupant[c] = i
        try:
            if fixed and not self._pin(fixed):
                return None
            for i in sorted(range(n), key=priorities.__getitem__, reverse=True):
                if self._next[i] == _FREE:
                    self._plan(i, None)
            return list(self._next), self._next_heading
        finally:
            for c in cells:
                occupant[c] = _FREE
            for c in self._next:
                if c >= 0:
                    reserved[c] = _FREE

    def _pin(self, fixed: dict[int, int]) -> bool:
        cells, occupant, reserved = self._cells, self._occupant, self._reserved
        for i, v in fixed.items():
            c = cells[i]
            if reserved[v] != _FREE:
                return False
            if v != c:
                if v not in (w for _, w in self.grid.moves[c]):
                    return False
                j = occupant[v]
                if j != _FREE and (not self.following or self._next[j] == c):
                    return False
                if self.rotation and self.grid.ahead[c, self._headings[i]] != v:
                    return False
            reserved[v] = i
            self._next[i] = v
        # A pinned robot that stays must not be entered; one that leaves must not be
        # swapped with: both are enforced because its cell is occupied or reserved.
        return True

    # --- costs -------------------------------------------------------------------------
    def _candidates(self, i: int) -> list[tuple[int, int]]:
        """(cost, cell) of every cell robot i could aim for, best first, ties shuffled."""
        c = self._cells[i]
        table, cost = self._tables[i], self._cost
        if self.rotation:
            h = self._headings[i]
            stay = int(table[c * 4 + h]) + 1
            options = [(stay, c)]
            for d, v in self.grid.moves[c]:
                turns = (d - h) % 4
                options.append((min(turns, 4 - turns) + cost[c][d] + int(table[v * 4 + d]), v))
        else:
            options = [(int(table[c]) + 1, c)] + [(cost[c][d] + int(table[v]), v) for d, v in self.grid.moves[c]]
        self.rng.shuffle(options)
        options.sort(key=lambda o: o[0])
        return options

    def _turn_towards(self, i: int, v: int) -> None:
        c, h = self._cells[i], self._headings[i]
        for d, w in self.grid.moves[c]:
            if w == v:
                self._next_heading[i] = d if (d - h) % 2 == 1 else (h + 1) % 4 if d != h else h
                return

    def _settle(self, i: int) -> None:
        """Robot i stays; with rotation it turns to face the best way out meanwhile."""
        c = self._cells[i]
        self._next[i] = c
        self._reserved[c] = i
        if self.rotation:
            table, h = self._tables[i], self._headings[i]
            best = min((h, (h + 1) % 4, (h + 3) % 4), key=lambda d: table[c * 4 + d])
            if table[c * 4 + best] < table[c * 4 + h]:
                self._next_heading[i] = best

    # --- the recursion ----------------------------------------------------------------
    def _plan(self, i: int, parent: int | None) -> int:
        if self.following:
            return self._plan_following(i, parent)
        cells, occupant, reserved, nxt = self._cells, self._occupant, self._reserved, self._next
        c = cells[i]
        nxt[i] = _BUSY
        waiting_cost, waiting_for = None, c
        for cost, v in self._candidates(i):
            if waiting_cost is not None and cost > waiting_cost:
                break
            if v == c:
                if parent is None:
                    break
                continue
            if reserved[v] != _FREE or (parent is not None and v == cells[parent]):
                continue
            j = occupant[v]
            if j != _FREE:
                # Occupied now: never a target this step, but worth clearing for the next.
                if (nxt[j] == _FREE and self._plan(j, i) != STUCK or nxt[j] >= 0 and nxt[j] != v) and (
                    waiting_cost is None
                ):
                    waiting_cost, waiting_for = cost, v
                continue
            if self.rotation and self.grid.ahead[c, self._headings[i]] != v:
                self._turn_towards(i, v)
                nxt[i] = c
                reserved[c] = i
                return WAITING
            nxt[i] = v
            reserved[v] = i
            return MOVED
        if waiting_cost is not None:
            nxt[i] = c
            reserved[c] = i
            if self.rotation:
                self._turn_towards(i, waiting_for)
            return WAITING
        self._settle(i)
        return STUCK

    def _plan_following(self, i: int, parent: int | None) -> int:
        cells, occupant, reserved, nxt = self._cells, self._occupant, self._reserved, self._next
        c = cells[i]
        nxt[i] = _BUSY
        for _, v in self._candidates(i):
            if reserved[v] != _FREE:
                continue
            j = occupant[v]
            if j != _FREE and j != i and nxt[j] == c:
                continue  # swap
            if parent is not None and v == c:
                continue
            nxt[i] = v
            reserved[v] = i
            if j != _FREE and j != i and nxt[j] == _FREE and self._plan(j, i) == STUCK:
                continue  # j stays on v and has taken v's reservation back
            return MOVED if v != c else STUCK
        nxt[i] = c
        reserved[c] = i
        return STUCK
