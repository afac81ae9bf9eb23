"""Traffic control: the one authority that lets robots move.

The planner proposes; the reservation table (fleet/traffic/reservations.py) commits.
The rule that keeps robots apart is simple enough to check by eye:

    A robot physically occupies only cells it holds, and a cell is held by one robot at
    a time.

A robot holds the cell it last reported (its QR code) plus the cells granted to it
ahead, which it may drive through without asking again (in VDA 5050 terms: its released
base). It gives a cell back when it reports reading the code of the next one, not when
the clock says it should have got there: a late robot delays others, it never meets them.

Granting works in rounds. Each round drops every visit not yet granted, lets the planner
(PIBT, fleet/traffic/planner.py) plan a short window for all robots from the end of
what they hold, commits that window to the table, whose queues keep the plan's order
of visits per cell (Hönig et al. 2019), and grants each robot what the queues allow,
never more than `max_ahead` cells beyond its position, so the plan stays free to change.
Re-planning from what is held each round is what keeps execution live when robots are
late: no robot waits on a visit of a plan that has since changed.

A stopped robot (faulted, offline, busy lifting or at a port) keeps every cell it holds,
and those cells are taken out of the floor for everyone else's planning until it moves
again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from fleet.traffic.grid import Grid
from fleet.traffic.planner import LifelongPlanner
from fleet.traffic.reservations import ReservationError, ReservationTable
from maps.model import Cell, CellKind, Heading, WarehouseMap


class TrafficError(ValueError):
    """Misuse of traffic control: an unknown robot, a cell that is not on the floor, a
    report of a cell the robot was never granted."""


@dataclass
class Traveller:
    """What traffic control knows of one robot beyond what the table holds."""

    robot_id: str
    index: int
    heading: int  # heading at the end of what it holds
    goal: Cell
    stopped: bool = False
    busy: bool = False
    loaded: bool = False
    blocked_reason: str = ""


@dataclass(frozen=True)
class Grant:
    """Cells newly granted to one robot, in driving order."""

    robot_id: str
    cells: tuple[Cell, ...]


class TrafficControl:
    def __init__(self, wmap: WarehouseMap, *, rotation: bool = True, window: int = 3, max_ahead: int = 4,
                 seed: int = 0) -> None:
        if window < 1 or max_ahead < 1:
            raise ValueError("window and max_ahead must be at least 1")
        self.grid = Grid.from_map(wmap)
        #: Every cell of the floor by index: plans come back as indices, the table takes Cells.
        self._cells = [self.grid.cell(c) for c in range(self.grid.size)]
        # Shelves stand on storage cells; a loaded robot keeps out of every one of them
        # but its goal (one whose shelf is away is avoided too: it is rarely a shortcut).
        shelf_cells = [self.grid.index(c) for c in wmap.cells_of(CellKind.STORAGE)]
        self.planner = LifelongPlanner(self.grid, rotation=rotation, seed=seed, shelf_cells=shelf_cells)
        self.table = ReservationTable({})
        self.rotation = rotation
        self.window = window
        self.max_ahead = max_ahead
        self._robots: dict[str, Traveller] = {}
        self._order: list[Traveller] = []
        self._operator_blocked: set[Cell] = set()
        self._planner_blocked: set[Cell] = set()

    # --- robots -------------------------------------------------------------------------
    def add_robot(self, robot_id: str, cell: Cell, heading: Heading) -> None:
        self._check(cell)
        if robot_id in self._robots:
            raise TrafficError(f"robot {robot_id!r} is already under traffic control")
        try:
            self.table.add_robot(robot_id, cell)
        except ReservationError as exc:
            raise TrafficError(str(exc)) from None
        robot = Traveller(robot_id, len(self._order), int(heading), cell)
        self._robots[robot_id] = robot
        self._order.append(robot)

    def robot(self, robot_id: str) -> Traveller:
        try:
            return self._robots[robot_id]
        except KeyError:
            raise TrafficError(f"unknown robot {robot_id!r}") from None

    def set_goal(self, robot_id: str, cell: Cell) -> None:
        robot = self.robot(robot_id)
        robot.goal = self._check(cell)
        robot.blocked_reason = ""

    def set_stopped(self, robot_id: str, stopped: bool) -> None:
        """A stopped robot is planned as standing still, and keeps what it holds."""
        self.robot(robot_id).stopped = stopped

    def set_busy(self, robot_id: str, busy: bool) -> None:
        """A busy robot (lifting, at a port) stays where it is for a few seconds: it is
        not moved, but unlike a stopped one it is not taken off the floor."""
        self.robot(robot_id).busy = busy

    def set_loaded(self, robot_id: str, loaded: bool) -> None:
        """A robot carrying a shelf is planned through free aisles only."""
        self.robot(robot_id).loaded = loaded

    def reached(self, robot_id: str, cell: Cell, heading: Heading) -> list[Cell]:
        """The robot read the code of `cell`: hand back the cells it has left.

        A report of a cell the robot was not granted means the robot is not where traffic
        control put it; that is raised, never papered over, as every grant depends on it.
        """
        robot = self.robot(robot_id)
        try:
            freed = self.table.reached(robot_id, cell)
        except ReservationError as exc:
            raise TrafficError(str(exc)) from None
        if self.table.held(robot_id) == [cell]:
            robot.heading = int(heading)
        return freed

    def turned(self, robot_id: str, heading: Heading) -> None:
        """The robot turned on the spot: plans start from its new heading."""
        self.robot(robot_id).heading = int(heading)

    # --- the floor ----------------------------------------------------------------------
    def shelf_set_down(self, cell: Cell) -> None:
        """A shelf now stands on `cell`: a loaded robot sent there is reported blocked,
        not granted a cell it cannot enter (traffic control does not otherwise know which
        storage cells hold a shelf; the scheduler must not send one there)."""
        self.planner.standing.add(self.grid.index(self._check(cell)))

    def shelf_lifted(self, cell: Cell) -> None:
        self.planner.standing.discard(self.grid.index(self._check(cell)))

    def block(self, cells: Iterable[Cell]) -> set[str]:
        """Operator: no robot is planned through or granted these cells from now on. A
        robot already granted one keeps it. Returns the robots whose plan crossed them."""
        cells = {self._check(c) for c in cells}
        self._operator_blocked |= cells
        return {str(r) for r in self.table.block(cells)}

    def unblock(self, cells: Iterable[Cell]) -> None:
        cells = {self._check(c) for c in cells}
        self._operator_blocked -= cells
        self.table.unblock(cells)

    def holder(self, cell: Cell) -> str | None:
        return self.table.holder(cell)

    def held_cells(self, robot_id: str) -> list[Cell]:
        self.robot(robot_id)
        return self.table.held(robot_id)

    def way_ahead(self, robot_id: str, limit: int) -> list[Cell]:
        """The next `limit` cells of the robot's cheapest way to its goal beyond the cells
        it holds, on the floor it is planned on (no shelf cells while it carries one): what
        a link may announce as the robot's horizon."""
        robot, index = self.robot(robot_id), self.planner.floor.index
        goal = index(robot.goal)
        floor = self.planner.loaded_floor(goal) if robot.loaded else None
        way = self.planner.way(index(self.table.held(robot_id)[-1]), goal, floor, limit)
        return [self.planner.floor.cell(c) for c in way[1:]]

    def position(self, robot_id: str) -> Cell:
        self.robot(robot_id)
        return self.table.position(robot_id)

    def blocked(self) -> dict[str, str]:
        """Robots whose goal cannot be reached now, with the planner's reason."""
        return {r.robot_id: r.blocked_reason for r in self._order if r.blocked_reason}

    def arrived(self, robot_id: str) -> bool:
        robot = self.robot(robot_id)
        return self.table.held(robot_id) == [robot.goal]

    # --- planning -----------------------------------------------------------------------
    def plan(self) -> list[Grant]:
        """One round: replan a window from everyone's granted end, grant what is safe."""
        robots = self._order
        if not robots:
            return []
        table = self.table
        for r in robots:
            table.cancel(r.robot_id)
        self._refresh_blocks()
        held = [table.held(r.robot_id) for r in robots]  # what each holds: unchanged until granted more
        ends = [h[0] if r.stopped else h[-1] for r, h in zip(robots, held)]
        width = self.grid.width
        cells = [c.y * width + c.x for c in ends]
        headings = [r.heading for r in robots]
        goals = [r.goal.y * width + r.goal.x for r in robots]
        stopped = [r.index for r in robots if r.stopped]
        loaded = [r.index for r in robots if r.loaded]
        pinned = [r.index for r in robots if r.busy and not r.stopped]
        steps = []
        for _ in range(self.window):
            step = self.planner.plan(cells, headings, goals, stopped, loaded, pinned)
            for r in robots:
                r.blocked_reason = step.blocked.get(r.index, "")
            steps.append(step)
            cells, headings = step.cells, step.headings
        moving = [r for r in robots if not (r.stopped or r.busy)]
        cell_of = self._cells
        paths = {r.robot_id: [ends[r.index], *(cell_of[step.cells[r.index]] for step in steps)] for r in moving}
        for r in moving:
            # A way that reaches the robot's goal ends there (also when the cells granted
            # before end on it and it has not got there yet). Resting on its goal makes a
            # robot the one to push aside, and the plan may push it on before it arrives;
            # granted that, it drove over its goal without stopping (its lift never ran),
            # back and forth, for good. Whoever the plan let through waits a cycle.
            path = paths[r.robot_id]
            first = 0 if len(held[r.index]) > 1 else 1
            if r.goal in path[first:]:
                del path[path.index(r.goal, first) + 1:]
        table.commit(paths)
        grants = []
        for r in moving:
            new = table.grant(r.robot_id, horizon=self.max_ahead)
            turned = _last_step_at(paths[r.robot_id], len(new))
            if turned:
                r.heading = steps[turned - 1].headings[r.index]
            if new:
                grants.append(Grant(r.robot_id, tuple(new)))
        return grants

    def _refresh_blocks(self) -> None:
        """Cells nobody may be planned into: operator blocks, and what stopped robots hold
        beyond the cell they stand on (the planner pins the robot on that one)."""
        wanted = set(self._operator_blocked)
        for r in self._order:
            if r.stopped:
                wanted |= set(self.table.held(r.robot_id)[1:])
        if wanted != self._planner_blocked:
            self.planner.unblock(self._planner_blocked - wanted)
            self.planner.block(wanted - self._planner_blocked)
            self._planner_blocked = wanted

    def _check(self, cell: Cell) -> Cell:
        try:
            c = self.grid.index(cell)
        except ValueError as exc:
            raise TrafficError(str(exc)) from None
        if not self.grid.passable[c]:
            raise TrafficError(f"cell {cell} is not traversable")
        return Cell(*cell)


def _last_step_at(path: list[Cell], granted: int) -> int:
    """Index of the last step of `path` spent on its `granted`-th distinct cell: the robot
    may turn there freely (it holds the cell), so the planner takes it as turned."""
    moves = 0
    for k in range(1, len(path)):
        if path[k] != path[k - 1]:
            moves += 1
            if moves > granted:
                return k - 1
    return len(path) - 1
