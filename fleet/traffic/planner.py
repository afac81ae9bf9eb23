"""Lifelong planning: robots get new goals all the time and the floor changes under them.

Each call plans one step for every robot with PIBT. What makes it lifelong and fair:

- Priority is the number of steps since the robot last stood on its goal, plus a fixed
  random fraction that breaks ties. A robot that waits gains priority every step until
  it outranks everyone in its way; a robot on its goal drops to the fraction alone, so
  it yields to anyone passing. This is PIBT's rule, and its reachability theorem
  (Okumura et al. 2022, Thm. 2) rests on it. A goal moved on the way (a port's queue
  moving up) keeps the count: reset at each move-up, the robot at the head of a queue
  was pushed about for good by those waiting to enter behind it.
- Opt-in, `lag_after=N`: a robot that has gone N steps without getting closer to its
  goal also gains a step of priority for every further such step. Age alone ties every
  robot that has not reached its first goal yet (on a floor of 10,000 robots, thousands
  of them), and the fixed random fraction then ranks one robot under the same thousands
  for good: pushed off its way, it was kept off it for hundreds of steps. Off by default:
  it changes the warehouse's plans, whose station figures were measured without it.
- Stopped robots (faulted, offline, lifting) keep their cell: they are pinned and their
  cells are taken out of the floor for everyone else's distances, so others route
  around them rather than queue behind them.
- Loaded robots keep out of shelf cells, so the gaps between shelf blocks are one-wide
  aisles for them, and two loaded robots that meet head-on there can never pass: each has
  shelves beside it and, under traffic, a queue behind it. They drive those aisles one
  way only, in alternating directions (a hard rule for them, a soft preference for
  everyone else, who can duck under shelves).
- A goal that cannot be reached (operator block, a stopped robot standing on it or
  walling it off) is reported with the reason, and the robot holds position as a
  low-priority robot that anyone may push aside, instead of pushing in vain forever.
- Opt-in, `guidance="flow"`: robots follow guide paths planned round the other robots'
  guide paths (fleet/traffic/guidance.py) instead of the floor's fixed guidance.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

import networkx as nx
import numpy as np

from fleet.traffic.grid import UNREACHABLE, Grid
from fleet.traffic.guidance import CONTRAFLOW, CROWDING, TrafficFlow
from fleet.traffic.pibt import PIBT
from fleet.traffic.window import SEARCHES, TIME_CAP_MS, WindowedRefinement
from maps.model import Cell, Heading


#: Steps a robot stands still behind a robot shut in a dead end before that one makes way.
MAKE_WAY_AFTER = 2
#: Largest dead end (in cells) the make-way rule clears out.
POCKET = 8
#: Steps a robot stands still behind another before that one makes way wherever it stands,
#: not only in a dead end: two robots facing each other in a one-wide aisle, one of which
#: would have to turn before it could step aside (under a shelf, unloaded), each waited
#: for the other for good (FCFS, 8 h on the medium floor: 108 stuck tasks from 2.6 h on).
#: Long, so that it leaves waits in flowing traffic to PIBT (acting on every head-on wait
#: made jams, see `_make_way`); 30 was the one value measured (docs/traffic.md).
UNJAM_AFTER = 30
#: Priority added to a robot that has just lifted a shelf and stands on a storage cell.
#: Its only ways out are the aisle cells next to it; a robot standing on the one it needs
#: could go anywhere else, but if it outranks the loaded one it waits there for it to
#: move, and both wait for good. Outranking everyone, the loaded robot pushes it aside.
LEAVING_SHELF_CELL = 1e9
#: Priority (in steps of waiting) added to a robot leaving a port's working cell: the port
#: serves nobody on that line until it is gone, so traffic passing in front of the station
#: makes room for it. Bounded, unlike LEAVING_SHELF_CELL: with the same 1e9, the leavers of
#: all six ports of the medium floor outranked the robots that had waited longest in front
#: of them and the whole front jammed for two hours of eight (seed 0); of 100, 200 and 600,
#: 200 left the weakest station highest (docs/kpis.md).
LEAVING_WORKING_CELL = 200
#: What robots follow to their goals: "shortest", the floor's guidance table (streets,
#: lanes) per goal; "flow", guide paths that avoid the other robots' (TrafficFlow).
GUIDANCE = ("shortest", "flow")


class Detour(NamedTuple):
    """Where a robot making way goes, and for whom (see LifelongPlanner._make_way)."""

    spot: int
    waiter: int  # the robot it makes way for
    goal: int  # the waiter's goal: the detour ends with it
    waiter_cell: int  # where the waiter stood when this robot was last in its way
    aside: int  # steps this robot has stood off the waiter's way, waiting for it to move


@dataclass
class StepPlan:
    cells: list[int]
    headings: list[int]
    #: robot -> why its goal cannot be reached now
    blocked: dict[int, str] = field(default_factory=dict)


class LifelongPlanner:
    def __init__(self, grid: Grid, rotation: bool = False, following: bool = False, seed: int = 0,
                 shelf_cells: Iterable[int] = (), guidance: str = "shortest", lag_after: int | None = None,
                 window: int | None = None, window_searches: int = SEARCHES, window_ms: float = TIME_CAP_MS,
                 contraflow: int = CONTRAFLOW, crowding: int = CROWDING) -> None:
        if guidance not in GUIDANCE:
            raise ValueError(f"guidance must be one of {GUIDANCE}, got {guidance!r}")
        if contraflow < 0 or crowding < 0:
            raise ValueError(f"contraflow and crowding must be 0 or more, got {contraflow} and {crowding}")
        self._flow_weights = (contraflow, crowding)
        if lag_after is not None and lag_after < 0:
            raise ValueError(f"lag_after must be a number of steps (0 or more), got {lag_after}")
        self.lag_after = lag_after
        self.base = grid
        self.guidance = guidance
        #: Cells a loaded robot may not drive through (where shelves stand).
        self.shelf_cells = frozenset(shelf_cells)
        self.working_cells = frozenset(grid.index(c) for station in grid.map.stations for c in station.working)
        self._loaded_floors: dict[int, Grid] = {}
        #: Directions of the aisles between shelves, driven one way by loaded robots; None
        #: where one-way aisles would cut some cell off (then the lanes stay a preference).
        self._aisles = _one_way_aisles(grid, self.shelf_cells)
        self.rotation = rotation
        self.following = following
        self.seed = seed
        self._rng = random.Random(seed)
        self._operator_blocked: frozenset[int] = frozenset()
        #: Cells a shelf stands on now (set down, not carried), as far as anyone has said.
        self.standing: set[int] = set()
        self._stopped_cells: frozenset[int] = frozenset()
        self._floor_key: frozenset[int] = frozenset()  # the operator blocks self._floor was built with
        self._floor = grid
        self._pibt = PIBT(grid, rotation, following, seed)
        self._flow = self._traffic_flow()
        self.window_ms = window_ms
        self._window = WindowedRefinement(grid, rotation, following, window, window_searches, seed=seed) if (
            window is not None) else None
        self._since: list[int] = []
        self._tiebreak: list[float] = []
        #: Per robot: the goal its best distance is for, that best distance, and its lag,
        #: the steps since it last got closer than that (the lag_after rule; the routing
        #: benchmark's max_wait_steps measures the same thing, on its own).
        self._progress: list[tuple[int, int, int]] = []
        self._stall: list[int] = []  # steps each robot has stood still short of its goal
        self._last: list[int] = []  # each robot's cell at the previous plan
        self._detours: dict[int, Detour] = {}  # robot making way -> its detour

    # --- the floor --------------------------------------------------------------------
    def block(self, cells: Iterable[Cell]) -> None:
        """Operator: take cells out of service; plans through them change on the next step."""
        self._operator_blocked |= {self.base.index(c) for c in cells}

    def unblock(self, cells: Iterable[Cell]) -> None:
        self._operator_blocked -= {self.base.index(c) for c in cells}

    @property
    def floor(self) -> Grid:
        """The floor robots are planned on now (operator blocks and stopped robots removed)."""
        return self._floor

    def _refresh_floor(self, stopped_cells: frozenset[int]) -> None:
        if stopped_cells == self._stopped_cells and self._floor_key == self._operator_blocked:
            return
        self._stopped_cells = stopped_cells
        self._floor_key = self._operator_blocked
        self._floor = self.base.without(self._operator_blocked | stopped_cells) if (
            self._operator_blocked or stopped_cells) else self.base
        self._loaded_floors.clear()
        self._pibt = PIBT(self._floor, self.rotation, self.following, self._rng.randrange(2**31))
        self._flow = self._traffic_flow()
        if self._window is not None:
            counts = self._window.counts
            self._window = WindowedRefinement(self._floor, self.rotation, self.following, self._window.window,
                                              self._window.searches, seed=self._rng.randrange(2**31))
            self._window.counts = counts

    def _traffic_flow(self) -> TrafficFlow | None:
        """Guide paths on the floor as it is now (a changed floor starts them afresh)."""
        return TrafficFlow(self._floor, self.rotation, *self._flow_weights) if self.guidance == "flow" else None

    def loaded_floor(self, goal: int) -> Grid:
        """The floor for a robot carrying a shelf to `goal`: no shelf cells but the goal,
        and the aisles between shelves one way. One per goal, kept until the floor changes
        (there are few goals in play at once)."""
        opened = goal if goal in self.shelf_cells else -1  # to any other goal, one floor serves all
        floor = self._loaded_floors.get(opened)
        if floor is None:
            closed = self.shelf_cells - {goal}
            floor = self._floor.without(closed) if self._aisles is None else self._floor.one_way(closed, self._aisles)
            self._loaded_floors[opened] = floor
        return floor

    # --- planning ---------------------------------------------------------------------
    def plan(
        self,
        cells: Sequence[int],
        headings: Sequence[int],
        goals: Sequence[int],
        stopped: Iterable[int] = (),
        loaded: Iterable[int] = (),
        pinned: Iterable[int] = (),
    ) -> StepPlan:
        """One step for every robot. Robots in `loaded` carry a shelf: they keep to cells
        without shelves (`shelf_cells`), but for their goal. `stopped` robots (faulted,
        offline) are taken off the floor; `pinned` ones (busy for a few seconds: lifting,
        at a port) only stay where they are, so the floor and its distances stand."""
        n = len(cells)
        loaded = set(loaded)
        pinned = set(pinned)
        while len(self._since) < n:
            self._since.append(0)
            self._tiebreak.append(self._rng.random())
            self._progress.append((-1, 0, 0))
        stopped = set(stopped)
        stopped_cells = frozenset(cells[i] for i in stopped)
        self._refresh_floor(stopped_cells)
        floor = self._floor
        floor.prefetch((goals[i] for i in range(n) if i not in loaded), self.rotation, guided=True)
        blocked: dict[int, str] = {}
        targets = list(goals)
        priorities = [0.0] * n
        for i in range(n):
            if i in stopped or i in pinned:
                continue
            floor = self.loaded_floor(goals[i]) if i in loaded else None
            reason = self._unreachable(cells[i], goals[i], stopped, cells, floor)
            if reason:
                blocked[i] = reason
                targets[i] = cells[i]
            elif cells[i] != goals[i]:
                self._since[i] += 1
                priorities[i] = self._since[i] + self._tiebreak[i]
                if self.lag_after is not None:
                    priorities[i] += max(0, self._lag(i, cells[i], headings[i], goals[i], floor) - self.lag_after)
                if floor is not None and not floor.passable[cells[i]]:
                    priorities[i] += LEAVING_SHELF_CELL
                if cells[i] in self.working_cells:
                    priorities[i] += LEAVING_WORKING_CELL
                continue
            self._since[i] = 0
            priorities[i] = self._tiebreak[i]
        self._make_way(cells, goals, targets, priorities, stopped | pinned, blocked, loaded)
        fixed = {i: cells[i] for i in stopped | pinned}
        floors = [self.loaded_floor(targets[i]) if i in loaded else None for i in range(n)] if loaded else None
        guides = None
        if self._flow is not None:
            # Loaded robots keep their own floors' tables; robots making way or held where
            # they are follow their targets', not their goals'.
            guided = [i for i in range(n) if targets[i] == goals[i] and i not in loaded and i not in fixed]
            guides = self._flow.tables(cells, headings, goals, guided)
        if self._window is None:
            result = self._pibt.step(cells, headings, targets, priorities, fixed, floors, guides)
        else:
            tables = [t if t is not None else (floors[i] if floors and floors[i] else self._floor).distance_list(
                targets[i], self.rotation, True) for i, t in enumerate(guides or [None] * n)]
            deadline = time.perf_counter() + self.window_ms / 1000
            result = self._window.step(self._pibt, cells, headings, targets, tables, priorities, deadline, fixed,
                                       floors, loaded)
        if result is None:
            raise RuntimeError("stopped robots overlap: two robots report the same cell")
        return StepPlan(result[0], result[1], blocked)

    @property
    def window_searches(self) -> dict[str, int] | None:
        """Neighbourhoods the windowed search replanned, and how many of them it kept."""
        if self._window is None:
            return None
        return {"replanned": self._window.iterations, "kept": self._window.improvements}

    def _lag(self, i: int, cell: int, heading: int, goal: int, floor: Grid | None) -> int:
        """Steps robot i has gone without getting closer to its goal than it has been (by
        the guidance it follows on its floor), counting this one."""
        table = (floor or self._floor).distance_list(goal, self.rotation, True)
        left = table[cell * 4 + heading] if self.rotation else table[cell]
        was_for, best, lag = self._progress[i]
        self._progress[i] = (goal, left, 0) if was_for != goal or left < best else (goal, best, lag + 1)
        return self._progress[i][2]

    def _make_way(self, cells: Sequence[int], goals: Sequence[int], targets: list[int], priorities: list[float],
                  stopped: set[int], blocked: dict[int, str], loaded: set[int]) -> None:
        """A robot in a dead end (resting on its goal in a bay, a queue cell, under a
        shelf) cannot be pushed out by the robot that needs its cell: its only way out is
        through the pusher, and PIBT leaves both waiting forever. So when a robot has
        made no progress for MAKE_WAY_AFTER steps and a lower-priority robot is on its
        next cell, shut in a dead end behind it, that one is sent to the nearest free
        cell off the waiting robot's path, with a priority just above the waiter's (so
        the waiter is what gets pushed aside first), until it is off that path and the
        waiter has moved (at most UNJAM_AFTER steps aside). (Applied
        more widely, to any head-on wait, it was measured to turn dense traffic into
        jams: Kiva, 100 robots with rotation, 2000 steps: 2334 tasks against 3255.) After
        UNJAM_AFTER steps of waiting, the one in the way makes way wherever it stands."""
        n = len(cells)

        def floor(k: int) -> Grid | None:
            return self.loaded_floor(targets[k]) if k in loaded else None

        while len(self._stall) < n:
            self._stall.append(0)
            self._last.append(-1)
        occupant = {c: k for k, c in enumerate(cells)}
        for i in range(n):
            moving = cells[i] != goals[i] and i not in stopped and i not in blocked
            self._stall[i] = self._stall[i] + 1 if moving and cells[i] == self._last[i] else 0
            self._last[i] = cells[i]
        for j, detour in list(self._detours.items()):
            i, goal = detour.waiter, detour.goal
            if cells[i] == goal or goals[i] != goal or j in stopped or i in stopped:
                del self._detours[j]
                continue
            path = self.way(cells[i], targets[i], floor(i))
            if cells[j] in path:
                # The spot is chosen afresh each step: robots pushed about may have taken it.
                spot = self._spot(cells[j], set(path) | set(occupant), floor(j))
                if spot is None:
                    del self._detours[j]
                else:
                    self._detours[j] = Detour(spot, i, goal, cells[i], 0)
            elif cells[i] != detour.waiter_cell or detour.aside >= UNJAM_AFTER:
                del self._detours[j]  # the waiter got by (or waits on something else)
            else:
                # Aside, j stays until the waiter has moved: let go at once, a robot that
                # outranks the waiter stepped straight back into its way (the waiter may
                # not enter the cell in the step it is left) and both did so for good.
                self._detours[j] = detour._replace(spot=cells[j], aside=detour.aside + 1)
        for i in range(n):
            if self._stall[i] < MAKE_WAY_AFTER or i in self._detours:
                continue
            j = occupant.get(self.way(cells[i], targets[i], floor(i), limit=1)[-1])  # the robot on its next cell
            if j is None or j in stopped or j in self._detours or priorities[j] >= priorities[i]:
                continue
            if self._stall[i] < UNJAM_AFTER and not self._pocket(cells[j], cells[i]):
                continue  # j has other ways out: PIBT's pushing sorts it out
            path = self.way(cells[i], targets[i], floor(i))
            spot = self._spot(cells[j], set(path) | set(occupant), floor(j))
            if spot is not None:
                self._detours[j] = Detour(spot, i, goals[i], cells[i], 0)
        for j, detour in self._detours.items():
            targets[j] = detour.spot
            priorities[j] = priorities[detour.waiter] + 0.5

    def _pocket(self, cell: int, door: int) -> bool:
        """Whether `cell` lies in a small dead end (at most POCKET cells) whose only way
        out is through `door`: a bay, a queue lane, a one-cell niche."""
        seen, frontier = {cell}, [cell]
        while frontier:
            here = frontier.pop()
            for _, v in self._floor.moves[here]:
                if v != door and v not in seen:
                    if len(seen) >= POCKET:
                        return False
                    seen.add(v)
                    frontier.append(v)
        return True

    def way(self, cell: int, goal: int, floor: Grid | None = None, limit: int | None = None) -> list[int]:
        """A cheapest way from cell to goal (cell first), following the guidance table PIBT
        follows downhill on `floor` (the planner's own unless given, e.g. a loaded floor), at
        most `limit` steps; it ends early where no step leads closer (no way on)."""
        floor = floor or self._floor
        left, cost, moves = floor.cell_distance_list(goal, self.rotation, True), floor.cost_list, floor.moves
        path = [cell]
        steps = floor.size if limit is None else limit
        here = cell
        while here != goal and len(path) <= steps:
            step = _downhill(moves[here], cost, here * 4, left)
            if step < 0 or not left[step] < left[here]:
                break
            path.append(step)
            here = step
        return path

    def _spot(self, cell: int, taken: set[int], floor: Grid | None = None) -> int | None:
        """The free cell nearest to `cell` on `floor` (the planner's own unless given) that
        is not in `taken`."""
        floor = floor or self._floor
        table = floor.distances(cell).copy()
        table[list(taken)] = UNREACHABLE
        table[~floor.passable] = UNREACHABLE
        best = int(table.argmin())
        return best if table[best] < UNREACHABLE else None

    def _unreachable(self, cell: int, goal: int, stopped: set[int], cells: Sequence[int],
                     loaded_floor: Grid | None = None) -> str:
        if goal == cell:
            return ""
        if loaded_floor is not None and goal in self.standing:
            return f"goal {self.base.cell(goal)} has another shelf standing on it: a loaded robot cannot enter"
        if loaded_floor is None:
            if self._floor.reaches(goal, self.rotation)[cell]:
                return ""
        else:
            reach = loaded_floor.reaches(goal, self.rotation)
            # A robot that just lifted its shelf stands on a shelf cell: it leaves by a
            # free neighbour.
            if reach[cell] or any(reach[v] for _, v in self.base.moves[cell] if v not in self.shelf_cells or v == goal):
                return ""
            where = self.base.cell(goal)
            return f"goal {where} cannot be reached from {self.base.cell(cell)} by a loaded robot through free aisles"
        where = self.base.cell(goal)
        if goal in self._operator_blocked:
            return f"goal {where} is blocked by the operator"
        if not self.base.passable[goal]:
            return f"goal {where} is not a traversable cell"
        for j in stopped:
            if cells[j] == goal:
                return f"goal {where} is occupied by stopped robot {j}"
        if self.base.distances(goal)[cell] >= UNREACHABLE:
            return f"goal {where} cannot be reached from {self.base.cell(cell)} on this map"
        return f"goal {where} is cut off from {self.base.cell(cell)} by blocked cells or stopped robots"


def _downhill(moves: list[tuple[int, int]], cost: list[int], state: int, left: list[int]) -> int:
    """The neighbour (of `moves` from the cell whose first state is `state`, costed by the
    flat `cost`) cheapest to reach the goal through, the first of equals; -1 if none."""
    best, best_cost = -1, 0
    for d, v in moves:
        through = cost[state + d] + left[v]
        if best < 0 or through < best_cost:
            best, best_cost = v, through
    return best


def _one_way_aisles(grid: Grid, shelf_cells: frozenset[int]) -> np.ndarray | None:
    """The aisle directions loaded robots keep to, if every free cell can still reach every
    other one with the aisles one way (alternating directions need an even number of
    parallel aisles, or a wide road, to close each loop); otherwise None."""
    aisles = grid.without(shelf_cells).lanes
    if not shelf_cells or (aisles < 0).all():
        return None
    aisles = _along_the_ring(grid, shelf_cells, aisles)
    floor = grid.one_way(shelf_cells, aisles)
    roads = nx.DiGraph()
    free = np.nonzero(floor.passable)[0].tolist()
    roads.add_nodes_from(free)
    roads.add_edges_from((c, v) for c in free for _, v in floor.moves[c])
    return aisles if nx.is_strongly_connected(roads) else None


def _along_the_ring(grid: Grid, shelf_cells: frozenset[int], aisles: np.ndarray) -> np.ndarray:
    """The aisle row between a block of shelves and a one-way ring lane (the road in front
    of the stations) runs against that lane for loaded robots, along the block's length.
    Two-way, it was where loaded robots crossed the floor east-west, meeting head-on in
    front of the ports and blocking the robots leaving them; one way, it and the ring lane
    make a road with a lane each way (medium floor, 8 h, seeds 0 and 2: min station
    0.916 / 0.899 -> 0.957 / 0.957, docs/kpis.md). Turning off it into a shelf cell stays
    allowed: only moves against the direction are taken away."""
    aisles = aisles.copy()
    width, arrows = grid.width, grid.map.one_way
    spans: dict[int, tuple[int, int]] = {}  # row -> the first and last column with a shelf cell
    for cell in shelf_cells:
        y, x = divmod(cell, width)
        first, last = spans.get(y, (x, x))
        spans[y] = (min(first, x), max(last, x))
    for y, (first, last) in spans.items():
        for edge, lane in ((y + 1, y + 2), (y - 1, y - 2)):
            if edge in spans or not 0 <= lane < grid.height:
                continue
            flow = Counter(h for x in range(first, last + 1)
                           if (h := arrows.get(Cell(x, lane))) in (Heading.EAST, Heading.WEST))
            if not flow:
                continue
            against = int(flow.most_common(1)[0][0].opposite())
            for x in range(first, last + 1):
                if grid.passable[edge * width + x]:
                    aisles[edge * width + x] = against
    return aisles
