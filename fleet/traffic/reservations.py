"""The reservation table: the one authority that lets a robot onto a cell.

Plans are timed, robots are not: a robot runs late, stops, drops off the network. So the
table keeps the *order* in which robots are planned to pass each cell, not the times
(an action dependency graph, Hönig et al. 2019): each cell has a queue of visits, in the
order the plans pass it, and a robot is granted its next cell only when its visit is at
the head of that cell's queue, i.e. when every robot planned to pass the cell before it
has left. A visit leaves the queue when its robot reports reaching the next cell of its
path (a QR code read), never when the clock says so. Delays then change when things
happen, never whether robots meet: if the plans were conflict-free, no two robots are
ever granted one cell, nobody enters a cell in the step its occupant leaves it (the
occupant's visit is still at the head until it reports the next cell), and as long as
the plans contain no cycle of robots each entering the cell the next one leaves at the
same moment, the visit order is acyclic and execution never deadlocks, whatever the
delays.

A stopped, faulted or offline robot reports nothing, so it keeps every cell it holds and
everyone queued behind it waits: the table never guesses that a silent robot has moved.
The operator blocks and unblocks cells here; a blocked cell is granted to nobody, and
the robots whose remaining plan crosses it are named so they can be replanned.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

from maps.model import Cell

Robot = Hashable


class ReservationError(ValueError):
    """A plan or report the table cannot accept; the message says which robot and cell."""


@dataclass(eq=False)
class _Visit:
    """Compared by identity: one robot may visit one cell twice, and the queues must
    tell those visits apart."""

    robot: Robot
    cell: Cell


@dataclass
class _Route:
    """One robot's committed visits; [0] is the cell it stands on."""

    visits: list[_Visit] = field(default_factory=list)
    granted: int = 0  # visits[: granted + 1] are the robot's: where it is and what it may enter


class ReservationTable:
    def __init__(self, positions: dict[Robot, Cell]) -> None:
        self._queues: dict[Cell, deque[_Visit]] = {}
        self._routes: dict[Robot, _Route] = {}
        self._blocked: set[Cell] = set()
        for robot, cell in positions.items():
            self.add_robot(robot, cell)

    # --- robots and plans ------------------------------------------------------------
    def add_robot(self, robot: Robot, cell: Cell) -> None:
        if robot in self._routes:
            raise ReservationError(f"robot {robot!r} is already in the table")
        queue = self._queues.setdefault(cell, deque())
        if queue:
            raise ReservationError(f"robot {robot!r} cannot appear on cell {cell}: it is reserved by {queue[0].robot!r}")
        visit = _Visit(robot, cell)
        queue.append(visit)
        self._routes[robot] = _Route([visit])

    def commit(self, paths: dict[Robot, Sequence[Cell]]) -> None:
        """Append timed paths (one cell per step, starting where each robot's committed
        route ends) to the table. Visits to a cell are queued in the order of the steps
        at which the paths reach it, so robots committed together are ordered by the
        plan's timing, and after everything committed earlier."""
        arrivals: list[tuple[int, int, Robot, Cell]] = []
        for order, (robot, path) in enumerate(paths.items()):
            route = self._route(robot)
            last = route.visits[-1].cell
            if not path or path[0] != last:
                raise ReservationError(f"path of robot {robot!r} must start at {last}, where its route ends")
            for step, (a, b) in enumerate(zip(path, path[1:]), 1):
                if b == a:
                    continue  # a wait: most steps of a congested plan
                if abs(a.x - b.x) + abs(a.y - b.y) > 1:
                    raise ReservationError(f"path of robot {robot!r} jumps from {a} to {b} at step {step}")
                arrivals.append((step, order, robot, b))
        arrivals.sort()  # by step, then by order: no two arrivals share both
        for _, _, robot, cell in arrivals:
            visit = _Visit(robot, cell)
            self._queues.setdefault(cell, deque()).append(visit)
            self._routes[robot].visits.append(visit)

    def cancel(self, robot: Robot) -> list[Cell]:
        """Drop the part of a robot's route it has not been granted (to replan it)."""
        route = self._route(robot)
        dropped = route.visits[route.granted + 1:]
        del route.visits[route.granted + 1:]
        for visit in dropped:
            self._queues[visit.cell].remove(visit)
        return [v.cell for v in dropped]

    # --- execution -------------------------------------------------------------------
    def grant(self, robot: Robot, horizon: int | None = None) -> list[Cell]:
        """Release to the robot as many further cells of its route as the visit order
        allows (at most `horizon` beyond where it stands); returns the cells newly
        granted. In VDA 5050 terms the granted cells are the order's base."""
        route = self._route(robot)
        new = []
        while route.granted + 1 < len(route.visits):
            if horizon is not None and route.granted >= horizon:
                break
            visit = route.visits[route.granted + 1]
            if visit.cell in self._blocked or self._queues[visit.cell][0] is not visit:
                break
            route.granted += 1
            new.append(visit.cell)
        return new

    def reached(self, robot: Robot, cell: Cell) -> list[Cell]:
        """The robot reports standing on `cell` (it read the cell's QR code). Every cell
        of its route before that is handed back; returns those cells."""
        route = self._route(robot)
        for k in range(1, route.granted + 1):
            if route.visits[k].cell == cell:
                break
        else:
            if route.visits[0].cell == cell:
                return []
            raise ReservationError(f"robot {robot!r} reports cell {cell}, which it was not granted "
                                   f"(granted: {[str(v.cell) for v in route.visits[: route.granted + 1]]})")
        freed = route.visits[:k]
        for visit in freed:
            # A visit is granted only at the head of its queue, and nobody overtakes it there.
            self._queues[visit.cell].popleft()
        del route.visits[:k]
        route.granted -= k
        return [v.cell for v in freed if v.cell != cell]

    # --- the operator ----------------------------------------------------------------
    def block(self, cells: Iterable[Cell]) -> set[Robot]:
        """Take cells out of service; returns the robots whose ungranted route crosses
        one of them (they need a new plan; a robot already granted the cell keeps it)."""
        cells = set(cells)
        self._blocked |= cells
        return {r for r, route in self._routes.items()
                if any(v.cell in cells for v in route.visits[route.granted + 1:])}

    def unblock(self, cells: Iterable[Cell]) -> None:
        self._blocked -= set(cells)

    # --- queries ---------------------------------------------------------------------
    def held(self, robot: Robot) -> list[Cell]:
        """Where the robot stands and every cell granted to it beyond that."""
        route = self._route(robot)
        return [v.cell for v in route.visits[: route.granted + 1]]

    def position(self, robot: Robot) -> Cell:
        return self._route(robot).visits[0].cell

    def remaining(self, robot: Robot) -> list[Cell]:
        """Committed cells the robot has yet to reach (granted or not)."""
        return [v.cell for v in self._route(robot).visits[1:]]

    def waiting_for(self, robot: Robot) -> Cell | None:
        """The first cell of the robot's route not granted to it yet (None if it has
        everything): the cell whose queue it waits on."""
        route = self._route(robot)
        return route.visits[route.granted + 1].cell if route.granted + 1 < len(route.visits) else None

    def finished(self, robot: Robot) -> bool:
        """Whether the robot has reached the end of everything committed for it."""
        return len(self._route(robot).visits) == 1

    def holder(self, cell: Cell) -> Robot | None:
        queue = self._queues.get(cell)
        if not queue:
            return None
        head = queue[0]
        route = self._routes[head.robot]
        return head.robot if any(v is head for v in route.visits[: route.granted + 1]) else None

    @property
    def blocked(self) -> frozenset[Cell]:
        return frozenset(self._blocked)

    def robots(self) -> list[Robot]:
        return list(self._routes)

    def _route(self, robot: Robot) -> _Route:
        try:
            return self._routes[robot]
        except KeyError:
            raise ReservationError(f"unknown robot {robot!r}") from None
