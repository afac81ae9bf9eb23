"""Random shelf moves: a workload that exercises traffic control as the warehouse does.

Each idle robot takes a random shelf that nobody is using from its storage cell, carries
it to a random station's working cell, holds it there a while (as if an operator worked
it), and brings it back home. That is the shape of every pick and stow trip, without the
scheduler's choices, so traffic control and the robots can be tested, demonstrated and
soaked on their own: `fleet demo`, benchmarks/traffic_soak.py, tests/test_shelf_moves.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from drivers.commands import ActionKind, CellAction
from fleet.motion import Errand, ErrandReport, MotionControl, Outcome
from maps.model import Cell, CellKind, WarehouseMap


@dataclass
class ShelfMoves:
    """Hands out shelf trips to idle robots and counts what came of them."""

    wmap: WarehouseMap
    motion: MotionControl
    shelf_at: dict[Cell, str]  # storage cell -> shelf standing there now
    seed: int = 0
    present_s: float = 5.0  # how long a shelf stays at the station
    done: int = 0  # trips completed (shelf back home)
    failed: list[ErrandReport] = field(default_factory=list)
    closing: bool = False  # no new trips: the ones under way finish

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._stations = [c for s in self.wmap.stations for c in s.working]
        self._in_use: set[Cell] = set()  # homes of shelves on a trip
        self._trip: dict[str, list[Errand]] = {}  # robot -> errands still to give
        self._home: dict[str, Cell] = {}
        self._serial = 0

    def start(self, robot_id: str) -> None:
        """Give an idle robot a new trip."""
        free = [c for c in self.shelf_at if c not in self._in_use]
        if not free or self.closing:
            return
        home = self._rng.choice(free)
        shelf = self.shelf_at[home]
        self._in_use.add(home)
        self._home[robot_id] = home
        self._serial += 1
        n = self._serial
        station = self._rng.choice(self._stations)
        self._trip[robot_id] = [
            Errand(f"t{n}-fetch", home, (CellAction(f"t{n}-lift", ActionKind.LIFT, shelf_id=shelf),)),
            Errand(f"t{n}-present", station, (CellAction(f"t{n}-work", ActionKind.WAIT, duration=self.present_s),)),
            Errand(f"t{n}-return", home, (CellAction(f"t{n}-lower", ActionKind.LOWER, shelf_id=shelf),)),
        ]
        self.motion.assign(robot_id, self._trip[robot_id].pop(0))

    def on_report(self, report: ErrandReport) -> None:
        """Move the robot on to its trip's next errand, or a new trip."""
        robot_id = report.robot_id
        if report.outcome is Outcome.FAILED:
            # The trip stops where it failed; its shelf is not handed out again until
            # someone looks (a real scheduler would raise an alarm here).
            self.failed.append(report)
            self._trip.pop(robot_id, None)
            return
        rest = self._trip.get(robot_id)
        if rest:
            self.motion.assign(robot_id, rest.pop(0))
            return
        self._trip.pop(robot_id, None)
        self.done += 1
        self._in_use.discard(self._home.pop(robot_id))
        self.start(robot_id)

    def in_trip(self) -> int:
        return len(self._trip)


def shelves_on(wmap: WarehouseMap, stored_shelf_at) -> dict[Cell, str]:
    """Storage cell -> id of the shelf standing on it, as the robots' world says."""
    out = {}
    for cell in wmap.cells_of(CellKind.STORAGE):
        shelf = stored_shelf_at(cell)
        if shelf is not None:
            out[cell] = shelf
    return out
