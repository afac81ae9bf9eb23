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
#: Quarter turns from heading h to heading d, indexed by d - h (a negative index wraps
#: round, as the headings do).
_TURNS = (0, 1, 2, 1)


class PIBT:
    def __init__(
        self, grid: Grid, rotation: bool = False, following: bool = False, seed: int = 0, swap: bool = True
    ) -> None:
        self.grid = grid
        self.rotation = rotation
        self.following = following
        self.swap = swap
        self.rng = random.Random(seed)
        self._cost = grid.cost.tolist()
        self._ahead = grid.ahead.tolist()
        self._occupant = [_FREE] * grid.size  # who stands on a cell now
        self._reserved = [_FREE] * grid.size  # who stands on it after this step
        # The goals the distance tables were fetched for: LaCAM asks hundreds of steps
        # towards the same goals, and fetching 400 tables each step cost a tenth of it.
        self._tables_for: list[int] | None = None

    def step(
        self,
        cells: Sequence[int],
        headings: Sequence[int],
        goals: Sequence[int],
        priorities: Sequence[float],
        fixed: dict[int, int] | None = None,
        floors: Sequence[Grid | None] | None = None,
        guides: Sequence[Sequence[int] | None] | None = None,
    ) -> tuple[list[int], list[int]] | None:
        """Next (cells, headings) of all robots, or None if a pinned move is impossible.

        `floors[i]`, if given, is robot i's own floor: its distances are measured on it
        and it moves only as that floor allows. A loaded robot's floor has no shelf cells
        but its goal, and one-way aisles; off that floor (on the storage cell where it
        has just lifted its shelf) it may only step onto it. `guides[i]`, if given, is
        the distance table robot i follows instead of its floor's guidance table (laid
        out as `Grid.distance_list`), such as one that steers round traffic."""
        n = len(cells)
        if sys.getrecursionlimit() < 4 * n + 1000:
            sys.setrecursionlimit(4 * n + 1000)  # a push chain can run through every robot
        self._cells, self._headings, self._goals = cells, headings, goals
        self._next = [_FREE] * n
        self._next_heading = list(headings)
        grid, rotation = self.grid, self.rotation
        if floors or guides:
            self._tables = [t if t is not None else (f or grid).distance_list(g, rotation, True)
                            for f, g, t in zip(floors or [None] * n, goals, guides or [None] * n)]
            self._tables_for = None
        elif self._tables_for is None or list(goals) != self._tables_for:
            self._tables = [grid.distance_list(g, rotation, True) for g in goals]
            self._tables_for = list(goals)
        self._floors = floors or [None] * n
        occupant, reserved = self._occupant, self._reserved
        for i, c in enumerate(cells):
            occupant[c] = i
        try:
            if fixed and not self._pin(fixed):
                return None
            for i in sorted(range(n), key=priorities.__getitem__, reverse=True):
                if self._next[i] == _FREE:
                    self._plan(i, None)
            if self.rotation and self.following:
                self._hold_turners()
            if fixed and self.following and not self._acyclic():
                return None
            if fixed and len(set(self._next)) < n:
                return None  # a pinned robot's cell was needed by a robot that could not move
            return list(self._next), self._next_heading
        finally:
            for c in cells:
                occupant[c] = _FREE
            for c in self._next:
                if c >= 0:
                    reserved[c] = _FREE

    def _hold_turners(self) -> None:
        """With rotation and following: a robot whose chosen cell is not straight ahead
        turns and stays, so whoever planned to follow it into its cell stays too, and so
        on back along the chain (chains are acyclic, see _plan_following)."""
        cells, nxt = self._cells, self._next
        entering = {v: i for i, v in enumerate(nxt) if v != cells[i]}
        held = [i for v, i in entering.items() if self._ahead[cells[i]][self._headings[i]] != v]
        for i in held:
            self._turn_towards(i, nxt[i])
        while held:
            i = held.pop()
            self._reserved[nxt[i]] = _FREE
            nxt[i] = cells[i]
            k = entering.get(cells[i])
            if k is not None and nxt[k] != cells[k]:
                held.append(k)

    def _acyclic(self) -> bool:
        """No cycle of robots each entering the cell the next one leaves: such a rotation
        is legal in unit time but has no first mover, so no real floor can execute it."""
        cells, occupant, nxt = self._cells, self._occupant, self._next
        done = [False] * len(cells)
        for start in range(len(cells)):
            path = []
            i = start
            while not done[i] and nxt[i] != cells[i] and occupant[nxt[i]] != _FREE:
                done[i] = True
                path.append(i)
                i = occupant[nxt[i]]
                if i == start:
                    return False
            for k in path:
                done[k] = True
        return True

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
                if self.rotation and self._ahead[c][self._headings[i]] != v:
                    return False
            reserved[v] = i
            self._next[i] = v
        # A pinned robot that stays must not be entered; one that leaves must not be
        # swapped with: both are enforced because its cell is occupied or reserved.
        return True

    # --- costs -------------------------------------------------------------------------
    def _options(self, i: int) -> tuple[list[int], int]:
        """Cells to try, in order, and the swap partner (-1 if none)."""
        options = [v for *_, v in self._candidates(i)]
        # The swap needs its pull (the partner entering the cell the leader leaves in the
        # same step); without following, the planner's make-way rule does this job.
        partner = self._swap_partner(i, options[0]) if self.swap and self.following else -1
        if partner >= 0:
            options.reverse()
        return options, partner

    def _candidates(self, i: int) -> list[tuple[int, float, int, int]]:
        """(cost, random draw, position, cell) of every cell robot i could aim for, best
        first: ties on cost go in a fresh random order each time, and the position (staying
        first, then the moves in heading order) settles a tie of draws as a stable sort
        would."""
        c = self._cells[i]
        table, cost = self._tables[i], self._cost[c]
        moves = self.grid.moves[c]
        floor = self._floors[i]
        if floor is not None:
            moves = floor.moves[c] if floor.passable[c] else [(d, v) for d, v in moves if floor.passable[v]]
        draw = self.rng.random
        if self.rotation:
            h = self._headings[i]
            options = [(table[c * 4 + h] + 1, draw(), 0, c)]
            for k, (d, v) in enumerate(moves, 1):
                options.append((_TURNS[d - h] + cost[d] + table[v * 4 + d], draw(), k, v))
        else:
            options = [(table[c] + 1, draw(), 0, c)]
            for k, (d, v) in enumerate(moves, 1):
                options.append((cost[d] + table[v], draw(), k, v))
        options.sort()
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
            left, right = (h + 1) % 4, (h + 3) % 4
            to_left, to_right = table[c * 4 + left], table[c * 4 + right]
            if min(to_left, to_right) < table[c * 4 + h]:
                self._next_heading[i] = left if to_left <= to_right else right

    # --- corridor swaps (LaCAM3's swap operation, Okumura 2023) ----------------------------
    # Two robots that must pass each other in a one-wide corridor defeat plain PIBT: the
    # stronger pushes the weaker back, the weaker returns, forever. When a swap is both
    # required (one is in the other's way all along the corridor) and possible (there is a
    # place further on where two robots fit side by side), the stronger robot turns round
    # and leads the weaker one out to that place instead of pushing against it.
    def _cell_table(self, i: int) -> list[int]:
        """Robot i's distance to its goal from every cell (from the best heading with
        rotation): the corridor walks below read it cell after cell."""
        if self.rotation:
            return (self._floors[i] or self.grid).cell_distance_list(self._goals[i], True, True)
        return self._tables[i]

    def _branches(self, v: int, behind: int) -> tuple[int, int]:
        """Ways on from v, not counting `behind` nor a dead end where a robot sits on its
        goal; and one such way."""
        moves, occupant, goals = self.grid.moves, self._occupant, self._goals
        count, way = 0, -1
        for _, u in moves[v]:
            if u == behind:
                continue
            a = occupant[u]
            if a >= 0 and len(moves[u]) == 1 and goals[a] == u:
                continue
            count, way = count + 1, u
        return count, way

    def _swap_required(self, pusher: int, puller: int, v_pusher: int, v_puller: int) -> bool:
        if all(u != v_pusher for _, u in self.grid.moves[v_puller]):
            # A one-way step: the puller can never come through the pusher's cell, so
            # leading it out gains nothing. On a crowded one-way floor the leader was led
            # round a block of four cells for good (docs/traffic.md, the liveness argument).
            return False
        pushing, pulled = self._cell_table(pusher), self._cell_table(puller)
        start = v_pusher
        while pushing[v_puller] < pushing[v_pusher]:
            count, way = self._branches(v_puller, v_pusher)
            if count >= 2:
                return False
            if count == 0:
                break
            v_pusher, v_puller = v_puller, way
            if v_puller == start:
                break
        return pulled[v_pusher] < pulled[v_puller] and (pushing[v_pusher] == 0 or pushing[v_puller] < pushing[v_pusher])

    def _swap_possible(self, v_pusher: int, v_puller: int) -> bool:
        origin = v_pusher
        while v_puller != origin:
            count, way = self._branches(v_puller, v_pusher)
            if count >= 2:
                return True
            if count == 0:
                return False
            v_pusher, v_puller = v_puller, way
        return False

    def _swap_partner(self, i: int, best: int) -> int:
        """The robot i must lead out of a corridor to let it pass, or -1."""
        c = self._cells[i]
        if best == c:
            return -1
        j = self._occupant[best]
        if j >= 0 and self._next[j] == _FREE and self._swap_required(i, j, c, best) and self._swap_possible(best, c):
            return j
        for _, u in self.grid.moves[c]:
            k = self._occupant[u]
            if k < 0 or u == best:
                continue
            if self._swap_required(k, i, c, best) and self._swap_possible(best, c):
                return k
        return -1

    # --- the recursion ----------------------------------------------------------------
    def _plan(self, i: int, parent: int | None) -> int:
        if self.following:
            return self._plan_following(i, parent)
        cells, occupant, reserved, nxt = self._cells, self._occupant, self._reserved, self._next
        c = cells[i]
        nxt[i] = _BUSY
        waiting_cost, waiting_for = None, c
        for cost, _, _, v in self._candidates(i):
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
            if self.rotation and self._ahead[c][self._headings[i]] != v:
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
        if parent is None and c == self._goals[i] and reserved[c] == _FREE:
            # On its goal and not pushed: staying is its best option (every move costs a
            # step more), so its options need no ranking. Over half of the robots planned
            # in a step of a one-shot plan are such robots.
            nxt[i] = c
            reserved[c] = i
            return STUCK
        nxt[i] = _BUSY
        options, partner = self._options(i)
        for rank, v in enumerate(options):
            if reserved[v] != _FREE:
                continue
            j = occupant[v]
            if j != _FREE and j != i and (nxt[j] == c or nxt[j] == _BUSY):
                continue  # a swap, or a rotation of a cycle of robots (nobody could go first)
            if parent is not None and v == c:
                continue
            reserved[v] = i  # i stays _BUSY until j is out of the way: nobody may enter c meanwhile
            if j != _FREE and j != i and nxt[j] == _FREE and self._plan(j, i) == STUCK:
                continue  # j stays on v and has taken v's reservation back
            nxt[i] = v
            if rank == 0 and partner >= 0 and nxt[partner] == _FREE and v != c and reserved[c] == _FREE:
                nxt[partner] = c  # pull the partner along behind
                reserved[c] = partner
            return MOVED if v != c else STUCK
        nxt[i] = c
        reserved[c] = i
        return STUCK
