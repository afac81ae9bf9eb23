"""Traffic control: the one authority that lets robots move.

The planner proposes; this module commits. Its rule is simple enough to check by eye:

    A robot physically occupies only cells it holds, and a cell is held by one robot at
    a time.

A robot holds the cell it last reported (its QR code) plus the cells granted to it
ahead, which it may drive through without asking again (in VDA 5050 terms: its released
base). It gives a cell back when it reports reading the code of the next one, not when
the clock says it should have got there: a late robot delays others, it never meets them.

Granting works in rounds. Each round the planner plans a short window of steps for all
robots from the end of what they already hold (PIBT, fleet/traffic/planner.py), and a
robot is granted its next planned cells, in order, while each is free and the robot is
the first in this round's plan to visit it. The second condition is the action
dependency ordering of Hönig et al. (2019): the order in which robots pass a cell is
the plan's order, whatever their speeds, so delays change when things happen, never
whether the robots deadlock. Grants never reach more than `max_ahead` cells beyond a
robot's position, so the plan stays free to change.

A stopped robot (faulted, offline, busy lifting or at a port) keeps every cell it holds,
and those cells are taken out of the floor for everyone else's planning until it moves
again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from fleet.traffic.grid import Grid
from fleet.traffic.planner import LifelongPlanner
from maps.model import Cell, Heading, WarehouseMap


class TrafficError(ValueError):
    """Misuse of traffic control: an unknown robot, a cell that is not on the floor."""


@dataclass
class Traveller:
    """What traffic control knows of one robot."""

    robot_id: str
    index: int
    cell: int  # the cell it last reported
    heading: int
    goal: int
    granted: deque[tuple[int, int]] = field(default_factory=deque)  # (cell, heading) ahead, in order
    stopped: bool = False
    blocked_reason: str = ""

    def end(self) -> tuple[int, int]:
        return self.granted[-1] if self.granted else (self.cell, self.heading)

    def held(self) -> list[int]:
        return [self.cell] + [c for c, _ in self.granted]


@dataclass(frozen=True)
class Grant:
    """Newly granted states for one robot, in driving order."""

    robot_id: str
    steps: tuple[tuple[Cell, Heading], ...]


class TrafficControl:
    def __init__(self, wmap: WarehouseMap, *, rotation: bool = True, window: int = 3, max_ahead: int = 4,
                 seed: int = 0) -> None:
        if window < 1 or max_ahead < 1:
            raise ValueError("window and max_ahead must be at least 1")
        self.grid = Grid.from_map(wmap)
        self.planner = LifelongPlanner(self.grid, rotation=rotation, seed=seed)
        self.rotation = rotation
        self.window = window
        self.max_ahead = max_ahead
        self._robots: dict[str, Traveller] = {}
        self._order: list[Traveller] = []
        self._holder: dict[int, str] = {}
        self._operator_blocked: set[int] = set()
        self._planner_blocked: set[int] = set()

    # --- robots -------------------------------------------------------------------------
    def add_robot(self, robot_id: str, cell: Cell, heading: Heading) -> None:
        c = self._cell(cell)
        if robot_id in self._robots:
            raise TrafficError(f"robot {robot_id!r} is already under traffic control")
        if c in self._holder:
            raise TrafficError(f"cell {cell} is already held by robot {self._holder[c]!r}")
        robot = Traveller(robot_id, len(self._order), c, int(heading), c)
        self._robots[robot_id] = robot
        self._order.append(robot)
        self._holder[c] = robot_id

    def robot(self, robot_id: str) -> Traveller:
        try:
            return self._robots[robot_id]
        except KeyError:
            raise TrafficError(f"unknown robot {robot_id!r}") from None

    def set_goal(self, robot_id: str, cell: Cell) -> None:
        robot = self.robot(robot_id)
        robot.goal = self._cell(cell)
        robot.blocked_reason = ""

    def set_stopped(self, robot_id: str, stopped: bool) -> None:
        """A stopped robot is planned as standing still, and keeps what it holds."""
        self.robot(robot_id).stopped = stopped

    def reached(self, robot_id: str, cell: Cell, heading: Heading) -> list[Cell]:
        """The robot read the code of `cell`: hand back the cells it has left.

        Returns the released cells. A report of a cell the robot neither holds nor was
        granted means the robot is not where traffic control put it; that is raised,
        never papered over, because every other grant depends on it.
        """
        robot = self.robot(robot_id)
        c = self._cell(cell)
        if c == robot.cell:
            robot.heading = int(heading)
            while robot.granted and robot.granted[0][0] == c:
                robot.granted.popleft()
            return []
        if c not in (g for g, _ in robot.granted):
            raise TrafficError(
                f"robot {robot_id!r} reports {cell}, which it was not granted "
                f"(at {self.grid.cell(robot.cell)}, granted {[str(self.grid.cell(g)) for g, _ in robot.granted]})")
        released = [robot.cell]
        while robot.granted[0][0] != c:
            passed, _ = robot.granted.popleft()
            if passed != robot.cell:
                released.append(passed)
        while robot.granted and robot.granted[0][0] == c:
            robot.granted.popleft()
        robot.cell, robot.heading = c, int(heading)
        still = set(robot.held())
        out = []
        for r in released:
            if r not in still and self._holder.get(r) == robot_id:
                del self._holder[r]
                out.append(self.grid.cell(r))
        return out

    def withdraw(self, robot_id: str) -> list[Cell]:
        """Take back grants the robot has not used (its job was cancelled at a cell
        centre, so it stands on its last reported cell). Returns the freed cells."""
        robot = self.robot(robot_id)
        freed = [g for g, _ in robot.granted if g != robot.cell and self._holder.get(g) == robot_id]
        for g in freed:
            del self._holder[g]
        robot.granted.clear()
        return [self.grid.cell(g) for g in freed]

    # --- the floor ----------------------------------------------------------------------
    def block(self, cells: Iterable[Cell]) -> None:
        """Operator: no robot is planned through these cells from the next round on.
        A robot already holding one keeps it (it is driving through, or standing there)."""
        self._operator_blocked |= {self._cell(c) for c in cells}

    def unblock(self, cells: Iterable[Cell]) -> None:
        self._operator_blocked -= {self._cell(c) for c in cells}

    def holder(self, cell: Cell) -> str | None:
        return self._holder.get(self._cell(cell))

    def held_cells(self, robot_id: str) -> list[Cell]:
        return [self.grid.cell(c) for c in self.robot(robot_id).held()]

    def arrived(self, robot_id: str) -> bool:
        robot = self.robot(robot_id)
        return robot.cell == robot.goal and not robot.granted

    # --- planning -----------------------------------------------------------------------
    def plan(self) -> list[Grant]:
        """One round: plan a window from everyone's granted end, grant what is safe."""
        robots = self._order
        if not robots:
            return []
        self._refresh_blocks()
        cells = [r.end()[0] if not r.stopped else r.cell for r in robots]
        headings = [r.end()[1] if not r.stopped else r.heading for r in robots]
        goals = [r.goal for r in robots]
        stopped = [r.index for r in robots if r.stopped]
        paths: list[list[tuple[int, int]]] = [[] for _ in robots]
        first_visit: dict[int, tuple[int, int]] = {}  # cell -> (step, robot index)
        for t in range(1, self.window + 1):
            step = self.planner.plan(cells, headings, goals, stopped)
            for i, r in enumerate(robots):
                r.blocked_reason = step.blocked.get(i, "")
                if step.cells[i] != cells[i] and step.cells[i] not in first_visit:
                    first_visit[step.cells[i]] = (t, i)
                if step.cells[i] != cells[i] or step.headings[i] != headings[i]:
                    paths[i].append((step.cells[i], step.headings[i]))
            cells, headings = step.cells, step.headings
        grants = []
        for i, r in enumerate(robots):
            if r.stopped or not paths[i]:
                continue
            new = self._grant(r, paths[i], first_visit)
            if new:
                grants.append(Grant(r.robot_id, tuple((self.grid.cell(c), Heading(h)) for c, h in new)))
        return grants

    def _grant(self, robot: Traveller, path: list[tuple[int, int]], first_visit: dict[int, tuple[int, int]]) -> list:
        new = []
        ahead = len({c for c, _ in robot.granted} - {robot.cell})
        prev = robot.end()[0]
        for c, h in path:
            if c != prev:
                if ahead >= self.max_ahead:
                    break
                if c in self._holder or first_visit.get(c, (0, robot.index))[1] != robot.index:
                    break
                self._holder[c] = robot.robot_id
                ahead += 1
                prev = c
            new.append((c, h))
            robot.granted.append((c, h))
        return new

    def _refresh_blocks(self) -> None:
        """Cells nobody may be planned into: operator blocks, and what stopped robots hold
        beyond the cell they stand on (the planner pins the robot on that one)."""
        wanted = set(self._operator_blocked)
        for r in self._order:
            if r.stopped:
                wanted |= {c for c, _ in r.granted if c != r.cell}
        if wanted != self._planner_blocked:
            self.planner.unblock(self.grid.cell(c) for c in self._planner_blocked - wanted)
            self.planner.block(self.grid.cell(c) for c in wanted - self._planner_blocked)
            self._planner_blocked = wanted

    def _cell(self, cell: Cell) -> int:
        try:
            c = self.grid.index(cell)
        except ValueError as exc:
            raise TrafficError(str(exc)) from None
        if not self.grid.passable[c]:
            raise TrafficError(f"cell {cell} is not traversable")
        return c
