"""Guide paths around traffic: a robot's way to its goal avoids the ways the others took.

PIBT looks one step ahead. Each robot following its own shortest way sends many robots
down the same few aisles, half of them head-on, and no amount of pushing sorts out a
gap between shelf blocks that robots enter from both ends. Traffic flow optimisation
(Chen, Harabor, Li and Stuckey, AAAI 2024) plans, when a robot gets a goal, a guide path
whose moves cost more where other robots' guide paths already run:

- contraflow: a move costs more for every guide path that makes the opposite move
  (those robots would meet this one head-on);
- crowding: a move costs more for every guide path through the cell it enters.

PIBT then ranks a robot's next cells by that congestion-aware distance to the goal
instead of the plain one. The robot's guide path is the cheapest way down that table,
so a robot on it follows it, and one pushed off it heads down the same table, back
towards the way the traffic left it. A robot's moves stop counting towards the flow
as it makes them, and all of them when it gets a new goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fleet.traffic.grid import UNREACHABLE, Grid

#: Cost added to a move per guide path making the opposite move.
CONTRAFLOW = 4
#: Cost added to a move per this many guide paths through the cell it enters.
CROWDING = 3
#: A guide table's value for states it cannot reach (or farther than that): guide tables
#: take 2 bytes a state, as every robot keeps its own, and at 10,000 robots on 500 x 140
#: 4 bytes a state came to 11 GB on top of the goals' own tables.
GUIDE_FAR = int(np.iinfo(np.uint16).max)


@dataclass
class _Route:
    """One robot's guide path: the moves (cell, heading) it still has to make, from
    `done` on, and the congestion-aware distances to its goal it follows."""

    goal: int
    cells: list[int]  # the path's cells, the robot's at the time first
    moves: list[tuple[int, int]]  # moves[k] leaves cells[k] (turns are not moves)
    table: memoryview  # flat, cell * 4 + heading with rotation, 2 bytes a state (GUIDE_FAR: out of reach)
    done: int = 0


class TrafficFlow:
    """Guide paths of a fleet on one floor, and how many of them use each move."""

    def __init__(self, floor: Grid, rotation: bool, contraflow: int = CONTRAFLOW, crowding: int = CROWDING) -> None:
        self.floor = floor
        self.rotation = rotation
        self.contraflow = contraflow
        self.crowding = crowding
        #: Guide paths still to make each move (cell, heading).
        self.flow = np.zeros((floor.size, 4), dtype=np.int32)
        #: Guide paths still to enter each cell.
        self.entering = np.zeros(floor.size, dtype=np.int32)
        self._routes: dict[int, _Route] = {}
        # The cell a move (cell, heading) reaches (0 where there is none: masked by `_moves`).
        self._target = np.maximum(floor.ahead, 0)
        self._moves = floor.ahead >= 0
        self._reverse = (np.arange(4) + 2) % 4

    def tables(self, cells: Sequence[int], headings: Sequence[int], goals: Sequence[int],
               robots: Sequence[int]) -> list[Sequence[int] | None]:
        """Per robot, the distance table it follows (flat, indexed like `Grid.distance_list`),
        None for robots not in `robots`. A robot with a new goal gets a new guide path; the
        others' paths lose the moves they have made."""
        tables: list[Sequence[int] | None] = [None] * len(cells)
        for i in robots:
            route = self._routes.get(i)
            if route is not None and route.goal == goals[i]:
                self._advance(route, cells[i])
            else:
                if route is not None:
                    self._count(route.moves[route.done:], -1)
                route = self._routes[i] = self._route(cells[i], headings[i], goals[i])
            tables[i] = route.table
        return tables

    def congestion(self) -> np.ndarray:
        """Cost of every move (cell, heading) for a new guide path: the floor's own cost plus
        the contraflow and crowding it would add to."""
        flow, target = self.flow, self._target
        against = flow[target, self._reverse[np.newaxis, :]]
        cost = self.floor.cost + self.contraflow * against
        if self.crowding:
            cost += self.entering[target] // self.crowding
        return np.where(self._moves, cost, 1).astype(np.int32)

    def _route(self, cell: int, heading: int, goal: int) -> _Route:
        floor, cost = self.floor, self.congestion()
        seeds = [goal * 4 + h for h in range(4)] if self.rotation else [goal]
        table = floor.search(seeds, [0] * len(seeds), cost, self.rotation)
        cells, moves = [cell], []
        here, h = cell, heading
        left = table[here, h] if self.rotation else table[here]
        while left > 0 and left < UNREACHABLE:
            step, after, left = self._downhill(table, cost, here, h)
            if step < 0:
                break
            if step == here:  # a quarter turn on the spot
                h = after
                continue
            moves.append((here, after))
            cells.append(step)
            here, h = step, after
        route = _Route(goal, cells, moves, memoryview(np.minimum(table.reshape(-1), GUIDE_FAR).astype(np.uint16)))
        self._count(moves, 1)
        return route

    def _downhill(self, table: np.ndarray, cost: np.ndarray, cell: int, heading: int) -> tuple[int, int, int]:
        """The cheapest next step down `table` from (cell, heading): (next cell, heading
        after, distance left), a turn being a step that stays; (-1, heading, left) if none."""
        ahead = self.floor.ahead[cell]
        if self.rotation:
            best = (-1, heading, int(table[cell, heading]))
            v = int(ahead[heading])
            if v >= 0 and cost[cell, heading] + table[v, heading] == best[2]:
                return v, heading, int(table[v, heading])
            for turned in ((heading + 1) % 4, (heading + 3) % 4):
                if 1 + table[cell, turned] == best[2]:
                    return cell, turned, int(table[cell, turned])
            return best
        for h in range(4):
            v = int(ahead[h])
            if v >= 0 and cost[cell, h] + table[v] == table[cell]:
                return v, h, int(table[v])
        return -1, heading, int(table[cell])

    def _advance(self, route: _Route, cell: int) -> None:
        """Release the moves the robot has made: it stands on a later cell of its path."""
        if route.cells[route.done] == cell:
            return
        try:
            reached = route.cells.index(cell, route.done + 1)
        except ValueError:
            return  # pushed off its path: the moves ahead may still be made
        self._count(route.moves[route.done:reached], -1)
        route.done = reached

    def _count(self, moves: Sequence[tuple[int, int]], sign: int) -> None:
        for cell, h in moves:
            self.flow[cell, h] += sign
            self.entering[self._target[cell, h]] += sign
