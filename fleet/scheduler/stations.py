"""Port queues: first come, first served at a station's working cell.

A port has a fixed row of slots: the working cell, then the queue cells from the one
next to it back to the entry. The robot first in line drives to the working cell, the
second to the queue cell next to it, and so on; a robot beyond the last slot waits where
it is. When the robot at the working cell leaves, everybody moves up one slot. Keeping
this as plain data (no robots, no clock) lets the rule be tested on its own and lets the
scheduler turn each change into errands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import maps.model as floor
from maps.model import Cell


@dataclass
class PortQueue:
    """`slots[0]` is the working cell; `slots[p]` is where the robot in position p waits."""

    station_id: str
    slots: tuple[Cell, ...]
    robots: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, site: floor.Station) -> "PortQueue":
        # the map lists queue cells from the entry to the cell next to the working cell
        return cls(site.id, (site.working, *reversed(site.queue)))

    def join(self, robot_id: str) -> Cell | None:
        """Put the robot at the back of the line; returns the slot it should drive to,
        or None if all slots are taken and it has to wait."""
        if robot_id in self.robots:
            raise ValueError(f"robot {robot_id!r} is already in the queue of port {self.station_id}")
        self.robots.append(robot_id)
        return self.slot_of(robot_id)

    def slot_of(self, robot_id: str) -> Cell | None:
        position = self.robots.index(robot_id)
        return self.slots[position] if position < len(self.slots) else None

    def leave(self, robot_id: str) -> dict[str, Cell]:
        """Take the robot out of the line (normally the one at the working cell). Returns
        the robots that move up and the slot each now drives to."""
        try:
            position = self.robots.index(robot_id)
        except ValueError:
            raise ValueError(f"robot {robot_id!r} is not in the queue of port {self.station_id}") from None
        self.robots.pop(position)
        return {r: self.slots[p] for p, r in enumerate(self.robots) if position <= p < len(self.slots)}

    def settle(self, cells: dict[str, Cell]) -> dict[str, Cell]:
        """First come, first served by where the robots are: a robot that stands in a
        slot is served before every robot behind that slot or not yet in the queue (the
        queue is one cell wide, so it could not let them pass). `cells` is where each
        robot of the queue stands. Returns the robots whose slot changed, with the new slot."""
        slot_index = {cell: p for p, cell in enumerate(self.slots)}
        before = {r: self.slot_of(r) for r in self.robots}
        standing = sorted((r for r in self.robots if cells[r] in slot_index), key=lambda r: slot_index[cells[r]])
        self.robots = standing + [r for r in self.robots if r not in standing]
        return {r: slot for r in self.robots if (slot := self.slot_of(r)) != before[r] and slot is not None}

    @property
    def working(self) -> Cell:
        return self.slots[0]

    def first(self) -> str | None:
        return self.robots[0] if self.robots else None

    def __len__(self) -> int:
        return len(self.robots)
