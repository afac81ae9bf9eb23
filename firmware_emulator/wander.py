"""Random errands for emulated robots: a load for benches and demos, not a controller.

The Wanderer keeps every robot busy with short random paths, seeded, through a RobotLink
(so it exercises the same interface as the fleet). To keep the load realistic rather
than a pile-up, it hands out cells exclusively: a robot's path holds its cells until the
robot reports reading the next code, and no two paths share a cell. It knows nothing of
the fleet's traffic control and needs none of it; the World still judges every move.
After a fatal error it only cancels and resets the robot: a robot that needs an operator
(lost localisation, a reboot) stays out of the game, as it would on the floor.
"""

from __future__ import annotations

import itertools

import numpy as np

from drivers.commands import InstantCommand, InstantKind, Job, Step
from drivers.events import (
    ActionFailed,
    CellReached,
    ErrorRaised,
    JobFinished,
    JobRejected,
    RobotEvent,
    Severity,
    StatusReport,
)
from drivers.link import RobotLink
from maps.model import Cell, Heading, WarehouseMap


class Wanderer:
    def __init__(self, link: RobotLink, wmap: WarehouseMap, seed: int = 0, max_cells: int = 8,
                 turn_chance: float = 0.3) -> None:
        if max_cells < 1:
            raise ValueError("max_cells must be >= 1")
        self.link = link
        self.map = wmap
        self.rng = np.random.default_rng(seed)
        self.max_cells = max_cells
        self.turn_chance = turn_chance
        self.cell: dict[str, Cell] = {}
        self.path: dict[str, list[Cell]] = {}  # cells each robot holds, in driving order
        self.owner: dict[Cell, str] = {}
        self.idle: set[str] = set()
        self.jobs = itertools.count(1)
        self.errands = 0
        for robot_id in link.robot_ids():
            link.instant(robot_id, InstantCommand(InstantKind.STATUS))

    def pump(self) -> None:
        """Handle what the robots said and give every idle robot a new errand."""
        for event in self.link.drain():
            self._handle(event)
        for robot_id in sorted(self.idle):
            self._errand(robot_id)

    def _handle(self, event: RobotEvent) -> None:
        rid = event.robot_id
        if isinstance(event, CellReached):
            self.cell[rid] = event.cell
            held = self.path.get(rid, [])
            if event.cell in held:
                passed = held[: held.index(event.cell)]
                self.path[rid] = held[len(passed):]
                for cell in passed:
                    self.owner.pop(cell, None)
        elif isinstance(event, (JobFinished, JobRejected, ActionFailed)):
            self._settle(rid, self.cell.get(rid))
        elif isinstance(event, StatusReport) and event.job_id is None and not event.driving and event.cell is not None:
            self._settle(rid, event.cell)
        elif isinstance(event, ErrorRaised) and event.severity is Severity.FATAL:
            self.idle.discard(rid)
            self.link.instant(rid, InstantCommand(InstantKind.CANCEL))
            self.link.instant(rid, InstantCommand(InstantKind.RESET))

    def _settle(self, robot_id: str, cell: Cell | None) -> None:
        for held in self.path.pop(robot_id, []):
            self.owner.pop(held, None)
        if cell is None:
            return
        self.cell[robot_id] = cell
        if self.owner.get(cell, robot_id) == robot_id:
            self.owner[cell] = robot_id
            self.path[robot_id] = [cell]
            self.idle.add(robot_id)

    def _errand(self, robot_id: str) -> None:
        here = self.cell[robot_id]
        heading = Heading(int(self.rng.integers(4)))
        cells = [here]
        for _ in range(int(self.rng.integers(1, self.max_cells + 1))):
            if self.rng.random() < self.turn_chance:
                heading = heading.left() if self.rng.random() < 0.5 else heading.right()
            dx, dy = heading.step
            nxt = Cell(cells[-1].x + dx, cells[-1].y + dy)
            if not self.map.traversable(nxt) or nxt in self.owner or nxt in cells:
                break
            cells.append(nxt)
        if len(cells) < 2:
            return
        for cell in cells[1:]:
            self.owner[cell] = robot_id
        self.path[robot_id] = cells
        self.idle.discard(robot_id)
        self.errands += 1
        self.link.send_job(robot_id, Job(f"wander-{next(self.jobs)}", tuple(Step(c) for c in cells)))
